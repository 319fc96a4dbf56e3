"""fusedstats: training statistics that are nearly free.

- :func:`tensor_stats`, :func:`grad_stats`, :func:`weight_stats`: norm, mean, variance,
  min/max, abs-max, L1 and NaN/Inf/zero counts of many tensors in one fused pass
  (C++/OpenMP on CPU, CUDA on GPU), with no host sync until the result is read.
- :func:`watch` and :func:`optimizer_stats`: activations, their gradients, dormant
  units and optimizer state through the same fused pass (``fusedstats.health``).
- :class:`MetricsLogger` and :class:`Stats`: RLlib's metrics-logger API (windows, EMA,
  lists, nested keys, parallel merges, plain-data state), reduced in batch by the core.

``import fusedstats`` loads numpy and nothing heavier: torch is used when the caller
hands torch tensors, and the compiled core is loaded at first use.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from typing import Any

from . import _native
from .health import WatchHandle, optimizer_stats, watch
from .kernels import (
    COLUMNS,
    EXTENDED_COLUMNS,
    EXTENDED_FIELDS,
    FIELDS,
    NUM_COLUMNS,
    NUM_EXTENDED_COLUMNS,
    TensorStats,
    gate_nonfinite,
    grad_stats,
    tensor_stats,
    weight_stats,
)
from .logger import MetricsLogger, Stats

try:
    __version__ = _version("fusedstats")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"


def set_num_threads(n: int) -> None:
    """Sets the number of CPU threads the kernels use (default: OpenMP's default,
    which follows ``OMP_NUM_THREADS``). Results do not depend on it.

    Example:
        >>> import fusedstats
        >>> before = fusedstats.get_num_threads()
        >>> fusedstats.set_num_threads(1); fusedstats.get_num_threads()
        1
        >>> fusedstats.set_num_threads(before)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads needs an int >= 1, got {n!r}")
    _native.core.set_num_threads(n)


def get_num_threads() -> int:
    """The number of CPU threads the kernels use."""
    return int(_native.core.get_num_threads())


def build_info() -> dict[str, Any]:
    """How this installation was built: compiler, OpenMP, SIMD levels, CUDA.

    Example:
        >>> info = build_info()
        >>> info["openmp"], info["simd_level"] in info["simd_levels"], "cuda_built" in info
        (True, True, True)
    """
    core = _native.core
    info: dict[str, Any] = dict(core.build_info())
    info["version"] = __version__
    info["openmp_threads"] = core.get_num_threads()
    info["simd_level"] = core.simd_level()
    info["cuda_built"] = _native.cuda_built()
    if info["cuda_built"]:
        info.update(
            {
                f"cuda_{k}" if not k.startswith("cuda_") else k: v
                for k, v in _native.cuda.build_info().items()
            }
        )
    return info


__all__ = [
    "COLUMNS",
    "EXTENDED_COLUMNS",
    "EXTENDED_FIELDS",
    "FIELDS",
    "NUM_COLUMNS",
    "NUM_EXTENDED_COLUMNS",
    "MetricsLogger",
    "Stats",
    "TensorStats",
    "WatchHandle",
    "__version__",
    "build_info",
    "gate_nonfinite",
    "get_num_threads",
    "grad_stats",
    "optimizer_stats",
    "set_num_threads",
    "tensor_stats",
    "watch",
    "weight_stats",
]
