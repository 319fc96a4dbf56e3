"""Model-health benchmark: what activation watching, optimizer-state stats and extended
gradient stats cost a training step, and the demo's stats share with them on.

    python bench/bench_health.py [--quick] [--out PATH] [--demo-runs N]

Three parts, each raced with ``fusedstats.bench.harness.race`` (interleaved
round-robin, so that a neighbour's noise lands on every method alike; medians of 31
repetitions, 7 with ``--quick``; torch and fusedstats on 1 thread, as the demo runs):

1. ``step``: one PPO update step of the demo's policy (2,048-row minibatch forward,
   backward, Adam step; 1 thread as the demo runs): unwatched; watched on every step
   (activations + their gradients + dormant units, ``every=1``); watched but on an
   unrecorded step (``every`` huge: what the hooks cost when they only return); and
   the same watched step with ``extended=True``.
2. ``report``: one ``report_epoch`` of the demo's reporter settings (no sink) with the
   health options off and on (extended grad stats + exponent histogram, optimizer
   stats, activation report of a step).
3. ``demo``: the whole ``fusedstats demo`` (12 epochs; 4 with ``--quick``), runs
   interleaved, no warm-up run (``--demo-runs``, 3; 1 with ``--quick``): health off,
   health on with activations every 10 update steps (the default), and every step.
   The demo's own stats share: stats timers + activation hook time over training time.

Target: the demo's stats share stays below 1% of its training time with health on and
activations every 10 update steps (what every step costs is reported beside it).
Writes JSON (default bench/results/health.json; --quick writes only where --out says).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

import fusedstats
from fusedstats.bench.harness import (
    Method,
    add_common_arguments,
    finish_report,
    new_report,
    race,
    save_report,
)
from fusedstats.demo import DemoConfig, run_demo
from fusedstats.demo.env import NUM_ACTIONS, OBS_SIZE
from fusedstats.demo.policy import make_policy
from fusedstats.reporter import StatsReporter, StatsReporterConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "health.json"
ROWS = 2048  # the demo's minibatch: 32 envs x 4 agents x 128 steps / 8 minibatches
TARGET_STATS_SHARE = 0.01  # of the demo's training time, health on, activations every 10


def _step_fn(policy: Any, optimizer: Any, obs: Any) -> Any:
    def step() -> None:
        logits, value = policy(obs)
        loss = logits.logsumexp(-1).mean() + value.pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def bench_step(reps: int) -> dict[str, Any]:
    """Per-step cost of the hooks on the demo's policy."""
    variants = {
        "unwatched": None,
        "watched, recorded (every=1)": {"every": 1},
        "watched, not recorded (every=10**9, step 2+)": {"every": 10**9},
        "watched, recorded, extended": {"every": 1, "extended": True},
    }
    fns, handles = {}, {}
    obs = torch.randn(ROWS, OBS_SIZE)
    for name, options in variants.items():
        policy = make_policy(OBS_SIZE, NUM_ACTIONS, 256, seed=0)
        optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
        if options is not None:
            handles[name] = fusedstats.watch(
                policy, activation_grads=True, dormant_tau=0.1, **options
            )
        fns[name] = _step_fn(policy, optimizer, obs)
    result = race(fns, reps, warmup=2)
    for handle in handles.values():
        handle.remove()
    base = result.median("unwatched")
    rows = {
        name: {
            "median_ms": result.median(name) * 1e3,
            "overhead_ms": (result.median(name) - base) * 1e3,
            "ratio": result.median(name) / base,
        }
        for name in variants
    }
    return {"rows": ROWS, "reps": reps, "cases": rows}


def _reporter(health: bool) -> StatsReporter:
    return StatsReporter(
        StatsReporterConfig(
            report_to_wandb=False,
            report_to_console=False,
            grad_mean_variance_interval=1,
            per_parameter_grad_stats=True,
            extended_grad_stats=health,
            exponent_histograms=health,
            activation_stats_interval=1 if health else 0,
            activation_stats_every=1,
            activation_step_by="manual",
            activation_grad_stats=True,
            activation_dormant_tau=0.1,
            optimizer_stats_interval=1 if health else 0,
        )
    )


def bench_report(reps: int) -> dict[str, Any]:
    """One report_epoch (no sink), health off and on. Before each (untimed): one update
    step, which the watch records (every=1), so each report reads a step's activations."""
    obs = torch.randn(ROWS, OBS_SIZE)
    methods: dict[str, Method] = {}
    reporters = {}
    for health in (False, True):
        name = "health on" if health else "health off"
        policy = make_policy(OBS_SIZE, NUM_ACTIONS, 256, seed=0)
        optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
        reporter = reporters[name] = _reporter(health)
        watch = reporter.watch_activations(policy)
        step = _step_fn(policy, optimizer, obs)
        epoch = [0]

        def setup(step: Any = step, watch: Any = watch) -> None:
            step()
            if watch is not None:
                watch.step()

        def report(
            state: Any,
            reporter: StatsReporter = reporter,
            policy: Any = policy,
            optimizer: Any = optimizer,
            epoch: list[int] = epoch,
        ) -> None:
            epoch[0] += 1
            reporter.report_epoch(epoch[0], epoch[0], {}, {}, policy=policy, optimizer=optimizer)

        methods[name] = Method(run=report, setup=setup)
    result = race(methods, reps, collect="after_setup")
    out = {
        name: {
            "median_ms": result.median(name) * 1e3,
            "payload_keys": len(reporters[name].get_latest_payload() or {}),
        }
        for name in methods
    }
    for r in reporters.values():
        r.finalize()
    return {"reps": reps, "cases": out}


def bench_demo(runs: int, epochs: int) -> dict[str, Any]:
    """The demo end to end, configurations interleaved (no warm-up run: each takes a
    while, and every configuration pays the same one-time costs in its first run)."""
    configs = {
        "health off": {"health": False},
        "health on, activations every 10 steps": {"activation_every": 10},
        "health on, activations every step": {"activation_every": 1},
    }
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as out:

        def demo(name: str) -> Method:
            def run(_: Any) -> None:
                config = DemoConfig(epochs=epochs, out=out, progress=False, **configs[name])
                r = run_demo(config, log=lambda line: None)
                results[name].append(
                    {
                        "stats_fraction": r.stats_fraction,
                        "median_epoch_fraction": statistics.median(sorted(r.stats_fracs)),
                        "activation_hook_seconds": r.activation_seconds,
                        "stats_seconds": r.stats_seconds,
                        "train_seconds": r.train_seconds,
                        "steps_per_second": statistics.fmean(r.sps),
                    }
                )

            return Method(run=run)

        timed = race({name: demo(name) for name in configs}, runs, warmup=0)
    for name, seconds in timed.times.items():
        for row, s in zip(results[name], seconds, strict=True):
            row["wall_seconds"] = s
    summary = {
        name: {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        for name, rows in results.items()
    }
    return {"runs": runs, "epochs": epochs, "median": summary, "all": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    add_common_arguments(parser, DEFAULT_OUT)
    parser.add_argument("--demo-runs", type=int, default=None, help="runs per config (3; quick 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    fusedstats.set_num_threads(1)
    reps = 7 if args.quick else 31
    runs = args.demo_runs if args.demo_runs is not None else (1 if args.quick else 3)
    epochs = 4 if args.quick else 12
    report = new_report(
        "health",
        quick=args.quick,
        checkout=ROOT,
        settings={"reps": reps, "demo_runs": runs, "demo_epochs": epochs, "threads": 1},
    )
    report["step"] = bench_step(reps)
    report["report_epoch"] = bench_report(reps)
    report["demo"] = demo = bench_demo(runs, epochs)
    share = demo["median"]["health on, activations every 10 steps"]["stats_fraction"]
    report["target"] = {"stats_share_at_most": TARGET_STATS_SHARE, "measured": share,
                        "met": share < TARGET_STATS_SHARE}  # fmt: skip
    finish_report(report)
    print(json.dumps({k: report[k] for k in ("step", "report_epoch")}, indent=1))
    print(json.dumps(demo["median"], indent=1))
    print(
        f"target: stats share < {TARGET_STATS_SHARE:.0%} with health on, activations every "
        f"10 steps: {share:.2%} -> {'met' if share < TARGET_STATS_SHARE else 'MISSED'}"
    )
    save_report(report, args.out, args.quick, DEFAULT_OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
