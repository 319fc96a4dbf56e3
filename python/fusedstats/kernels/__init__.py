"""Fused tensor statistics: dispatch to the CUDA, C++ or pure-torch path."""

from __future__ import annotations

from .api import tensor_stats
from .columns import COLUMNS, FIELDS, NUM_COLUMNS
from .model_stats import grad_stats, weight_stats
from .result import TensorStats

__all__ = [
    "COLUMNS",
    "FIELDS",
    "NUM_COLUMNS",
    "TensorStats",
    "grad_stats",
    "tensor_stats",
    "weight_stats",
]
