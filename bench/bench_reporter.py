"""StatsReporter benchmark: one ``report_epoch`` with ~1,500 payload keys, no sink I/O.

    python bench/bench_reporter.py [--quick] [--out PATH] [--reps N] [--profile] [--note TEXT]

Before every repetition (untimed): the rollout infos of an epoch go through
``on_step`` (32 info dicts x 1,350 numeric leaves, nested two levels, with per-agent
arrays of 24 and a few non-numeric leaves), and ~40 ``grad/`` values through
``update_grad_stats``. Timed: ``report_epoch`` with 12 losses, 20 experience stats, a
real torch optimizer, a trainer config with hyperparameters, eval scores, and a
``Stopwatch`` of 20 timers, so the payload has ~1,500 keys (rollout means, losses,
experience, timing, grad, ...). The reporter has no sink (no W&B run, no console, no
JSONL): sink I/O runs on a background thread and is not the training loop's cost. The
workload is ``fusedstats.bench.workloads.reporter`` (``fusedstats bench`` races the
same).

Raced in the same loop, interleaved (medians of 200 repetitions, 30 with ``--quick``,
after 5 warm-up calls; a garbage collection after every untimed setup):

- ``report_epoch``: the case of the target;
- ``report_epoch + no-op sink``: the same with one sink that does nothing, to show
  what queueing a payload for the background thread adds;
- ``plain python``: the same payload built the way a plain trainer does it, from a
  ``defaultdict(list)`` of the same values with ``np.mean`` per key (the reference the
  reporter replaces; its accumulation, the rollout benchmark's subject, is untimed);
- the parts of ``report_epoch``: ``RolloutStats.means()``, ``compute_timing_stats`` and
  ``build_wandb_payload``.

Target: ``report_epoch`` median <= 2 ms. Prints a table and writes JSON (default
bench/results/reporter.json; a --quick run writes only where --out says).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fusedstats.bench.harness import (
    Method,
    add_common_arguments,
    finish_report,
    fmt_time,
    new_report,
    race,
    render_table,
    save_report,
)
from fusedstats.bench.workloads import reporter as w
from fusedstats.bench.workloads.rollout import N_AGENTS

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "reporter.json"
TARGET_MEDIAN_S = 2e-3  # report_epoch with ~1,500 keys, excluding sink I/O


class NoOpSink:
    """A sink that does nothing: what handing a payload to the sink thread costs."""

    name = "noop"

    def write(self, payload: Any, *, step: int, epoch: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def build_methods(infos: list[dict[str, Any]]) -> tuple[dict[str, Method], list[Any]]:
    """The raced methods, and the reporters to finalize after the race."""
    from fusedstats.reporter import (
        build_wandb_payload,
        compute_timing_stats,
        process_training_stats,
    )

    reporter, with_sink = w.quiet_reporter(), w.quiet_reporter(NoOpSink())
    parts = w.quiet_reporter()
    optimizer = w.small_optimizer()
    lr = float(optimizer.param_groups[0]["lr"])
    parts.on_step(infos)
    means = parts.state.rollout_stats.means()
    processed = process_training_stats(means, w.LOSSES, w.EXPERIENCE)
    timing = compute_timing_stats(w.stopwatch(), w.STEPS_PER_EPOCH)
    methods = {
        "report_epoch": w.report_epoch_method(reporter, infos, optimizer),
        "report_epoch + no-op sink": w.report_epoch_method(with_sink, infos, optimizer),
        "plain python": w.plain_payload_method(infos, lr),
        "part: RolloutStats.means()": Method(run=lambda _: parts.state.rollout_stats.means()),
        "part: compute_timing_stats": Method(
            setup=w.stopwatch, run=lambda watch: compute_timing_stats(watch, w.STEPS_PER_EPOCH)
        ),
        "part: build_wandb_payload": Method(
            run=lambda _: build_wandb_payload(
                processed,
                timing,
                {},
                w.grad_values(),
                {},
                {},
                {"learning_rate": lr},
                {},
                w.eval_scores(),
                agent_step=w.STEPS_PER_EPOCH,
                epoch=1,
            )
        ),
    }
    return methods, [reporter, with_sink, parts]


def compare(fused: dict[str, float], plain: dict[str, float]) -> dict[str, Any]:
    """How the reporter's env_ means compare with np.mean's."""
    env = [k for k in plain if k.startswith("env_")]
    missing = [k for k in env if k not in fused]
    worst = max((abs(fused[k] - plain[k]) for k in env if k in fused), default=0.0)
    return {"env_keys": len(env), "missing": missing[:10], "max_abs_diff": worst}


def profile(infos: list[dict[str, Any]]) -> None:
    """cProfile of 50 ``report_epoch`` calls (for whoever tunes the reporter)."""
    import cProfile
    import pstats

    methods, reporters = build_methods(infos)
    method = methods["report_epoch"]
    assert method.setup is not None
    prof = cProfile.Profile()
    for _ in range(50):
        state = method.setup()
        prof.enable()
        method.run(state)
        prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    for r in reporters:
        r.finalize()


def records(result: Any) -> dict[str, Any]:
    """Per method: median, min, p90, repetitions, and plain python's median over it."""
    base = result.median("plain python") if "plain python" in result.names else None
    out = {}
    for name in result.names:
        out[name] = result.summary(name)
        out[name]["plain_over_this"] = base / result.median(name) if base else None
    return out


def print_report(report: dict[str, Any]) -> None:
    settings = report["settings"]
    print(
        f"report_epoch: {report['payload_keys']} payload keys ({settings['infos_per_epoch']} "
        f"infos x {settings['numeric_leaves_per_info']} numeric leaves per epoch, "
        f"{settings['timers']} timers, {settings['grad_values']} grad values), "
        f"{settings['reps']} repetitions, no sink I/O"
    )
    rows = [
        [
            name,
            fmt_time(r["median_s"]),
            fmt_time(r["p90_s"]),
            fmt_time(r["min_s"]),
            "-" if r["plain_over_this"] is None else f"{r['plain_over_this']:.1f}x",
        ]
        for name, r in report["cases"].items()
    ]
    print(render_table(["case", "median", "p90", "min", "plain/this"], rows))
    for name, error in report["errors"].items():
        print(f"FAILED {name}: {error}")
    target = report["target"]
    print(
        f"\ntarget: report_epoch median <= {fmt_time(TARGET_MEDIAN_S)}: "
        f"{fmt_time(target['measured_s'])} -> {'MET' if target['met'] else 'MISSED'}"
    )
    print(f"agreement with np.mean: {report['agreement_with_np_mean']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench_reporter.py", description=(__doc__ or "").split("\n\n")[0]
    )
    add_common_arguments(parser, DEFAULT_OUT)
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (200; quick 30)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile table and exit")
    parser.add_argument("--note", default=None, help="free text kept in the JSON")
    args = parser.parse_args(argv)

    infos = w.epoch_infos(0)
    if args.profile:
        profile(infos)
        return 0
    reps = args.reps or (30 if args.quick else 200)
    report = new_report(
        "reporter",
        quick=args.quick,
        checkout=ROOT,
        settings={
            "reps": reps,
            "infos_per_epoch": w.N_INFOS,
            "numeric_leaves_per_info": w.N_GROUPS * w.N_LEAVES,
            "per_agent_arrays_per_info": w.N_GROUPS * w.N_AGENT_ARRAYS,
            "agents": N_AGENTS,
            "timers": w.N_TIMERS,
            "grad_values": w.N_GRAD,
            "sinks": "none (and one no-op sink in its own case)",
        },
    )
    report["note"] = args.note
    methods, reporters = build_methods(infos)
    try:
        result = race(methods, reps, warmup=5, collect="after_setup", keep_going=True)
    finally:
        for r in reporters:
            r.finalize()
    fused = result.outputs.get("report_epoch") or {}
    report["payload_keys"] = len(fused)
    report["cases"] = records(result)
    median = report["cases"].get("report_epoch", {}).get("median_s")
    report["target"] = {
        "report_epoch_median_s": TARGET_MEDIAN_S,
        "measured_s": median,
        "met": median is not None and median <= TARGET_MEDIAN_S,
    }
    report["errors"] = result.errors
    report["agreement_with_np_mean"] = compare(fused, result.outputs.get("plain python") or {})
    finish_report(report)
    print_report(report)
    save_report(report, args.out, args.quick, DEFAULT_OUT)
    return 0 if not result.errors else 1


if __name__ == "__main__":
    sys.exit(main())
