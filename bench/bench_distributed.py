"""sync_logger vs a per-key all_reduce loop: 1,000 keys, 4 gloo ranks on this machine.

    python bench/bench_distributed.py [--quick] [--ranks N] [--keys N] [--reps N]
                                      [--naive-reps N] [--out PATH]

Every rank (a spawned process, gloo on 127.0.0.1 through a file:// rendezvous) holds a
``MetricsLogger`` of ``--keys`` keys, a fifth each: window-10 means, EMAs, lifetime
sums (ints), window-10 maxima, window-10 means of a nested key; 10 values per key
first, then one new value per key before every timed call (untimed), as a trainer logs
between syncs. Raced in one run, round-robin (the starting method rotated each round, a
barrier before every call), medians of ``--reps`` rounds (``--naive-reps`` for the slow
loop):

- ``sync_logger``: ``fusedstats.distributed.sync_logger(logger)``: the local reduce, the
  exchange (one all_gather once the buffer size is known) and the merge on every rank.
- ``sync_logger dst=0``: the same, but only rank 0 merges (the others get None): the
  cost when only the rank that logs needs the numbers.
- ``naive``: what many trainers do: ``logger.reduce(return_stats_obj=False)``, then one
  ``all_reduce`` of a float64 scalar tensor per key (then divided by the world size).
- ``reduce only``: the local ``logger.reduce()`` alone (part of both), and
  ``one all_gather``: a single 64-byte all_gather, the latency floor of any collective.

A call's time is the slowest rank's (every rank races with
``fusedstats.bench.harness.race``, a barrier before each call, and the times are
gathered). ``one_rank_cpu_ms``: in the parent process, with no process group (so
nothing travels), the local work of one rank's sync: ``reduce()`` alone,
``sync_logger`` of a ``reduce()`` result (pack, unpack, merge), ``sync_logger`` of the
logger (all three): what the collective and the sharing of the cores add is the rest.

Targets: ``sync_logger`` >= 20x faster than the loop and <= 10 ms per sync on 4 ranks;
on 2 ranks <= 8 ms, and <= 5 ms with ``dst=0``. Writes JSON (default
bench/results/distributed.json; ``--quick`` writes only where ``--out`` says).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from fusedstats.bench.harness import (
    Method,
    add_common_arguments,
    finish_report,
    gloo_world,
    init_gloo,
    new_report,
    race,
    save_report,
    slowest_rank,
)
from fusedstats.bench.workloads.logger import filled_logger

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "distributed.json"
TARGET_RATIO = 20.0
TARGET_SYNC_S = 0.010
# On 2 ranks: every rank merging, and only rank 0 merging.
TARGET_2_RANKS_S = {"sync_logger": 0.008, "sync_logger dst=0": 0.005}


def _rank(rank: int, world: int, init_file: str, cfg: dict[str, Any], out: Any) -> None:
    import torch
    import torch.distributed as dist

    from fusedstats.distributed import sync_logger

    init_gloo(rank, world, init_file, timeout_s=120)
    logger, log_once = filled_logger(cfg["keys"], seed=rank)

    def naive() -> None:
        values = logger.reduce(return_stats_obj=False)
        flat = [(k, v) for k, v in values.items() if not isinstance(v, dict)] + [
            (k, v) for k, v in values["env"]["returns"].items()
        ]
        for _, v in flat:
            t = torch.tensor(float(v), dtype=torch.float64)
            dist.all_reduce(t)
            float(t) / world

    small = torch.zeros(8, dtype=torch.float64)
    gathered = [torch.empty_like(small) for _ in range(world)]
    # One new value per key before every call (untimed), as a trainer logs between syncs.
    methods = {
        "sync_logger": Method(run=lambda _: sync_logger(logger), setup=log_once),
        "sync_logger dst=0": Method(run=lambda _: sync_logger(logger, dst=0), setup=log_once),
        "naive": Method(run=lambda _: naive(), setup=log_once, max_reps=cfg["naive_reps"]),
        "reduce only": Method(run=lambda _: logger.reduce(), setup=log_once),
        "one all_gather": Method(run=lambda _: dist.all_gather(gathered, small), setup=log_once),
    }
    # The first sync_logger call learns the buffer size: the warm-up call.
    result = race(methods, cfg["reps"], before=dist.barrier)
    every: list[Any] = [None] * world
    dist.all_gather_object(every, result.times)
    merged = sync_logger(logger)
    n_leaves = sum(len(v) if isinstance(v, dict) else 1 for v in merged.values()) - 1
    n_leaves += len(merged["env"]["returns"])
    dist.destroy_process_group()
    if rank == 0:
        out.put({"seconds": slowest_rank(every), "keys_synced": n_leaves})


def one_rank_cpu(n_keys: int, reps: int) -> dict[str, float]:
    """Median ms of one rank's local work, in this process with no process group (so
    ``sync_logger`` exchanges nothing): ``reduce()``; ``sync_logger`` of a ``reduce()``
    result (pack, unpack, merge); ``sync_logger`` of the logger (reduce, pack, unpack,
    merge). Every rank does this work (4 ranks on 2 cores: twice the wall time, or more).
    """
    from fusedstats.distributed import sync_logger

    logger, log_once = filled_logger(n_keys, seed=0)

    def reduced() -> Any:
        log_once()
        return logger.reduce()

    methods = {
        "reduce()": Method(run=lambda _: logger.reduce(), setup=log_once),
        "sync_logger(reduce() result)": Method(run=sync_logger, setup=reduced),
        "sync_logger(logger)": Method(run=lambda _: sync_logger(logger), setup=log_once),
    }
    return {name: m * 1e3 for name, m in race(methods, reps).medians().items()}


def run_ranks(ranks: int, cfg: dict[str, Any]) -> dict[str, Any]:
    """Spawns the ranks; returns rank 0's report (the slowest rank's seconds)."""
    got: dict[str, Any] = gloo_world(_rank, ranks, cfg)
    return got


def targets(ranks: int, med: dict[str, float], ratio: float) -> dict[str, bool]:
    met = {
        "ratio_at_least_20x": ratio >= TARGET_RATIO,
        "sync_at_most_10ms": med["sync_logger"] <= TARGET_SYNC_S,
    }
    if ranks == 2:
        met["two_ranks_sync_at_most_8ms"] = med["sync_logger"] <= TARGET_2_RANKS_S["sync_logger"]
        met["two_ranks_dst0_at_most_5ms"] = (
            med["sync_logger dst=0"] <= TARGET_2_RANKS_S["sync_logger dst=0"]
        )
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_common_arguments(parser, DEFAULT_OUT)
    parser.add_argument("--ranks", type=int, default=4)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=None, help="timed rounds (31; quick 8)")
    parser.add_argument("--naive-reps", type=int, default=None, help="of the loop (5; quick 2)")
    args = parser.parse_args(argv)
    reps = args.reps or (8 if args.quick else 31)
    naive_reps = args.naive_reps or (2 if args.quick else 5)
    cfg = {"keys": args.keys, "reps": reps, "naive_reps": min(naive_reps, reps)}
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # ranks share the cores

    report = new_report(
        "distributed",
        quick=args.quick,
        checkout=ROOT,
        settings={
            "ranks": args.ranks,
            "keys": args.keys,
            "backend": "gloo (127.0.0.1, file:// rendezvous)",
            "reps": reps,
            "naive_reps": cfg["naive_reps"],
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        },
    )
    report["one_rank_cpu_ms"] = phases = one_rank_cpu(args.keys, reps)
    got = run_ranks(args.ranks, cfg)
    seconds = got["seconds"]
    med = {name: statistics.median(ts) for name, ts in seconds.items()}
    ratio = med["naive"] / med["sync_logger"]
    report.update(
        {
            "median_ms": {name: m * 1e3 for name, m in med.items()},
            "seconds": seconds,
            "naive_over_sync_logger": ratio,
            "keys_synced": got["keys_synced"],
            "targets": targets(args.ranks, med, ratio),
        }
    )
    finish_report(report)
    print(
        "one rank's local work, no process group (ms):", {k: round(v, 3) for k, v in phases.items()}
    )
    for name, m in med.items():
        print(f"{name:>17}: {m * 1e3:10.3f} ms  (median of {len(seconds[name])})")
    print(
        f"naive / sync_logger: {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x); sync_logger "
        f"{med['sync_logger'] * 1e3:.2f} ms (target <= {TARGET_SYNC_S * 1e3:.0f} ms)"
    )
    print("targets:", report["targets"])
    save_report(report, args.out, args.quick, DEFAULT_OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
