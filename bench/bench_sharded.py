"""Gradient statistics of an FSDP2 model: fusedstats vs what users do today.

    python bench/bench_sharded.py [--quick] [--ranks 2 4] [--reps N] [--out PATH]

Every rank (a spawned process, gloo on 127.0.0.1 through a file:// rendezvous) holds
the same model, wrapped with FSDP2 ``fully_shard`` (every parameter a ``Shard(0)``
DTensor): 8 blocks of Linear(384, 384) + LayerNorm(384) (32 parameters, 1.19 M
elements, uneven shards at 4 ranks; ``fusedstats.bench.workloads.tensors.block_model``).
After one backward, raced in one run with ``fusedstats.bench.harness.race`` in every
rank (the starting method rotated each round, a barrier before every call), the
slowest rank's time of each call, medians of ``--reps`` rounds (21; 5 with
``--quick``):

- ``fusedstats``: ``fusedstats.grad_stats(model, per_parameter=True)``: every field
  (norm, mean, variance, min, max, abs-max, L1, NaN/Inf/zero counts), globally and
  per parameter, identical on every rank; one all_gather.
- ``norm only``: ``torch.nn.utils.get_total_norm`` over the DTensor gradients, then
  ``.full_tensor().item()``: the global norm alone, as ``clip_grad_norm_`` gets it.
- ``stacked all_reduce``: what a careful user writes for the other fields: local
  count, sum, sum of squares, NaN and Inf counts, min and max of every gradient shard,
  stacked, then 3 ``all_reduce`` (SUM, MIN, MAX) and the fields from them (variance by
  the cancelling sum-of-squares formula).
- ``full_tensor loop``: per parameter, ``grad.full_tensor()`` (an all_gather each)
  then the fields with torch on the full gradient.

Target: all fields in no more than 1.5x the time of the norm alone, on 2 and on 4
ranks. Writes JSON (default bench/results/sharded.json; ``--quick`` writes only to
``--out``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from fusedstats.bench.harness import (
    add_common_arguments,
    finish_report,
    gloo_world,
    init_gloo,
    new_report,
    race,
    save_report,
    slowest_rank,
)
from fusedstats.bench.workloads.tensors import block_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "sharded.json"
TARGET_RATIO = 1.5
WIDTH, BLOCKS = 384, 8


def _methods(model: Any, torch: Any, dist: Any) -> dict[str, Any]:
    import fusedstats

    grads = [p.grad for p in model.parameters()]

    def norm_only() -> float:
        total = torch.nn.utils.get_total_norm(grads)
        return float(total.full_tensor().item() if hasattr(total, "full_tensor") else total)

    def stacked_all_reduce() -> dict[str, Any]:
        local = [g.to_local().double() for g in grads]
        sums = torch.stack(
            [
                torch.stack(
                    [
                        torch.tensor(float(x.numel()), dtype=torch.float64),
                        x.nansum(),
                        (x * x).nansum(),
                        x.isnan().sum().double(),
                        x.isinf().sum().double(),
                    ]
                )
                for x in local
            ]
        )
        inf = torch.tensor(float("inf"), dtype=torch.float64)
        lows = torch.stack([x.min() if x.numel() else inf for x in local])
        highs = torch.stack([x.max() if x.numel() else -inf for x in local])
        dist.all_reduce(sums)
        dist.all_reduce(lows, op=dist.ReduceOp.MIN)
        dist.all_reduce(highs, op=dist.ReduceOp.MAX)
        n, s, sq = sums[:, 0], sums[:, 1], sums[:, 2]
        mean = s / n
        var = (sq - s * s / n) / (n - 1)
        return {"mean": mean.tolist(), "var": var.tolist(), "norm": sq.sum().sqrt().item()}

    def full_tensor_loop() -> dict[str, float]:
        out = {}
        for i, g in enumerate(grads):
            full = g.full_tensor().double()
            out[f"{i}/norm"] = full.norm().item()
            out[f"{i}/mean"] = full.mean().item()
            out[f"{i}/var"] = full.var().item()
            out[f"{i}/min"] = full.min().item()
            out[f"{i}/max"] = full.max().item()
            out[f"{i}/l1"] = full.abs().sum().item()
            out[f"{i}/n_nan"] = full.isnan().sum().item()
        return out

    return {
        "fusedstats": lambda: fusedstats.grad_stats(model, per_parameter=True),
        "norm only": norm_only,
        "stacked all_reduce": stacked_all_reduce,
        "full_tensor loop": full_tensor_loop,
    }


def _rank(rank: int, world: int, init_file: str, cfg: dict[str, Any], out: Any) -> None:
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    init_gloo(rank, world, init_file, timeout_s=300)
    model = block_model(WIDTH, BLOCKS)
    mesh = init_device_mesh("cpu", (world,))
    for layer in model:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    x = torch.randn(64, WIDTH, generator=torch.Generator().manual_seed(1))
    model(x).pow(2).mean().backward()
    result = race(_methods(model, torch, dist), cfg["reps"], before=dist.barrier)
    checks = result.outputs  # the warm-up calls' results: a cross-check
    every: list[Any] = [None] * world
    dist.all_gather_object(every, result.times)
    n_params = sum(1 for _ in model.parameters())
    n_elems = sum(p.numel() for p in model.parameters())
    dist.destroy_process_group()
    if rank == 0:
        slowest = slowest_rank(every)
        fs_norm = checks["fusedstats"]["grad/norm"]
        out.put(
            {
                "seconds": slowest,
                "parameters": n_params,
                "elements": n_elems,
                "norm_fusedstats": fs_norm,
                "norm_torch": checks["norm only"],
                "norm_rel_diff": abs(fs_norm - checks["norm only"]) / checks["norm only"],
            }
        )


def run_world(world: int, reps: int) -> dict[str, Any]:
    got: dict[str, Any] = gloo_world(_rank, world, {"reps": reps})
    med = {name: statistics.median(ts) for name, ts in got["seconds"].items()}
    ratio = med["fusedstats"] / med["norm only"]
    return {
        "ranks": world,
        "parameters": got["parameters"],
        "elements": got["elements"],
        "median_ms": {name: m * 1e3 for name, m in med.items()},
        "seconds": got["seconds"],
        "fusedstats_over_norm_only": ratio,
        "target_at_most_1_5x_norm_only": ratio <= TARGET_RATIO,
        "norm_rel_diff_fusedstats_vs_torch": got["norm_rel_diff"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_common_arguments(parser, DEFAULT_OUT)
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--reps", type=int, default=None, help="timed rounds (21; quick 5)")
    args = parser.parse_args(argv)
    reps = args.reps or (5 if args.quick else 21)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # ranks share the cores

    report = new_report(
        "sharded",
        quick=args.quick,
        checkout=ROOT,
        settings={
            "backend": "gloo (127.0.0.1, file:// rendezvous)",
            "model": f"{BLOCKS} x (Linear({WIDTH}, {WIDTH}) + LayerNorm({WIDTH})), fully_shard",
            "reps": reps,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        },
    )
    report["worlds"] = worlds = [run_world(n, reps) for n in args.ranks]
    finish_report(report)
    for w in worlds:
        print(f"--- {w['ranks']} ranks, {w['parameters']} parameters, {w['elements']} elements")
        for name, m in w["median_ms"].items():
            print(f"{name:>20}: {m:10.3f} ms")
        print(
            f"fusedstats / norm only: {w['fusedstats_over_norm_only']:.2f}x "
            f"(target <= {TARGET_RATIO}x)"
        )
    save_report(report, args.out, args.quick, DEFAULT_OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
