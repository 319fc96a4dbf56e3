"""Rollout-info aggregation benchmark: fusedstats.rollout vs the pure-Python ways.

    python bench/bench_rollout.py [--quick] [--out PATH] [--reps N] [--profile]

Workloads (``fusedstats.bench.workloads``; every repetition gets freshly built infos,
untimed, as a trainer gets new ones from its envs):

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
repetitions, 7 with ``--quick``):

- ``fusedstats``: ``stats.add(infos)`` then ``stats.means()``, on one ``RolloutStats``
  kept across repetitions and cleared before each (untimed), as the reporter clears it
  every epoch.
- ``lean``: the lean pure-Python way, ``workloads.lean_rollout_means``: one recursive
  walk into a ``defaultdict(list)`` (numbers appended, arrays and tensors extended),
  then ``np.mean`` per key. Valid on both workloads.
- ``plain`` (uniform only): ``defaultdict(list)`` with every leaf appended as it is and
  ``np.mean`` per key (numpy stacks the per-agent arrays); it cannot read the ragged
  workload (a str leaf breaks ``np.mean``).
- ``metta`` (uniform only): Metta's ``accumulate_rollout_stats`` (a generator that
  unrolls nested dicts, ``torch.is_tensor`` and a 1-element-array check per leaf) then
  ``np.mean`` per key.
- ``(flatten only)``: the native walk alone (``add()``'s first phase); the rest of
  ``add()`` + ``means()`` is the numba reduction and the per-key means.

Targets (issue 14): fusedstats >= 10x the fastest pure-Python way that reads the
workload, on ``uniform`` and on ``ragged``, and <= 1.5 ms for ``uniform`` on this
machine. Numba compile time is reported apart (two child processes sharing an empty
``NUMBA_CACHE_DIR``). ``--profile`` prints where the time of one ``add()`` goes, phase by
phase, on fresh infos.

Prints a table per workload and writes JSON (default bench/results/rollout.json; a
``--quick`` run writes only where ``--out`` says). fusedstats is the installed package,
never the source tree.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fusedstats.bench.workloads import (
    lean_rollout_means,
    ragged_rollout_infos,
    rollout_infos,
    unroll_nested_dict,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "rollout.json"
TARGET_SPEEDUP = 10.0
TARGET_SECONDS_UNIFORM_1024 = 1.5e-3
FLATTEN = "(flatten only)"
# name -> (infos builder, number of infos, numeric leaves per info in words)
WORKLOADS: dict[str, tuple[Callable[[int, int], list[dict[str, Any]]], int, str]] = {
    "uniform": (rollout_infos, 1024, "50 leaves, 8 per-agent arrays of 24"),
    "ragged": (ragged_rollout_infos, 1024, "16-19 leaves, ragged"),
    "uniform_4096": (rollout_infos, 4096, "50 leaves, 8 per-agent arrays of 24"),
    "ragged_4096": (ragged_rollout_infos, 4096, "16-19 leaves, ragged"),
}
TARGETED = ("uniform", "ragged")  # the workloads the speed-up target is measured on

# --- the pure-Python ways ------------------------------------------------------------
# Metta's accumulate stays here as written: it looks torch up per leaf (``_is_tensor``).


def _is_tensor(v: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and bool(torch.is_tensor(v))


def metta_accumulate(raw_infos: list[dict[str, Any]], stats: dict[str, Any]) -> None:
    """Metta's ``accumulate_rollout_stats``, rewritten with its per-leaf steps."""
    infos: defaultdict[str, list[Any]] = defaultdict(list)
    for i in raw_infos:
        for k, leaf in unroll_nested_dict(i):
            v = leaf
            if _is_tensor(v):
                v = v.detach().cpu().item() if v.numel() == 1 else v.detach().cpu().numpy()
            elif isinstance(v, np.ndarray) and v.size == 1:
                v = v.item()
            infos[k].append(v)
    for k, v in infos.items():
        stats.setdefault(k, []).extend(v)


def metta_way(infos: list[dict[str, Any]]) -> dict[str, float]:
    stats: dict[str, Any] = {}
    metta_accumulate(infos, stats)
    return {k: float(np.mean(v)) for k, v in stats.items()}


def plain_way(infos: list[dict[str, Any]]) -> dict[str, float]:
    acc: defaultdict[str, list[Any]] = defaultdict(list)
    for info in infos:
        for k, v in unroll_nested_dict(info):
            acc[k].append(v)
    return {k: float(np.mean(v)) for k, v in acc.items()}


# --- timing ------------------------------------------------------------------------


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def race(
    methods: dict[str, tuple[Callable[[int], Any], Callable[[Any], Any]]], reps: int
) -> dict[str, dict[str, list[float]]]:
    """Wall seconds, CPU seconds and minor page faults of each method per call,
    interleaved (the first method rotated each round), after one untimed call each.
    ``methods``: name -> (setup, run); ``setup(round)`` (untimed, after a garbage
    collection) makes run's argument, from the same data for every method of a round.

    The collection runs before the infos are built, not between building and the timed
    call: a trainer aggregates infos right after env.step() made them. (A full
    collection in between walks every object of torch and numba and leaves the infos
    out of cache: fusedstats then takes ~1 ms more on the uniform workload, the
    pure-Python ways about the same.)

    Page faults are counted because on this VM each costs microseconds: a method
    that keeps allocating fresh memory pays for it in time."""
    wall: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    faults: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for setup, run in methods.values():
        run(setup(-1))
    for rnd in range(reps):
        shift = rnd % len(names)
        for name in names[shift:] + names[:shift]:
            setup, run = methods[name]
            gc.collect()  # before the infos are built: they reach run() as an env hands them
            state = setup(rnd)
            f, w, c = _minor_faults(), time.perf_counter(), time.thread_time()
            run(state)
            cpu[name].append(time.thread_time() - c)
            wall[name].append(time.perf_counter() - w)
            faults[name].append(_minor_faults() - f)
            del state  # the infos die outside the timed region
    return {"wall": wall, "cpu": cpu, "minor_faults": faults}


def run_workload(name: str, reps: int) -> dict[str, Any]:
    from fusedstats.rollout import RolloutStats

    build, n, _ = WORKLOADS[name]
    uniform = name.startswith("uniform")

    def fresh(rnd: int) -> list[dict[str, Any]]:
        return build(n, 1000 + rnd)

    kept = RolloutStats()

    def fused_setup(rnd: int) -> list[dict[str, Any]]:
        kept.clear()
        return fresh(rnd)

    def fused_run(infos: list[dict[str, Any]]) -> dict[str, float]:
        kept.add(infos)
        return kept.means()

    def flatten_only(infos: list[dict[str, Any]]) -> Any:
        return kept._flattener.flatten(infos)  # fusedstats internals: add()'s first phase

    methods: dict[str, tuple[Callable[[int], Any], Callable[[Any], Any]]] = {
        "fusedstats": (fused_setup, fused_run),
        "lean": (fresh, lean_rollout_means),
    }
    if uniform:
        methods["plain"] = (fresh, plain_way)
        methods["metta"] = (fresh, metta_way)
    methods[FLATTEN] = (fresh, flatten_only)
    timings = race(methods, reps)

    # The same infos through each way: the means must agree.
    same = build(n, 12345)
    stats = RolloutStats()
    stats.add(same)
    got = stats.means()
    agree: dict[str, Any] = {}
    for way in [m for m in methods if m not in ("fusedstats", FLATTEN)]:
        want = {"lean": lean_rollout_means, "plain": plain_way, "metta": metta_way}[way](same)
        rel = max(abs(got[k] - want[k]) / max(abs(want[k]), 1e-300) for k in want)
        agree[way] = {"same_keys": set(got) == set(want), "max_relative_difference": rel}

    med = {k: statistics.median(v) for k, v in timings["wall"].items()}
    fused = med["fusedstats"]
    python_ways = [m for m in methods if m not in ("fusedstats", FLATTEN)]
    fastest = min(python_ways, key=lambda m: med[m])
    return {
        "infos": n,
        "leaves": WORKLOADS[name][2],
        "median_wall_s": med,
        "median_cpu_s": {k: statistics.median(v) for k, v in timings["cpu"].items()},
        "min_wall_s": {k: min(v) for k, v in timings["wall"].items()},
        "median_minor_faults": {
            k: statistics.median(v) for k, v in timings["minor_faults"].items()
        },
        "speedup": {m: med[m] / fused for m in python_ways},
        "fastest_python_way": fastest,
        "speedup_vs_fastest_python": med[fastest] / fused,
        "fusedstats_s_per_1024_infos": fused * 1024 / n,
        "flatten_share": med[FLATTEN] / fused,
        "means_agree": agree,
        "all_s": timings,
    }


def profile(reps: int) -> dict[str, Any]:
    """Where one add() + means() spends its time, phase by phase, on fresh infos: the
    native walk, finish (segments, tensors to host), the numba reduction, means()."""
    from fusedstats.rollout import RolloutStats
    from fusedstats.rollout import stats as stats_module

    out: dict[str, Any] = {}
    for name in TARGETED:
        build, n, _ = WORKLOADS[name]
        kept = RolloutStats()
        fl = kept._flattener
        phases: dict[str, list[float]] = defaultdict(list)
        for rnd in range(-1, reps):
            kept.clear()
            gc.collect()
            infos = build(n, 2000 + rnd)
            t0 = time.perf_counter()
            tensors = fl._native.walk(infos)
            t1 = time.perf_counter()
            host, lengths = (None, [])
            if tensors:
                from fusedstats.rollout.flatten import gather_tensors

                host, lengths = gather_tensors(tensors, sys.modules["torch"])
            t2 = time.perf_counter()
            segments, values, _, _ = fl._native.finish(host, lengths)
            t3 = time.perf_counter()
            n_keys = len(fl.names)
            if n_keys > kept._count.size:
                kept._grow(n_keys)
            stats_module._load_kernels().reduce_segments(
                segments, values, kept._count, kept._sum, kept._mean, kept._m2,
                kept._min, kept._max,
            )  # fmt: skip
            t4 = time.perf_counter()
            kept.means()
            t5 = time.perf_counter()
            sizes = {"values": int(values.size), "segments": int(segments.shape[1])}
            del segments, values  # back to the flattener's buffer pool, as clear() does
            if rnd >= 0:
                for phase, seconds in (
                    ("walk", t1 - t0), ("tensors to host", t2 - t1), ("finish", t3 - t2),
                    ("numba reduction", t4 - t3), ("means()", t5 - t4),
                ):  # fmt: skip
                    phases[phase].append(seconds)
        out[name] = {k: statistics.median(v) for k, v in phases.items()}
        out[name].update(sizes)
    return out


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


def machine() -> dict[str, Any]:
    import fusedstats
    from fusedstats.bench.timing import host_info

    info = host_info()
    info["python_executable"] = sys.executable
    for mod in ("numpy", "numba", "torch"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    info["fusedstats"] = fusedstats.__version__
    info["fusedstats_file"] = fusedstats.__file__
    return info


def checkout() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:.3f} ms"


def print_workload(name: str, res: dict[str, Any], reps: int) -> None:
    med, cpu, low = res["median_wall_s"], res["median_cpu_s"], res["min_wall_s"]
    fused = med["fusedstats"]
    header = ["method", "median (wall)", "median (cpu)", "min (wall)", "x fusedstats"]
    rows = [
        [m, fmt_ms(med[m]), fmt_ms(cpu[m]), fmt_ms(low[m]), f"{med[m] / fused:.2f}x"] for m in med
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{name}: {res['infos']:,} infos ({res['leaves']}), {reps} repetitions")
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    agree = all(
        a["same_keys"] and a["max_relative_difference"] < 1e-12 for a in res["means_agree"].values()
    )
    print(
        f"vs the fastest pure-Python way ({res['fastest_python_way']}): "
        f"{res['speedup_vs_fastest_python']:.2f}x; per 1,024 infos "
        f"{fmt_ms(res['fusedstats_s_per_1024_infos'])}; the walk is "
        f"{res['flatten_share']:.0%} of it; means agree: {agree}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="7 repetitions, no JSON")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--out", default=None, help="JSON path (default: results/rollout.json)")
    parser.add_argument("--profile", action="store_true", help="phase breakdown of add()")
    parser.add_argument("--only", nargs="*", choices=list(WORKLOADS), default=list(WORKLOADS))
    args = parser.parse_args(argv)
    reps = args.reps or (7 if args.quick else 15)

    import torch  # noqa: F401  (Metta's trainer has it imported: torch.is_tensor per leaf)

    from fusedstats.rollout import warmup

    warmup()
    if args.profile:
        for name, phases in profile(reps).items():
            print(f"{name}: " + ", ".join(
                f"{k} {fmt_ms(v)}" if isinstance(v, float) else f"{k} {v:,}"
                for k, v in phases.items()
            ))  # fmt: skip
        return 0

    load_before = os.getloadavg()
    results = {}
    for name in args.only:
        results[name] = run_workload(name, reps)
        print_workload(name, results[name], reps)
    load_after = os.getloadavg()
    phases = profile(reps)
    compiled = compile_times()

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
    for name, ph in phases.items():
        print(f"phases of one add() + means(), {name}: " + ", ".join(
            f"{k} {fmt_ms(v)}" if isinstance(v, float) else f"{k} {v:,}" for k, v in ph.items()
        ))  # fmt: skip
    c1, c2 = compiled["first_process_compiles"], compiled["second_process_loads_cache"]
    print(
        f"numba: import {c1['import_numba_s']:.2f} s; warmup() compiling "
        f"{c1['warmup_s']:.2f} s, loading from cache {c2['warmup_s']:.3f} s"
    )
    print(f"load average before/after: {load_before} / {load_after}")

    out = args.out if args.out is not None else (None if args.quick else str(DEFAULT_OUT))
    if out:
        report = {
            "machine": machine(),
            "checkout": checkout(),
            "settings": {"reps": reps, "quick": args.quick, "workloads": args.only},
            "workloads": results,
            "targets": targets,
            "phases_s": phases,
            "numba_compile": compiled,
            "load_average_before": list(load_before),
            "load_average_after": list(load_after),
        }
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
