"""Fused tensor statistics: dispatch to the CUDA, C++ or pure-torch path."""

from __future__ import annotations

from .api import tensor_stats
from .columns import (
    COLUMNS,
    EXTENDED_COLUMNS,
    EXTENDED_FIELDS,
    FIELDS,
    HIST_BINS,
    NUM_COLUMNS,
    NUM_EXTENDED_COLUMNS,
)
from .model_stats import gate_nonfinite, grad_stats, weight_stats
from .result import TensorStats

__all__ = [
    "COLUMNS",
    "EXTENDED_COLUMNS",
    "EXTENDED_FIELDS",
    "FIELDS",
    "HIST_BINS",
    "NUM_COLUMNS",
    "NUM_EXTENDED_COLUMNS",
    "TensorStats",
    "gate_nonfinite",
    "grad_stats",
    "tensor_stats",
    "weight_stats",
]
