"""``fusedstats bench``: the benchmark suite, one table of medians and ratios.

Four parts, each racing fusedstats against its reference in one interleaved loop of
:mod:`fusedstats.bench.harness` (medians; the machines are shared and noisy, so only
ratios measured in the same run are compared), each a small version of a script of the
repository's ``bench/`` racing the same workload (:mod:`fusedstats.bench.workloads`):

- ``tensor_stats``: every statistic of a 4.8M-parameter model's gradients
  (:mod:`fusedstats.bench.demo`) vs pure torch computing the same statistics, and vs
  ``torch._foreach_norm`` computing the norm alone;
- ``logger``: ``MetricsLogger`` vs a plain-Python logger
  (:mod:`fusedstats.bench.logger_baseline`): ``log_value``, ``reduce()`` of 1,000
  keys, ``merge_and_log_n_dicts`` of 32 results x 200 keys. RLlib is not a dependency;
  ``bench/bench_logger.py`` in a checkout races it where it is installed;
- ``rollout``: ``RolloutStats`` (add + means) of 1,024 info dicts vs Metta's
  accumulation and ``np.mean`` (``bench/bench_rollout.py`` races more ways and shapes);
- ``reporter``: ``report_epoch`` with ~1,500 payload keys vs the same payload built
  per key in Python (``bench/bench_reporter.py`` also times its parts).

The suite has no targets of its own: it is the quick overview an installed package can
run; the scripts state and check the targets.

The full-size tensor-stats benchmark (three cases against the read bandwidth) is
``python bench/bench_tensor_stats.py`` in a checkout (:mod:`fusedstats.bench.tensor_stats`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .harness import Race, finish_report, new_report, race, render_table, write_json

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
    """MetricsLogger vs the plain-Python logger on three cases (as bench/bench_logger.py
    races them, without RLlib)."""
    from fusedstats import MetricsLogger

    from .logger_baseline import PlainLogger
    from .workloads import logger as w

    reps = 7 if quick else 9
    n_log = 20_000 if quick else 200_000
    loggers: dict[str, type] = {"fusedstats": MetricsLogger, "plain": PlainLogger}
    plain = "plain-Python logger (RLlib not installed)"
    case = "log_value_mean_window10"
    r = race(w.log_value_methods(loggers, case, w.log_values(n_log)), reps, collect="after_setup")
    rows = [_row("logger", w.LOG_VALUE_CASES[case][0], r, n_log, "ns/call", plain)]
    r = race(w.reduce_methods(loggers), reps, collect="after_setup")
    rows.append(_row("logger", "reduce() of 1,000 keys (window 10, 20 new values each)", r, 1,
                     "ms", plain))  # fmt: skip
    results = {name: w.upstream_results(cls) for name, cls in loggers.items()}
    r = race(w.merge_methods(loggers, results), reps, collect="after_setup")
    rows.append(_row("logger", "merge_and_log_n_dicts, 32 results x 200 keys", r, 1, "ms", plain))
    return rows


def rollout_part(quick: bool) -> list[Row]:
    """RolloutStats.add + means vs Metta's accumulation + np.mean, fresh infos each time."""
    from .workloads.rollout import race_rollout, rollout_infos

    reps = 7 if quick else 15
    n = 1024
    r = race_rollout(rollout_infos, n, reps, ways=("metta",))
    return [
        _row("rollout", f"aggregate {n:,} info dicts x 50 leaves + means", r, 1, "ms",
             "Metta's accumulate_rollout_stats + np.mean", other="metta"),
    ]  # fmt: skip


def reporter_part(quick: bool) -> list[Row]:
    """report_epoch (~1,500 keys, no sink I/O) vs the payload built per key in Python."""
    from .workloads import reporter as w

    reps = 30 if quick else 200
    infos = w.epoch_infos(0)
    reporter = w.quiet_reporter()
    optimizer = w.small_optimizer()
    methods = {
        "fusedstats": w.report_epoch_method(reporter, infos, optimizer),
        "plain": w.plain_payload_method(infos, float(optimizer.param_groups[0]["lr"])),
    }
    try:
        r = race(methods, reps, warmup=3, collect="after_setup")
    finally:
        reporter.finalize()
    keys = len(r.outputs["fusedstats"] or {})
    return [
        _row("reporter", f"report_epoch, {keys:,} payload keys, no sink I/O", r, 1, "ms",
             "the same payload built per key in Python"),
    ]  # fmt: skip


def _row(
    part: str, case: str, r: Race, per: int, unit: str, reference_name: str, other: str = "plain"
) -> Row:
    scale = 1e9 if unit == "ns/call" else 1e3
    fused, ref = (r.median(n) / per * scale for n in ("fusedstats", other))
    return Row(part, case, unit, fused, ref, reference_name, len(r.times["fusedstats"]))


# ---- the suite ----------------------------------------------------------------------


def run(
    quick: bool = False,
    only: list[str] | None = None,
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Runs the parts (all, or ``only``); returns rows, timings per part and the machine."""
    parts = only or list(PARTS)
    result = new_report("fusedstats bench", quick=quick, device=device, settings={"parts": parts})
    result.update({"device": device, "rows": [], "seconds_per_part": {}})
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
    return finish_report(result)


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
    return head + "\n" + render_table(header, rows)


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
    path = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)  # quick: its own file
    print(f"\nwrote {write_json(result, path)}")
    return 0


__all__ = ["PARTS", "Row", "format_table", "main_from_args", "run"]
