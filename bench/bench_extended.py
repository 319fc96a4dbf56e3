"""The extended pass (kurtosis, smallest |x|, dynamic range, bf16/fp16/e4m3/e5m2 range
health, exponent histogram) against the default pass and against pure torch.

    python bench/bench_extended.py [--quick] [--reps N] [--out PATH]

Case (b) of the tensor-stats benchmark: 50 float32 tensors, 100M elements in all
(``--quick``: 10M), on the CPU. Raced in one interleaved loop (medians of ``--reps``,
default 9, 3 with ``--quick``):

- ``default``: ``fusedstats.tensor_stats(tensors).host()``: the 15 base statistics.
- ``extended``: ``fusedstats.tensor_stats(tensors, extended=True)``, rows and histogram
  read back: the base statistics and the 11 extended columns and 280-bin histograms,
  one pass.
- ``torch``: the fastest pure-torch way we found to the same columns: the exact base
  statistics of :func:`fusedstats.kernels.fallback.stats_buffer`, then per tensor the
  central 2nd/4th powers of the data shifted by its mean (float64 sums), the smallest
  nonzero |x|, four overflow counts and ``torch.frexp`` exponents counted with
  ``torch.bincount`` — every result on the device, one read back.

Targets: the extended pass costs at most 1.5x the default pass, and is at least 10x
faster than torch; the histograms of both ways agree exactly. Writes JSON (default
bench/results/extended.json; ``--quick`` writes only to ``--out``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fusedstats.bench.harness import (
    add_common_arguments,
    call,
    finish_report,
    new_report,
    race,
    save_report,
)
from fusedstats.bench.workloads.tensors import normal_tensors

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "extended.json"
TARGET_OVER_DEFAULT = 1.5
TARGET_OVER_TORCH = 10.0
TORCH_BUDGET_S = 60.0  # torch takes seconds per call at full size
FORMAT_MAX = (3.3895313892515355e38, 65504.0, 448.0, 57344.0)


def torch_extended(tensors: list[Any]) -> Any:
    """The extended statistics of every tensor, in pure torch (on their device)."""
    import torch

    from fusedstats.kernels import fallback

    base = fallback.stats_buffer(tensors)
    inf = torch.tensor(float("inf"))
    per_tensor = []
    for x in tensors:
        d = x - x.mean()
        d2 = d * d
        m2 = d2.sum(dtype=torch.float64)
        m4 = (d2 * d2).sum(dtype=torch.float64)
        a = x.abs()
        min_abs = torch.where(a > 0, a, inf).min()
        over = [(a > limit).sum() for limit in FORMAT_MAX]
        exponent = torch.frexp(x).exponent.to(torch.int64) + 150
        hist = torch.bincount(torch.where(x == 0, 0, exponent.clamp(1, 279)), minlength=280)
        kurtosis = x.numel() * m4 / (m2 * m2) - 3.0
        log_range = torch.log2(a.max().double()) - torch.log2(min_abs.double())
        per_tensor.append(
            torch.cat([torch.stack([kurtosis, min_abs.double(), log_range, *over]).double(), hist])
        )
    return base, torch.stack(per_tensor).cpu().numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add_common_arguments(parser, DEFAULT_OUT)
    parser.add_argument("--reps", type=int, default=None, help="timed calls (9; quick 3)")
    args = parser.parse_args(argv)

    import fusedstats

    numel = 10_000_000 if args.quick else 100_000_000
    reps = args.reps or (3 if args.quick else 9)
    tensors = normal_tensors(50, numel)

    def extended() -> Any:
        s = fusedstats.tensor_stats(tensors, extended=True)
        return s.host(), s.exponent_histogram.numpy()

    report = new_report(
        "extended",
        quick=args.quick,
        checkout=ROOT,
        settings={"case": "(b) 50 tensors float32", "elements": numel, "reps": reps},
    )
    result = race(
        {
            "default": lambda: fusedstats.tensor_stats(tensors).host(),
            "extended": extended,
            "torch": call(lambda: torch_extended(tensors), budget_s=TORCH_BUDGET_S),
        },
        reps,
    )
    over_default = result.ratio("extended", "default")
    over_torch = result.ratio("torch", "extended")
    # Cross-check: the histograms of both ways agree exactly.
    fs_hist = result.outputs["extended"][1][:-1]
    torch_hist = result.outputs["torch"][1][:, 7:]
    agree = bool((fs_hist == torch_hist).all())
    report.update(
        {
            "median_ms": {name: m * 1e3 for name, m in result.medians().items()},
            "seconds": result.times,
            "extended_over_default": over_default,
            "torch_over_extended": over_torch,
            "histograms_agree": agree,
            "targets": {
                "extended_at_most_1_5x_default": over_default <= TARGET_OVER_DEFAULT,
                "at_least_10x_faster_than_torch": over_torch >= TARGET_OVER_TORCH,
            },
        }
    )
    finish_report(report)
    for name, m in result.medians().items():
        print(f"{name:>9}: {m * 1e3:9.2f} ms")
    print(
        f"extended / default: {over_default:.2f}x (target <= {TARGET_OVER_DEFAULT}x); "
        f"torch / extended: {over_torch:.1f}x (target >= {TARGET_OVER_TORCH:.0f}x); "
        f"histograms agree: {agree}"
    )
    save_report(report, args.out, args.quick, DEFAULT_OUT)
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
