"""Rollout-info aggregation benchmark: fusedstats.rollout vs the pure-Python ways.

    python bench/bench_rollout.py [--quick] [--out PATH] [--reps N] [--only W ...] [--profile]

Workloads (``fusedstats.bench.workloads.rollout``; every repetition gets freshly built
infos, untimed, as a trainer gets new ones from its envs; the methods of a round get
the same infos):

- ``uniform``: 1,024 info dicts of one shape, 50 numeric leaves each, nested two levels:
  2 top-level scalars, ``game/*`` (20 floats), ``agent/*`` (10 floats),
  ``env_map/sub/*`` (8 ints), ``env_map/done`` (a bool), ``env_map/w`` (a float), and
  ``per_agent/*``: 8 per-agent float64 arrays of 24 agents.
- ``ragged``: 1,024 info dicts as envs that differ send them: every 17th empty, an
  ``episode`` group in every 3rd only, a str leaf, a 1-element torch tensor, a
  24-element float32 array, 10 ``game/*`` floats (16-19 numeric leaves).
- ``uniform_4096`` and ``ragged_4096``: the same with 4,096 infos.

Raced in one run, interleaved per workload (the starting method rotated each round; a
garbage collection, then freshly built infos before every call, untimed; medians of 15
repetitions, 7 with ``--quick``; wall time, this thread's CPU time and minor page
faults, which cost microseconds each on a VM):

- ``fusedstats``: ``stats.add(infos)`` then ``stats.means()``, on one ``RolloutStats``
  kept across repetitions and cleared before each (untimed), as the reporter clears it
  every epoch.
- ``lean``: the lean pure-Python way: one recursive walk into a ``defaultdict(list)``
  (numbers appended, arrays and tensors extended), then ``np.mean`` per key. Valid on
  both workloads.
- ``plain`` (uniform only): ``defaultdict(list)`` with every leaf appended as it is and
  ``np.mean`` per key (numpy stacks the per-agent arrays); it cannot read the ragged
  workload (a str leaf breaks ``np.mean``).
- ``metta`` (uniform only): Metta's ``accumulate_rollout_stats`` (a generator that
  unrolls nested dicts, ``torch.is_tensor`` and a 1-element-array check per leaf) then
  ``np.mean`` per key.

Targets: fusedstats >= 10x the fastest pure-Python way that reads the workload, on
``uniform`` and on ``ragged``, and <= 1.5 ms for ``uniform`` on the project's 2-core
machine. Numba compile time is reported apart (two child processes sharing an empty
``NUMBA_CACHE_DIR``). ``--profile`` prints where the time of ``add()`` + ``means()``
goes (cProfile, fresh infos) instead.

Prints a table per workload and writes JSON (default bench/results/rollout.json; a
``--quick`` run writes only where ``--out`` says). fusedstats is the installed package,
never the source tree.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fusedstats.bench.harness import (
    Race,
    add_common_arguments,
    finish_report,
    new_report,
    render_table,
    save_report,
)
from fusedstats.bench.workloads.rollout import (
    WAYS,
    race_rollout,
    ragged_rollout_infos,
    rollout_infos,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "rollout.json"
TARGET_SPEEDUP = 10.0
TARGET_SECONDS_UNIFORM_1024 = 1.5e-3
# name -> (infos builder, number of infos, numeric leaves per info in words)
WORKLOADS: dict[str, tuple[Callable[[int, int], list[dict[str, Any]]], int, str]] = {
    "uniform": (rollout_infos, 1024, "50 leaves, 8 per-agent arrays of 24"),
    "ragged": (ragged_rollout_infos, 1024, "16-19 leaves, ragged"),
    "uniform_4096": (rollout_infos, 4096, "50 leaves, 8 per-agent arrays of 24"),
    "ragged_4096": (ragged_rollout_infos, 4096, "16-19 leaves, ragged"),
}
TARGETED = ("uniform", "ragged")  # the workloads the targets are measured on


def agreement(build: Callable[[int, int], Any], n: int, ways: list[str]) -> dict[str, Any]:
    """The same infos through fusedstats and each way: do the means agree?"""
    from fusedstats.rollout import RolloutStats

    same = build(n, 12345)
    stats = RolloutStats()
    stats.add(same)
    got = stats.means()
    out: dict[str, Any] = {}
    for way in ways:
        want = WAYS[way](same)
        rel = max(abs(got[k] - want[k]) / max(abs(want[k]), 1e-300) for k in want)
        out[way] = {"same_keys": set(got) == set(want), "max_relative_difference": rel}
    return out


def run_workload(name: str, reps: int) -> dict[str, Any]:
    build, n, leaves = WORKLOADS[name]
    ways = ["lean", "plain", "metta"] if name.startswith("uniform") else ["lean"]
    r: Race = race_rollout(build, n, reps, ways, measure_cpu=True)
    med = r.medians()
    fused = med["fusedstats"]
    fastest = r.fastest(ways)
    return {
        "infos": n,
        "leaves": leaves,
        "methods": {m: r.summary(m) for m in r.names},
        "speedup": {m: med[m] / fused for m in ways},
        "fastest_python_way": fastest,
        "speedup_vs_fastest_python": med[fastest] / fused,
        "fusedstats_s_per_1024_infos": fused * 1024 / n,
        "means_agree": agreement(build, n, ways),
        "all_s": {"wall": r.times, "cpu": r.cpu_times, "minor_faults": r.minor_faults},
    }


def profile(reps: int) -> None:
    """cProfile of ``add()`` + ``means()`` on fresh infos of the targeted workloads."""
    import cProfile
    import pstats

    from fusedstats.rollout import RolloutStats

    for name in TARGETED:
        build, n, _ = WORKLOADS[name]
        stats = RolloutStats()
        prof = cProfile.Profile()
        for rnd in range(reps):
            stats.clear()
            infos = build(n, 2000 + rnd)
            prof.enable()
            stats.add(infos)
            stats.means()
            prof.disable()
        print(f"\n=== cProfile, {name}: add() + means(), {reps} calls ===")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(15)


COMPILE_PROBE = """
import json, time
t0 = time.perf_counter()
import numba
t1 = time.perf_counter()
from fusedstats.rollout import warmup
t2 = time.perf_counter()
warmup()
t3 = time.perf_counter()
print(json.dumps({"import_numba_s": t1 - t0, "import_rollout_s": t2 - t1, "warmup_s": t3 - t2}))
"""


def compile_times() -> dict[str, Any]:
    """Two fresh processes sharing an empty numba cache: compile, then load."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        runs = []
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-c", COMPILE_PROBE],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"first_process_compiles": runs[0], "second_process_loads_cache": runs[1]}


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:.3f} ms"


def print_workload(name: str, res: dict[str, Any], reps: int) -> None:
    methods = res["methods"]
    fused = methods["fusedstats"]["median_s"]
    header = ["method", "median (wall)", "median (cpu)", "min (wall)", "faults", "x fusedstats"]
    rows = [
        [
            m,
            fmt_ms(r["median_s"]),
            fmt_ms(r["median_cpu_s"]),
            fmt_ms(r["min_s"]),
            f"{r['median_minor_faults']:.0f}",
            f"{r['median_s'] / fused:.2f}x",
        ]
        for m, r in methods.items()
    ]
    print(f"\n{name}: {res['infos']:,} infos ({res['leaves']}), {reps} repetitions")
    print(render_table(header, rows))
    agree = all(
        a["same_keys"] and a["max_relative_difference"] < 1e-12 for a in res["means_agree"].values()
    )
    print(
        f"vs the fastest pure-Python way ({res['fastest_python_way']}): "
        f"{res['speedup_vs_fastest_python']:.2f}x; per 1,024 infos "
        f"{fmt_ms(res['fusedstats_s_per_1024_infos'])}; means agree: {agree}"
    )


def check_targets(results: dict[str, Any]) -> dict[str, Any]:
    """The targets, and which the run met (printed)."""
    targets: dict[str, Any] = {
        "speedup_vs_fastest_python": TARGET_SPEEDUP,
        "seconds_uniform_1024": TARGET_SECONDS_UNIFORM_1024,
    }
    print()
    for name in (n for n in TARGETED if n in results):
        x = results[name]["speedup_vs_fastest_python"]
        targets[f"speedup_met_{name}"] = x >= TARGET_SPEEDUP
        print(f"target >= {TARGET_SPEEDUP:g}x on {name}: {x:.2f}x "
              f"({'met' if x >= TARGET_SPEEDUP else 'MISSED'})")  # fmt: skip
    if "uniform" in results:
        t = results["uniform"]["fusedstats_s_per_1024_infos"]
        targets["time_met"] = t <= TARGET_SECONDS_UNIFORM_1024
        print(f"target <= {fmt_ms(TARGET_SECONDS_UNIFORM_1024)} on uniform: {fmt_ms(t)} "
              f"({'met' if targets['time_met'] else 'MISSED'})")  # fmt: skip
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_common_arguments(parser, DEFAULT_OUT)
    parser.add_argument("--reps", type=int, default=None, help="timed calls (15; quick 7)")
    parser.add_argument("--profile", action="store_true", help="cProfile of add() + means()")
    parser.add_argument("--only", nargs="*", choices=list(WORKLOADS), default=list(WORKLOADS))
    args = parser.parse_args(argv)
    reps = args.reps or (7 if args.quick else 15)

    import torch  # noqa: F401  (Metta's trainer has it imported: torch.is_tensor per leaf)

    from fusedstats.rollout import warmup

    warmup()
    if args.profile:
        profile(reps)
        return 0

    report = new_report(
        "rollout",
        quick=args.quick,
        libraries=("numpy", "numba", "torch"),
        checkout=ROOT,
        settings={"reps": reps, "workloads": args.only},
    )
    results = {}
    for name in args.only:
        results[name] = run_workload(name, reps)
        print_workload(name, results[name], reps)
    report["workloads"] = results
    report["targets"] = check_targets(results)
    report["numba_compile"] = compiled = compile_times()
    finish_report(report)
    c1, c2 = compiled["first_process_compiles"], compiled["second_process_loads_cache"]
    print(
        f"numba: import {c1['import_numba_s']:.2f} s; warmup() compiling "
        f"{c1['warmup_s']:.2f} s, loading from cache {c2['warmup_s']:.3f} s"
    )
    print(
        f"load average at start / end: {report['machine']['load_average_1_5_15']} / "
        f"{report['load_average_end']}"
    )
    save_report(report, args.out, args.quick, DEFAULT_OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
