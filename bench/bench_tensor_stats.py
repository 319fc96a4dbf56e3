"""Tensor-stats benchmark: fusedstats vs pure torch vs the machine's read bandwidth.

    python bench/bench_tensor_stats.py [--quick] [--out PATH] [--device cpu|cuda]
                                       [--reps N] [--threads N]

The benchmark is ``fusedstats.bench.tensor_stats`` of the installed package (its cases,
methods and targets are described there and in bench/README.md); this file is its
entry point in a checkout, with the checkout's results folder as the default output.
Reinstall fusedstats after changing the benchmark's code: what runs is what is
installed. Prints a table and writes JSON (default bench/results/tensor_stats.json; a
--quick run writes only where --out says).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fusedstats.bench import tensor_stats

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "tensor_stats.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench_tensor_stats.py", description=(__doc__ or "").split("\n\n")[0]
    )
    tensor_stats.add_arguments(parser, default_out=str(DEFAULT_OUT), checkout=str(ROOT))
    return tensor_stats.main_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
