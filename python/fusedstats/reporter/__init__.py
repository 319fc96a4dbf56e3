"""The trainer stats reporter: Metta's ``StatsReporter`` API, made fast.

Rollout infos are aggregated by compiled code (``fusedstats.rollout``), each epoch's
payload follows Metta's key conventions (``overview/sps``, ``env_game/...``,
``timing_per_epoch/frac/...``, ``grad/norm``...), gradient and weight stats come from the
fused kernel, and sinks (W&B, JSONL, console, your own) run on a background thread.

Import it as ``fusedstats.reporter``; ``import fusedstats`` does not load it (it brings
numba and pydantic). The reference, with every payload key: docs/reporter.md.

Example:
    >>> from fusedstats.reporter import StatsReporter, StatsReporterConfig, Stopwatch
    >>> reporter = StatsReporter(StatsReporterConfig(report_to_console=False))
    >>> stopwatch = Stopwatch()
    >>> with stopwatch("_rollout"):
    ...     reporter.on_step({"game/score": 2.0})
    >>> reporter.report_epoch(1, 128, {"policy_loss": 0.1}, {"rewards": 1.0}, timer=stopwatch)
    >>> payload = reporter.get_latest_payload()
    >>> payload["env_game/score"], payload["experience/area_under_reward"]
    (2.0, 1.0)
    >>> reporter.finalize().complete  # every payload delivered or spooled
    True
"""

from __future__ import annotations

from .client import StatsClient
from .component import TrainerComponent
from .config import StatsReporterConfig
from .payload import (
    CORE_MOVEMENT_KEYS,
    ProcessedStats,
    as_scalar,
    build_wandb_payload,
    process_training_stats,
)
from .reporter import NoOpStatsReporter, StatsReporter
from .state import EvalRewardSummary, StatsReporterState
from .timing import Stopwatch, Timer, TimingInfo, compute_timing_stats

__all__ = [
    "CORE_MOVEMENT_KEYS",
    "EvalRewardSummary",
    "NoOpStatsReporter",
    "ProcessedStats",
    "StatsClient",
    "StatsReporter",
    "StatsReporterConfig",
    "StatsReporterState",
    "Stopwatch",
    "Timer",
    "TimingInfo",
    "TrainerComponent",
    "as_scalar",
    "build_wandb_payload",
    "compute_timing_stats",
    "process_training_stats",
]
