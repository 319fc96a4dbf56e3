"""StatsReporter benchmark: one ``report_epoch`` with ~1,500 payload keys, no sink I/O.

    python bench/bench_reporter.py [--quick] [--out PATH] [--reps N] [--profile]

Before every repetition (untimed): the rollout infos of an epoch go through
``on_step`` (32 info dicts x 1,350 numeric leaves, nested two levels, with per-agent
arrays of 24 and a few non-numeric leaves), and ~40 ``grad/`` values through
``update_grad_stats``. Timed: ``report_epoch`` with 12 losses, 20 experience stats, a
real torch optimizer, a trainer config with hyperparameters, eval scores, and a
``Stopwatch`` of 20 timers, so the payload has ~1,500 keys (rollout means, losses,
experience, timing, grad, ...). The reporter has no sink (no W&B run, no console, no
JSONL): sink I/O runs on a background thread and is not the training loop's cost.

Raced in the same loop, interleaved (``racing.race``):

- ``report_epoch``: the case the target is about (target: ``report_epoch`` <= 2 ms
  median);
- ``report_epoch + no-op sink``: the same with one sink that does nothing, to show
  what queueing a payload for the background thread adds;
- ``plain python``: the same payload built the way a plain trainer does it, from a
  ``defaultdict(list)`` of the same values with ``np.mean`` per key (the reference the
  reporter replaces; its accumulation, the rollout benchmark's subject, is untimed);
- the parts of ``report_epoch``: ``RolloutStats.means()``, ``compute_timing_stats`` and
  ``build_wandb_payload``.

Prints a table and writes JSON (default bench/results/reporter.json; a --quick run
writes only where --out says). fusedstats is the installed package.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import racing
from fusedstats.bench.workloads import (
    EXPERIENCE,
    N_AGENT_ARRAYS,
    N_AGENTS,
    N_GRAD,
    N_GROUPS,
    N_INFOS,
    N_LEAVES,
    N_TIMERS,
    epoch_infos,
    grad_values,
    plain_accumulate,
    plain_payload,
)
from fusedstats.bench.workloads import stopwatch as make_stopwatch
from racing import Case, fmt_time, race, render_table

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "reporter.json"
# Target: report_epoch with ~1,500 keys <= 2 ms median, excluding sink I/O.
TARGET_MEDIAN_S = 2e-3

# --- inputs ----------------------------------------------------------------------------
# The epoch's infos, grad values, experience stats, stopwatch and the plain-python
# reference come from fusedstats.bench.workloads (``fusedstats bench`` races the same).
# The losses stay here: a trainer's names (workloads.LOSSES has the same 12 values under
# generic names), passed to plain_payload too.

LOSSES = {
    name: 0.1 * i
    for i, name in enumerate(
        (
            "policy_loss",
            "value_loss",
            "entropy",
            "approx_kl",
            "clipfrac",
            "explained_variance",
            "l2_reg_loss",
            "l2_init_loss",
            "ks_action_loss",
            "ks_value_loss",
            "importance",
            "current_logprobs",
        )
    )
}


def make_optimizer() -> Any:
    import torch

    model = torch.nn.Linear(8, 8)
    return torch.optim.Adam(model.parameters(), lr=3e-4)


TRAINER_CFG = SimpleNamespace(
    batch_size=65536,
    minibatch_size=16384,
    hyperparameters={"ppo": {"clip_coef": 0.1, "ent_coef": 0.01}, "gamma": 0.99},
)


class NoOpSink:
    name = "noop"

    def write(self, payload: Any, *, step: int, epoch: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


# --- the race ----------------------------------------------------------------------------


def build_cases(infos: list[dict[str, Any]]) -> tuple[dict[str, Case], dict[str, Any]]:
    from fusedstats.reporter import (
        EvalRewardSummary,
        StatsReporter,
        StatsReporterConfig,
        build_wandb_payload,
        compute_timing_stats,
        process_training_stats,
    )

    quiet = {"report_to_wandb": False, "report_to_console": False, "report_to_stats_client": False}
    reporter = StatsReporter(StatsReporterConfig(**quiet))
    with_sink = StatsReporter(StatsReporterConfig(**quiet), extra_sinks=[NoOpSink()])
    evals = EvalRewardSummary({"nav": 0.5, "memory": 0.25}, {("nav", "maze"): 0.5})
    for r in (reporter, with_sink):
        r.update_eval_scores(evals)
    optimizer = make_optimizer()
    watches = {"fs": make_stopwatch(), "sink": make_stopwatch(), "plain": make_stopwatch()}
    epoch = [0]

    def fill(r: Any) -> Any:
        r.on_step(infos)
        r.update_grad_stats(grad_values())
        return r

    def report(r: Any, watch: Any) -> None:
        epoch[0] += 1
        r.report_epoch(
            epoch[0],
            epoch[0] * 65536,
            LOSSES,
            EXPERIENCE,
            None,
            watch,
            TRAINER_CFG,
            optimizer,
        )

    parts_reporter = StatsReporter(StatsReporterConfig(**quiet))
    parts_reporter.on_step(infos)
    means = parts_reporter.state.rollout_stats.means()
    processed = process_training_stats(means, LOSSES, EXPERIENCE)
    timing = compute_timing_stats(make_stopwatch(), 65536)

    cases = {
        "report_epoch": Case(
            setup=lambda: fill(reporter),
            run=lambda r: report(r, watches["fs"]),
            check=lambda r: r.get_latest_payload(),
        ),
        "report_epoch + no-op sink": Case(
            setup=lambda: fill(with_sink),
            run=lambda r: report(r, watches["sink"]),
            check=lambda r: r.get_latest_payload(),
        ),
        "plain python": Case(
            setup=lambda: plain_accumulate(infos),
            run=lambda acc: plain_payload(
                acc, watches["plain"], float(optimizer.param_groups[0]["lr"]), 1, 65536, LOSSES
            ),
            check=lambda acc: plain_payload(
                acc, watches["plain"], float(optimizer.param_groups[0]["lr"]), 1, 65536, LOSSES
            ),
        ),
        "part: RolloutStats.means()": Case(
            run=lambda _: parts_reporter.state.rollout_stats.means(),
        ),
        "part: compute_timing_stats": Case(
            setup=make_stopwatch, run=lambda w: compute_timing_stats(w, 65536)
        ),
        "part: build_wandb_payload": Case(
            run=lambda _: build_wandb_payload(
                processed,
                timing,
                {},
                grad_values(),
                {},
                {},
                {"learning_rate": 3e-4},
                {},
                evals,
                agent_step=65536,
                epoch=1,
            )
        ),
    }
    owned = {"reporters": [reporter, with_sink, parts_reporter]}
    return cases, owned


def compare(fused: dict[str, float], plain: dict[str, float]) -> dict[str, Any]:
    """How the reporter's env_ means compare with np.mean's."""
    env = [k for k in plain if k.startswith("env_")]
    missing = [k for k in env if k not in fused]
    worst = max((abs(fused[k] - plain[k]) for k in env if k in fused), default=0.0)
    return {"env_keys": len(env), "missing": missing[:10], "max_abs_diff": worst}


def profile(infos: list[dict[str, Any]]) -> None:
    import cProfile
    import pstats

    cases, owned = build_cases(infos)
    case = cases["report_epoch"]
    prof = cProfile.Profile()
    for _ in range(50):
        state = case.setup()
        prof.enable()
        case.run(state)
        prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    for r in owned["reporters"]:
        r.finalize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench_reporter.py", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (30)")
    parser.add_argument(
        "--out",
        default=None,
        help=f"JSON path (default {DEFAULT_OUT.relative_to(ROOT)}; none for --quick)",
    )
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 200)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile table and exit")
    parser.add_argument("--note", default=None, help="free text kept in the JSON")
    args = parser.parse_args(argv)

    infos = epoch_infos(0)
    if args.profile:
        profile(infos)
        return 0
    reps = args.reps or (30 if args.quick else 200)

    from fusedstats.bench.timing import host_info

    cases, owned = build_cases(infos)
    result = race(cases, reps, warmup=5)
    for r in owned["reporters"]:
        r.finalize()

    fused = result.outputs.get("report_epoch") or {}
    plain = result.outputs.get("plain python") or {}
    base = result.median("plain python") if "plain python" in result.names else None
    rows = []
    records: dict[str, Any] = {}
    for name in result.names:
        times = sorted(result.times[name])
        median = statistics.median(times)
        p90 = times[int(0.9 * (len(times) - 1))]
        ratio = base / median if base else None
        records[name] = {
            "median_s": median,
            "p90_s": p90,
            "min_s": times[0],
            "reps": len(times),
            "plain_over_this": ratio,
        }
        rows.append(
            [
                name,
                fmt_time(median),
                fmt_time(p90),
                fmt_time(times[0]),
                f"{ratio:.1f}x" if ratio else "-",
            ]
        )
    print(
        f"report_epoch: {len(fused)} payload keys ({N_INFOS} infos x "
        f"{N_GROUPS * N_LEAVES} numeric leaves per epoch, {N_TIMERS} timers, "
        f"{N_GRAD} grad values), {reps} repetitions, no sink I/O"
    )
    print(render_table(["case", "median", "p90", "min", "plain/this"], rows))
    for name, error in result.errors.items():
        print(f"FAILED {name}: {error}")
    median = records.get("report_epoch", {}).get("median_s")
    met = median is not None and median <= TARGET_MEDIAN_S
    print(
        f"\ntarget: report_epoch median <= {fmt_time(TARGET_MEDIAN_S)}: "
        f"{fmt_time(median)} -> {'MET' if met else 'MISSED'}"
    )
    agreement = compare(fused, plain)
    machine = host_info()  # the shared host facts, then library versions (racing's)
    machine.update({k: v for k, v in racing.machine_info().items() if k not in machine})
    print(f"agreement with np.mean: {agreement}")

    report = {
        "machine": machine,
        "note": args.note,
        "settings": {
            "quick": args.quick,
            "reps": reps,
            "infos_per_epoch": N_INFOS,
            "numeric_leaves_per_info": N_GROUPS * N_LEAVES,
            "per_agent_arrays_per_info": N_GROUPS * N_AGENT_ARRAYS,
            "agents": N_AGENTS,
            "timers": N_TIMERS,
            "grad_values": N_GRAD,
            "sinks": "none (and one no-op sink in its own case)",
        },
        "payload_keys": len(fused),
        "target": {"report_epoch_median_s": TARGET_MEDIAN_S, "met": met},
        "cases": records,
        "errors": result.errors,
        "agreement_with_np_mean": agreement,
    }
    out = args.out if args.out is not None else (None if args.quick else str(DEFAULT_OUT))
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        print(f"\nwrote {path}")
    return 0 if not result.errors else 1


if __name__ == "__main__":
    sys.exit(main())
