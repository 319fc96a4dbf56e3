"""``fusedstats bench``: the benchmark suite, one table of medians and ratios.

Four parts, each racing fusedstats against its reference in one interleaved loop
(medians; the machines are shared and noisy, so only ratios measured in the same run
are compared):

- ``tensor_stats``: every statistic of a 4.8M-parameter model's gradients
  (:mod:`fusedstats.bench.demo`) vs pure torch computing the same statistics, and vs
  ``torch._foreach_norm`` computing the norm alone;
- ``logger``: ``MetricsLogger`` vs a plain-Python logger
  (:mod:`fusedstats.bench.logger_baseline`): ``log_value``, ``reduce()`` of 1,000
  keys, ``merge_and_log_n_dicts`` of 32 results x 200 keys. RLlib is not a dependency;
  ``bench/bench_logger.py`` in a checkout races it where it is installed;
- ``rollout``: ``RolloutStats`` (add + means) of 1,024 info dicts vs Metta's
  accumulation and ``np.mean`` (:mod:`fusedstats.bench.workloads`);
- ``reporter``: ``report_epoch`` with ~1,500 payload keys vs the same payload built
  per key in Python.

The full-size tensor-stats benchmark (three cases against the read bandwidth) is
``python bench/bench_tensor_stats.py`` in a checkout (:mod:`fusedstats.bench.tensor_stats`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .timing import host_info, race_with_setup

PARTS = ("tensor_stats", "logger", "rollout", "reporter")
DEFAULT_OUT = "bench-results.json"
QUICK_OUT = "bench-results-quick.json"


@dataclass
class Row:
    """One line of the table: fusedstats' median, the reference's, and their ratio."""

    part: str
    case: str
    unit: str  # "ms" or "ns/call"
    fusedstats: float  # median, in ``unit``
    reference: float  # median, in ``unit``
    reference_name: str
    reps: int

    @property
    def ratio(self) -> float:
        """Reference time / fusedstats time (> 1: fusedstats is faster)."""
        return self.reference / self.fusedstats if self.fusedstats > 0 else float("inf")


def _ms(seconds: float) -> float:
    return seconds * 1e3


# ---- the parts ------------------------------------------------------------------------


def tensor_stats_part(quick: bool, device: str) -> list[Row]:
    """Gradient statistics of the synthetic conv+MLP model (each side at its faster
    thread count, as :func:`fusedstats.bench.demo.run_demo` races them)."""
    from .demo import run_demo

    reps = 7 if quick else 15
    result = run_demo(reps=reps, device=device, log=lambda _line: None)
    med, best = result["median_s"], result["best"]
    fused = med[best["fusedstats"]]
    case = f"{result['n_tensors']} gradients, {result['numel'] / 1e6:.1f}M float32 ({device})"
    return [
        Row(
            "tensor_stats",
            case + ", every stat",
            "ms",
            _ms(fused),
            _ms(med[best["torch_vectorized"]]),
            "pure torch, the same 15 stats",
            reps,
        ),
        Row(
            "tensor_stats",
            case + ", every stat vs the norm only",
            "ms",
            _ms(fused),
            _ms(med[best["foreach_norm"]]),
            "torch._foreach_norm (norm only)",
            reps,
        ),
    ]


def logger_part(quick: bool) -> list[Row]:
    """MetricsLogger vs the plain-Python logger on three cases."""
    from fusedstats import MetricsLogger

    from .logger_baseline import PlainLogger

    reps = 7 if quick else 9
    n_log = 20_000 if quick else 200_000
    rng = random.Random(0)
    xs = [rng.random() for _ in range(n_log)]
    loggers: dict[str, Callable[[], Any]] = {"fusedstats": MetricsLogger, "plain": PlainLogger}
    plain = "plain-Python logger (RLlib not installed)"
    rows: list[Row] = []

    def fresh_with_key(make: Callable[[], Any]) -> Callable[[], Any]:
        def setup() -> Any:
            logger = make()
            logger.log_value("loss", 0.5, reduce="mean", window=10)
            return logger

        return setup

    def log_loop(logger: Any) -> None:
        for x in xs:
            logger.log_value("loss", x, reduce="mean", window=10)

    times = race_with_setup(
        {name: (fresh_with_key(make), log_loop) for name, make in loggers.items()}, reps
    )
    rows.append(_row("logger", 'log_value("loss", x, reduce="mean", window=10)', times, n_log,
                     "ns/call", plain, reps))  # fmt: skip

    keys = [f"metric_{i:04d}" for i in range(1000)]
    values = [[rng.random() for _ in range(20)] for _ in keys]
    kept = {name: make() for name, make in loggers.items()}

    def refill(name: str) -> Callable[[], Any]:
        def setup() -> Any:
            logger = kept[name]
            for key, vs in zip(keys, values, strict=True):
                for v in vs:
                    logger.log_value(key, v, reduce="mean", window=10)
            return logger

        return setup

    times = race_with_setup(
        {name: (refill(name), lambda lg: lg.reduce()) for name in loggers}, reps
    )
    rows.append(_row("logger", "reduce() of 1,000 keys (window 10, 20 new values each)", times,
                     1, "ms", plain, reps))  # fmt: skip

    results: dict[str, list[Any]] = {}
    for name, make in loggers.items():
        results[name] = []
        for r in range(32):
            upstream = make()
            local = random.Random(100 + r)
            for key in keys[:200]:
                for _ in range(20):
                    upstream.log_value(key, local.random(), reduce="mean", window=10)
            results[name].append(upstream.reduce())

    def merge(name: str) -> Callable[[Any], Any]:
        return lambda lg: lg.merge_and_log_n_dicts(results[name])

    times = race_with_setup({name: (loggers[name], merge(name)) for name in loggers}, reps)
    rows.append(_row("logger", "merge_and_log_n_dicts, 32 results x 200 keys", times, 1, "ms",
                     plain, reps))  # fmt: skip
    return rows


def rollout_part(quick: bool) -> list[Row]:
    """RolloutStats.add + means vs Metta's accumulation + np.mean, fresh infos each time."""
    from fusedstats.rollout import RolloutStats

    from .workloads import metta_rollout_means, rollout_infos

    reps = 7 if quick else 15
    n = 1024
    kept = RolloutStats()
    rounds = iter(range(10**9))

    def fused_setup() -> Any:
        kept.clear()
        return rollout_infos(n, seed=1000 + next(rounds))

    def fused_run(infos: Any) -> Any:
        kept.add(infos)
        return kept.means()

    times = race_with_setup(
        {
            "fusedstats": (fused_setup, fused_run),
            "metta": (lambda: rollout_infos(n, seed=1000 + next(rounds)), metta_rollout_means),
        },
        reps,
    )
    return [
        _row("rollout", f"aggregate {n:,} info dicts x 50 leaves + means", times, 1, "ms",
             "Metta's accumulate_rollout_stats + np.mean", reps, other="metta"),
    ]  # fmt: skip


def reporter_part(quick: bool) -> list[Row]:
    """report_epoch (~1,500 keys, no sink I/O) vs the payload built per key in Python."""
    from fusedstats.reporter import StatsReporter, StatsReporterConfig

    from . import workloads as w

    reps = 30 if quick else 200
    infos = w.epoch_infos(0)
    quiet = StatsReporterConfig(
        report_to_wandb=False, report_to_console=False, report_to_stats_client=False
    )
    reporter = StatsReporter(quiet)
    watches = {"fusedstats": w.stopwatch(), "plain": w.stopwatch()}
    epoch = [0]

    def fill() -> Any:
        reporter.on_step(infos)
        reporter.update_grad_stats(w.grad_values())
        return reporter

    def report(r: Any) -> None:
        epoch[0] += 1
        r.report_epoch(epoch[0], epoch[0] * 65536, w.LOSSES, w.EXPERIENCE, None,
                       watches["fusedstats"])  # fmt: skip

    try:
        times = race_with_setup(
            {
                "fusedstats": (fill, report),
                "plain": (
                    lambda: w.plain_accumulate(infos),
                    lambda acc: w.plain_payload(acc, watches["plain"], 3e-4, 1, 65536),
                ),
            },
            reps,
            warmup=3,
        )
        keys = len(reporter.get_latest_payload() or {})
    finally:
        reporter.finalize()
    return [
        _row("reporter", f"report_epoch, {keys:,} payload keys, no sink I/O", times, 1, "ms",
             "the same payload built per key in Python", reps),
    ]  # fmt: skip


def _row(
    part: str,
    case: str,
    times: dict[str, list[float]],
    per: int,
    unit: str,
    reference_name: str,
    reps: int,
    other: str = "plain",
) -> Row:
    scale = 1e9 if unit == "ns/call" else 1e3
    med = {name: statistics.median(t) / per * scale for name, t in times.items()}
    return Row(part, case, unit, med["fusedstats"], med[other], reference_name, reps)


# ---- the suite ----------------------------------------------------------------------


def run(
    quick: bool = False,
    only: list[str] | None = None,
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Runs the parts (all, or ``only``); returns rows, timings per part and the host."""
    parts = only or list(PARTS)
    result: dict[str, Any] = {
        "benchmark": "fusedstats bench",
        "quick": quick,
        "device": device,
        "machine": host_info(),
        "rows": [],
        "seconds_per_part": {},
    }
    runners: dict[str, Callable[[], list[Row]]] = {
        "tensor_stats": lambda: tensor_stats_part(quick, device),
        "logger": lambda: logger_part(quick),
        "rollout": lambda: rollout_part(quick),
        "reporter": lambda: reporter_part(quick),
    }
    for part in parts:
        log(f"{part} ...")
        start = time.perf_counter()
        rows = runners[part]()
        result["seconds_per_part"][part] = round(time.perf_counter() - start, 2)
        result["rows"] += [asdict(r) | {"ratio": r.ratio} for r in rows]
    try:
        result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        result["load_average_end"] = None
    return result


def _fmt(value: float, unit: str) -> str:
    return f"{value:,.0f} ns" if unit == "ns/call" else f"{value:.3g} ms"


def format_table(result: dict[str, Any]) -> str:
    """The one table: part, case, fusedstats' median, the reference's, their ratio.

    Example:
        >>> row = {"part": "rollout", "case": "c", "unit": "ms", "fusedstats": 2.0,
        ...        "reference": 10.0, "reference_name": "ref", "reps": 7, "ratio": 5.0}
        >>> print(format_table({"rows": [row], "machine": {}, "quick": True}))
        ... # doctest: +NORMALIZE_WHITESPACE
        fusedstats bench (quick): medians of interleaved repetitions; ratio = reference / fusedstats
        part     case  fusedstats  reference  ratio  reference is
        -------  ----  ----------  ---------  -----  ------------
        rollout  c     2 ms        10 ms      5.0x   ref
    """
    m = result.get("machine", {})
    head = "fusedstats bench" + (" (quick)" if result.get("quick") else "")
    head += ": medians of interleaved repetitions; ratio = reference / fusedstats"
    if m:
        head += (
            f"\n{m.get('cpu_model')}, {m.get('cpu_cores')} cores, "
            f"load {m.get('load_average_1_5_15')}, {m.get('date_utc')}"
        )
    header = ["part", "case", "fusedstats", "reference", "ratio", "reference is"]
    rows = [
        [
            r["part"],
            r["case"],
            _fmt(r["fusedstats"], r["unit"]),
            _fmt(r["reference"], r["unit"]),
            f"{r['ratio']:.1f}x",
            r["reference_name"],
        ]
        for r in result["rows"]
    ]
    widths = [max(len(str(x[i])) for x in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([head, line(header), line(["-" * w for w in widths]), *map(line, rows)])


def main_from_args(args: argparse.Namespace) -> int:
    """``fusedstats bench``: runs the suite, prints the table, writes the JSON."""
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("fusedstats bench: --device cuda, but CUDA is not available", file=sys.stderr)
            return 1
    result = run(
        quick=args.quick,
        only=args.only,
        device=args.device,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(format_table(result))
    path = Path(args.out or (QUICK_OUT if args.quick else DEFAULT_OUT))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")
    return 0


__all__ = ["PARTS", "Row", "format_table", "main_from_args", "run"]
