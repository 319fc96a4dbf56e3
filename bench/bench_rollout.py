"""Rollout-info aggregation benchmark: fusedstats.rollout vs Metta's pure-Python way.

    python bench/bench_rollout.py [--quick] [--out PATH] [--reps N] [--infos N] [--profile]

Data: ``--infos`` (default 1,024) info dicts as a vectorized env returns them, each with
50 numeric leaves nested two levels deep: 2 top-level scalars, ``game/*`` (20 floats),
``agent/*`` (10 floats), ``env_map/sub/*`` (8 ints), ``env_map/done`` (a bool),
``env_map/w`` (a float), and ``per_agent/*``: 8 per-agent float64 arrays of 24 agents.
Every repetition gets freshly built infos (untimed), as a trainer gets new ones from
its envs.

Raced in one run, interleaved (the starting method rotated each round; a garbage
collection and fresh infos before every call, untimed; medians of 15 repetitions, 7
with ``--quick``):

- ``fusedstats``: ``stats.add(infos)`` then ``stats.means()``, on one ``RolloutStats``
  kept across repetitions and cleared before each (untimed), as the reporter clears
  it every epoch.
- ``metta``: Metta's ``accumulate_rollout_stats`` (a generator that unrolls nested
  dicts, ``torch.is_tensor`` and a 1-element-array check per leaf, a
  ``defaultdict(list)``, then ``setdefault(k, []).extend(v)`` per key), then
  ``np.mean`` per key as its epoch report does. The target is measured against it.
- ``plain``: the leanest pure-Python version of the same (no per-leaf checks), for
  reference.
- ``(fusedstats flatten only)``: the first phase of ``add()`` alone (the info dicts
  read into arrays by C loops; the rest is the numba reduction), to show where the
  time goes.

Targets (issue 4): fusedstats >= 5x faster than Metta's way, and <= 1.5 ms per 1,024
infos on this machine. Numba compile time is reported apart: two child processes that
share an empty ``NUMBA_CACHE_DIR`` time ``import numba`` and ``warmup()``; the first
compiles, the second loads from the on-disk cache.

Prints a table and writes JSON (default bench/results/rollout.json; a ``--quick`` run
writes only where ``--out`` says). fusedstats is the installed package, never the
source tree. ``--profile`` prints cProfile tables of ``add()`` instead.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
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

from fusedstats.bench.workloads import N_AGENTS, rollout_infos, unroll_nested_dict

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "rollout.json"
TARGET_SPEEDUP = 5.0
FLATTEN = "(fusedstats flatten only)"
TARGET_SECONDS_PER_1024 = 1.5e-3
# --- the ways to aggregate ---------------------------------------------------------
# The infos (``rollout_infos``) and Metta's nested-dict generator come from
# fusedstats.bench.workloads, which ``fusedstats bench`` races too. Metta's accumulate
# stays here as written: it looks torch up per leaf (``_is_tensor``), where
# ``workloads.metta_rollout_means`` looks it up once per call; the timings in
# bench/results/rollout.json are of this version.


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
    ``methods``: name -> (setup, run); ``setup(round)`` (untimed, then a garbage
    collection) makes run's argument, from the same data for every method of a round.

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
            state = setup(rnd)
            gc.collect()
            f, w, c = _minor_faults(), time.perf_counter(), time.thread_time()
            run(state)
            cpu[name].append(time.thread_time() - c)
            wall[name].append(time.perf_counter() - w)
            faults[name].append(_minor_faults() - f)
            del state  # the infos die outside the timed region
    return {"wall": wall, "cpu": cpu, "minor_faults": faults}


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="7 repetitions, no JSON")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--infos", type=int, default=1024)
    parser.add_argument("--out", default=None, help="JSON path (default: results/rollout.json)")
    parser.add_argument("--profile", action="store_true", help="cProfile of add() instead")
    args = parser.parse_args(argv)
    reps = args.reps or (7 if args.quick else 15)

    import torch  # noqa: F401  (Metta's trainer has it imported: torch.is_tensor per leaf)

    from fusedstats.rollout import RolloutStats, warmup

    warmup()
    n = args.infos
    if args.profile:
        prof = cProfile.Profile()
        for seed in range(20):
            infos = rollout_infos(n, seed)
            stats = RolloutStats()
            prof.runcall(stats.add, infos)
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
        return 0

    def fresh(rnd: int) -> list[dict[str, Any]]:
        return rollout_infos(n, seed=1000 + rnd)

    kept = RolloutStats()

    def fused_setup(rnd: int) -> tuple[Any, list[dict[str, Any]]]:
        kept.clear()
        return kept, fresh(rnd)

    def fused_run(state: tuple[Any, list[dict[str, Any]]]) -> dict[str, float]:
        stats, infos = state
        stats.add(infos)
        return stats.means()  # type: ignore[no-any-return]

    def flatten_only(infos: list[dict[str, Any]]) -> Any:
        return kept._flattener.flatten(infos)  # fusedstats internals: add()'s first phase

    methods = {
        "fusedstats": (fused_setup, fused_run),
        "metta": (fresh, metta_way),
        "plain": (fresh, plain_way),
        FLATTEN: (fresh, flatten_only),
    }
    load_before = os.getloadavg()
    timings = race(methods, reps)
    wall, cpu = timings["wall"], timings["cpu"]
    load_after = os.getloadavg()

    # The same infos through each way: the means must agree.
    same = rollout_infos(n, 12345)
    stats = RolloutStats()
    stats.add(same)
    got, want = stats.means(), metta_way(same)
    max_rel = max(abs(got[k] - want[k]) / max(abs(want[k]), 1e-300) for k in want)
    agree = set(got) == set(want) and max_rel < 1e-12

    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    med_faults = {k: statistics.median(v) for k, v in timings["minor_faults"].items()}
    fused = med["fusedstats"]
    per_1024 = fused * 1024 / n
    speedup = med["metta"] / fused
    compiled = compile_times()

    rows = []
    for name in methods:
        rows.append(
            [
                name,
                fmt_ms(med[name]),
                fmt_ms(med_cpu[name]),
                fmt_ms(min(wall[name])),
                f"{med_faults[name]:g}",
                f"{med[name] / fused:.2f}x",
            ]
        )
    header = ["method", "median (wall)", "median (cpu)", "min (wall)", "faults", "x fusedstats"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"rollout aggregation: {n} infos x 50 numeric leaves, {reps} repetitions")
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(
        f"\nspeed-up vs metta: {speedup:.2f}x (target >= {TARGET_SPEEDUP:g}x: "
        f"{'met' if speedup >= TARGET_SPEEDUP else 'MISSED'}); fusedstats per 1,024 infos: "
        f"{fmt_ms(per_1024)} (target <= {fmt_ms(TARGET_SECONDS_PER_1024)}: "
        f"{'met' if per_1024 <= TARGET_SECONDS_PER_1024 else 'MISSED'})"
    )
    print(f"means agree with metta's: {agree} (max relative difference {max_rel:.2e})")
    print(
        f"of fusedstats' {fmt_ms(fused)}: flattening the dicts {fmt_ms(med[FLATTEN])}, the "
        f"rest (numba reduction, means) {fmt_ms(fused - med[FLATTEN])}"
    )
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
            "settings": {
                "infos": n,
                "numeric_leaves_per_info": 50,
                "per_agent_arrays_per_info": 8,
                "agents": N_AGENTS,
                "reps": reps,
                "quick": args.quick,
            },
            "seconds": {"median_wall": med, "median_cpu": med_cpu, "wall": wall, "cpu": cpu},
            "minor_page_faults": {"median": med_faults, "all": timings["minor_faults"]},
            "fusedstats_seconds_per_1024_infos": per_1024,
            "speedup_vs_metta": speedup,
            "speedup_vs_plain": med["plain"] / fused,
            "targets": {
                "speedup_vs_metta": TARGET_SPEEDUP,
                "seconds_per_1024_infos": TARGET_SECONDS_PER_1024,
                "speedup_met": speedup >= TARGET_SPEEDUP,
                "time_met": per_1024 <= TARGET_SECONDS_PER_1024,
            },
            "means_agree": agree,
            "means_max_relative_difference": max_rel,
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
