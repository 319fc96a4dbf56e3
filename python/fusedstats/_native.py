"""Loads the compiled extensions.

A missing ``_core`` must not break ``import fusedstats``: the error is raised at first
use, with the command that rebuilds it. A missing ``_cuda`` (built without nvcc) or a
machine without a GPU is not an error: CUDA tensors then take the pure-torch path.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

_REBUILD_HINT = (
    "fusedstats' compiled core (fusedstats._core) is not available: {err}. "
    "Rebuild it with `pip install --force-reinstall --no-deps .` from the source tree "
    "(needs a C++17 compiler and CMake), or install a wheel for this platform."
)

_core: ModuleType | None = None
_core_error: BaseException | None = None
_cuda: ModuleType | None = None
_cuda_error: BaseException | None = None
_loaded = False


def _load() -> None:
    global _core, _core_error, _cuda, _cuda_error, _loaded  # noqa: PLW0603
    if _loaded:
        return
    try:
        _core = importlib.import_module("fusedstats._core")
    except ImportError as err:
        _core_error = err
    try:
        _cuda = importlib.import_module("fusedstats._cuda")
    except ImportError as err:
        _cuda_error = err
    _loaded = True


def core() -> Any:
    """The CPU extension, or a clear ImportError that says how to rebuild it."""
    _load()
    if _core is None:
        raise ImportError(_REBUILD_HINT.format(err=_core_error)) from _core_error
    return _core


def cuda() -> Any | None:
    """The CUDA extension, or None when it was not built."""
    _load()
    return _cuda
