"""``fusedstats demo``: a small but real training run with every statistic through fusedstats.

PPO trains a torch actor-critic on :class:`ForageEnv`, a vectorized numpy grid world
whose episodes end with Metta-style nested info dicts (per-agent arrays included).
:class:`~fusedstats.reporter.StatsReporter` aggregates the infos, times every phase,
computes gradient and weight stats with the fused kernel and keeps eval scores;
:class:`~fusedstats.MetricsLogger` reduces the losses; the payloads go to an embedded
SQLite store, JSONL and TensorBoard (and W&B on request). ``fusedstats report RUN_DIR``
draws the run.

Importing this package loads numpy only; torch and the sinks' libraries load when a
run starts.
"""

from __future__ import annotations

from .config import DemoConfig
from .env import ForageEnv
from .train import DemoResult, run_demo, summary_lines

__all__ = ["DemoConfig", "DemoResult", "ForageEnv", "run_demo", "summary_lines"]
