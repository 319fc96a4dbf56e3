"""Tensor-stats benchmark: fusedstats vs pure torch vs the machine's read bandwidth.

    python bench/bench_tensor_stats.py [--quick] [--out PATH] [--device cpu|cuda] [--reps N]

Prints a table and writes JSON (default bench/results/tensor_stats.json; a --quick run
writes only where --out says). The logic lives in ``fusedstats.bench.tensor_stats`` so
that ``fusedstats bench`` runs the same code; this file is the entry point in a checkout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "tensor_stats.json"


def _use_checkout_benchmarks() -> None:
    """Runs this checkout's benchmark code with the installed (compiled) fusedstats.

    The compiled core exists only in the installed package, but the installed copy of
    ``fusedstats.bench`` may be older than the checkout beside this script (or absent).
    Putting the checkout's package folder first on ``fusedstats.__path__`` makes the
    not-yet-imported submodules (``fusedstats.bench.*``) come from the checkout, while
    ``fusedstats._core`` is still found in the installed package.
    """
    import fusedstats

    source = ROOT / "python" / "fusedstats"
    installed = [Path(p).resolve() for p in fusedstats.__path__]
    if source.is_dir() and source.resolve() not in installed:
        fusedstats.__path__.insert(0, str(source))


def main(argv: list[str] | None = None) -> int:
    _use_checkout_benchmarks()
    from fusedstats.bench import tensor_stats

    parser = argparse.ArgumentParser(
        prog="bench_tensor_stats.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    tensor_stats.add_arguments(
        parser,
        default_out=str(DEFAULT_OUT.relative_to(Path.cwd()))
        if DEFAULT_OUT.is_relative_to(Path.cwd())
        else str(DEFAULT_OUT),
    )
    return tensor_stats.main_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
