"""The ``fusedstats`` command: a quick speed demo and the tensor-stats benchmark.

    fusedstats                 same as `fusedstats demo`
    fusedstats demo            a few-second report: gradient stats, fusedstats vs pure torch
    fusedstats bench [--quick] [--out PATH] [--device cpu|cuda]
                               the full tensor-stats benchmark (a table, and JSON with --out)

torch is imported only when a command runs, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    from . import __version__
    from .bench import tensor_stats

    parser = argparse.ArgumentParser(
        prog="fusedstats",
        description="Training statistics nearly free: fused one-pass tensor stats.",
        epilog="With no command, runs `demo`.",
    )
    parser.add_argument("--version", action="version", version=f"fusedstats {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="a few-second speed report on a synthetic model's gradients (the default)",
        description="Gradient statistics of a ~5M-parameter synthetic model: "
        "fusedstats vs the pure-torch reference vs torch._foreach_norm.",
    )
    demo.add_argument(
        "--reps", type=int, default=None, metavar="N", help="timed calls per method (15)"
    )
    demo.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    bench = commands.add_parser(
        "bench",
        help="the tensor-stats benchmark (cases a, b, c; see bench/bench_tensor_stats.py)",
        description="Races fusedstats.tensor_stats against pure torch and the measured "
        "memory-read bandwidth on three cases; prints a table.",
    )
    tensor_stats.add_arguments(bench, default_out=None)
    return parser


def _demo(args: argparse.Namespace) -> int:
    import torch

    from .bench.demo import DEMO_REPS, run_demo

    device = getattr(args, "device", "cpu")
    reps = getattr(args, "reps", None) or DEMO_REPS
    if reps < 1:
        print(f"--reps must be at least 1, got {reps}", file=sys.stderr)
        return 2
    if device == "cuda" and not torch.cuda.is_available():
        print("fusedstats demo: CUDA is not available on this machine; skipped.")
        return 0
    run_demo(reps=reps, device=device)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``fusedstats`` command line; returns the exit status.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 2 on bad arguments (after printing the usage).

    Example:
        >>> main(["--version"])  # doctest: +ELLIPSIS
        fusedstats ...
        0
    """
    parser = _parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as stop:  # --help, --version, or a usage error (status 2)
        return stop.code if isinstance(stop.code, int) else 1
    if args.command == "bench":
        from .bench import tensor_stats

        return tensor_stats.main_from_args(args)
    return _demo(args)


__all__ = ["main"]
