"""The ``fusedstats`` command: the demo training run, its report, the benchmarks, the server.

    fusedstats                       same as `fusedstats demo` with its defaults
    fusedstats demo [--epochs N] [--envs N] [--device cpu|cuda] [--out DIR] [--wandb] ...
                                     PPO on a vectorized grid world, every stat through
                                     fusedstats: store + JSONL + TensorBoard (+ W&B)
    fusedstats report RUN_DIR [--out DIR] [--run-id ID]
                                     PNG plots and an HTML page of a run, from its store
    fusedstats bench [--quick] [--out PATH] [--only PART ...]
                                     the benchmark suite: one table of medians and ratios
    fusedstats serve [--db URL] [--host H] [--port N] ...
                                     the stats server (a store shared by several trainers)

Nothing heavy is imported to build the parser, so ``--help`` is instant: torch,
matplotlib, SQLAlchemy and the server's modules load when their command runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

BENCH_PARTS = ("tensor_stats", "logger", "rollout", "reporter")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .demo.config import DemoConfig

    d = DemoConfig()
    demo = commands.add_parser(
        "demo",
        help="a short PPO training run reporting everything through fusedstats (the default)",
        description="Trains a small torch policy with PPO on a vectorized numpy grid world "
        "(forage) that emits Metta-style info dicts, reporting rollout stats, timing, "
        "gradient and weight stats, losses and eval scores through StatsReporter and "
        "MetricsLogger into an embedded SQLite store, JSONL and TensorBoard files. "
        "Prints the share of each step spent on stats.",
    )
    demo.add_argument("--epochs", type=_positive, default=d.epochs, help=f"({d.epochs})")
    demo.add_argument(
        "--envs", type=_positive, default=d.envs, help=f"environments, 4 agents each ({d.envs})"
    )
    demo.add_argument("--device", choices=("cpu", "cuda"), default=d.device)
    demo.add_argument(
        "--out", default=d.out, metavar="DIR", help=f"runs go to DIR/<name>/ ({d.out})"
    )
    demo.add_argument("--name", default=None, help="the run's name (forage-<UTC time>)")
    demo.add_argument("--seed", type=int, default=d.seed, help=f"({d.seed})")
    demo.add_argument(
        "--threads", type=_positive, default=d.threads, help=f"CPU threads ({d.threads})"
    )
    demo.add_argument(
        "--activation-every",
        type=_positive,
        default=d.activation_every,
        metavar="N",
        help=f"watch activations in one update step in N ({d.activation_every})",
    )
    demo.add_argument(
        "--activation-interval",
        type=_non_negative,
        default=d.activation_interval,
        metavar="EPOCHS",
        help=f"report activation stats every EPOCHS epochs, 0: off ({d.activation_interval})",
    )
    demo.add_argument(
        "--no-health",
        action="store_true",
        help="no activation, optimizer-state or extended gradient stats (to compare)",
    )
    demo.add_argument(
        "--wandb",
        action="store_true",
        help="also log to W&B when wandb is installed (WANDB_MODE=offline is honoured)",
    )
    demo.add_argument("--no-progress", action="store_true", help="no per-epoch progress display")


def _add_report(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report",
        help="PNG plots and an HTML page of a run, read from its stats store",
        description="Reads a run from RUN_DIR/stats.db and writes reward, losses, steps/s, "
        "gradient norm and timing plots (PNG) and index.html with the run's summary.",
    )
    report.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or its stats.db)")
    report.add_argument("--out", default=None, metavar="DIR", help="(RUN_DIR/report)")
    report.add_argument("--run-id", default=None, help="which run of the store (the newest)")


def _add_bench(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = commands.add_parser(
        "bench",
        help="the benchmark suite: tensor stats, logger, rollout, reporter vs references",
        description="Races fusedstats against its references (pure torch, a plain-Python "
        "metrics logger, Metta's rollout accumulation, a plain-Python payload) and prints "
        "one table of medians and ratios; writes JSON.",
    )
    bench.add_argument(
        "--quick", action="store_true", help="smaller sizes and fewer repetitions (< 1 minute)"
    )
    bench.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="JSON path (default: bench-results.json, or bench-results-quick.json)",
    )
    bench.add_argument(
        "--only", nargs="+", choices=BENCH_PARTS, default=None, help="run only these parts"
    )
    bench.add_argument("--device", choices=("cpu", "cuda"), default="cpu")


def _add_serve(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], with_options: bool
) -> None:
    serve = commands.add_parser(
        "serve",
        help="the stats server: one store shared by several trainers over HTTP",
        description="Serves a stats store (SQLite or PostgreSQL) over HTTP.",
    )
    if not with_options:  # only `fusedstats serve ...` pays for the server's imports
        return
    try:
        from .store.server import add_serve_arguments
    except ImportError as e:
        serve.set_defaults(serve_missing=repr(e))
        serve.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return
    add_serve_arguments(serve)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The command-line parser (``argv`` only decides whether the server's options are
    loaded: they are when its first word is ``serve``)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="fusedstats",
        description="Training statistics nearly free: fused tensor stats, a metrics logger "
        "and a trainer stats reporter.",
        epilog="With no command, runs `demo` with its defaults.",
    )
    parser.add_argument("--version", action="version", version=f"fusedstats {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(commands)
    _add_report(commands)
    _add_bench(commands)
    _add_serve(commands, with_options=bool(argv) and argv[0] == "serve")
    return parser


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, run_demo, summary_lines

    config = DemoConfig(
        epochs=args.epochs,
        envs=args.envs,
        device=args.device,
        out=args.out,
        name=args.name,
        seed=args.seed,
        threads=args.threads,
        activation_every=args.activation_every,
        activation_interval=args.activation_interval,
        health=not args.no_health,
        wandb=args.wandb,
        progress=not args.no_progress,
    )
    if config.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("fusedstats demo: --device cuda, but CUDA is not available", file=sys.stderr)
            return 1
    result = run_demo(config)
    for line in summary_lines(result):
        print(line)
    return 0


def _report(args: argparse.Namespace) -> int:
    from .report import build_report

    try:
        report = build_report(args.run_dir, out=args.out, run_id=args.run_id)
    except (FileNotFoundError, LookupError, ValueError) as e:
        print(f"fusedstats report: {e}", file=sys.stderr)
        return 1
    print(f"run {report.run_id}: {len(report.plots)} plots and {report.html}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from .bench import suite

    return suite.main_from_args(args)


def _serve(args: argparse.Namespace) -> int:
    missing = getattr(args, "serve_missing", None)
    if missing is not None:
        print(f"fusedstats serve: the server is not available here: {missing}", file=sys.stderr)
        return 1
    from .store.server import serve_from_args

    return serve_from_args(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``fusedstats`` command line; returns the exit status.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 1 when the command failed, 2 on bad arguments (after printing
        the usage).

    Example:
        >>> main(["--version"])  # doctest: +ELLIPSIS
        fusedstats ...
        0
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    try:
        args = parser.parse_args(args_list)
    except SystemExit as stop:  # --help, --version, or a usage error (status 2)
        return stop.code if isinstance(stop.code, int) else 1
    if args.command is None:  # no command: the demo with its defaults
        args = parser.parse_args(["demo"])
    handlers = {"demo": _demo, "report": _report, "bench": _bench, "serve": _serve}
    return handlers[args.command](args)


__all__ = ["build_parser", "main"]
