"""RLlib's MetricsLogger/Stats API, reduced and merged in batch by the compiled core."""

from __future__ import annotations

from .metrics_logger import MetricsLogger
from .stats import DEFAULT_EMA_COEFF, DEFAULT_PERCENTILES, FOLD_AT, Stats

__all__ = ["DEFAULT_EMA_COEFF", "DEFAULT_PERCENTILES", "FOLD_AT", "MetricsLogger", "Stats"]
