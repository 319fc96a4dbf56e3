"""The extended pass (kurtosis, smallest |x|, dynamic range, bf16/fp16/e4m3/e5m2 range
health, exponent histogram) against the default pass and against pure torch.

    python bench/bench_extended.py [--quick] [--reps N] [--out PATH]

Case (b) of the tensor-stats benchmark: 50 float32 tensors, 100M elements in all
(``--quick``: 10M), on the CPU. Raced in one interleaved loop (medians of ``--reps``):

- ``default``: ``fusedstats.tensor_stats(tensors).host()``: the 15 base statistics.
- ``extended``: ``fusedstats.tensor_stats(tensors, extended=True)``, rows and histogram
  read back: the base statistics and the 11 extended columns and 280-bin histograms,
  one pass.
- ``torch``: the fastest pure-torch way we found to the same columns: the exact base
  statistics of :func:`fusedstats.kernels.fallback.stats_buffer`, then per tensor the
  central 2nd/4th powers of the data shifted by its mean (float64 sums), the smallest
  nonzero |x|, four overflow counts and ``torch.frexp`` exponents counted with
  ``torch.bincount`` — every result on the device, one read back.

Targets (issue 12): extended <= 1.5x default, and >= 10x faster than torch. Writes
JSON (default bench/results/extended.json; ``--quick`` writes only to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "extended.json"
TARGET_OVER_DEFAULT = 1.5
TARGET_OVER_TORCH = 10.0
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10M elements, 3 reps, no JSON")
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    import torch

    import fusedstats
    from fusedstats.bench.timing import machine_info, race

    numel = 10_000_000 if args.quick else 100_000_000
    reps = args.reps or (3 if args.quick else 9)
    g = torch.Generator().manual_seed(0)
    tensors = [torch.randn(numel // 50, generator=g) * 0.02 for _ in range(50)]

    def extended() -> Any:
        s = fusedstats.tensor_stats(tensors, extended=True)
        return s.host(), s.exponent_histogram.numpy()

    methods = {
        "default": lambda: fusedstats.tensor_stats(tensors).host(),
        "extended": extended,
        "torch": lambda: torch_extended(tensors),
    }
    load_before = os.getloadavg()
    result = race(methods, reps, budget_s={"torch": 60.0})
    med = {name: result.median(name) for name in methods}
    over_default = med["extended"] / med["default"]
    over_torch = med["torch"] / med["extended"]
    # Cross-check: the histograms of both ways agree exactly.
    fs_hist = result.outputs["extended"][1][:-1]
    torch_hist = result.outputs["torch"][1][:, 7:]
    report = {
        "machine": machine_info("cpu"),
        "settings": {
            "case": "(b) 50 tensors float32",
            "elements": numel,
            "reps": reps,
            "threads": fusedstats.get_num_threads(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
        },
        "median_ms": {name: round(m * 1e3, 3) for name, m in med.items()},
        "seconds": result.times,
        "extended_over_default": round(over_default, 3),
        "torch_over_extended": round(over_torch, 2),
        "histograms_agree": bool((fs_hist == torch_hist).all()),
        "targets": {
            "extended_at_most_1_5x_default": over_default <= TARGET_OVER_DEFAULT,
            "at_least_10x_faster_than_torch": over_torch >= TARGET_OVER_TORCH,
        },
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    for name, m in med.items():
        print(f"{name:>9}: {m * 1e3:9.2f} ms")
    print(
        f"extended / default: {over_default:.2f}x (target <= {TARGET_OVER_DEFAULT}x); "
        f"torch / extended: {over_torch:.1f}x (target >= {TARGET_OVER_TORCH:.0f}x); "
        f"histograms agree: {report['histograms_agree']}"
    )
    path = Path(args.out) if args.out else (None if args.quick else DEFAULT_OUT)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
