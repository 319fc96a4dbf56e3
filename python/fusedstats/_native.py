"""Loads the compiled extensions, lazily and typed.

``core`` and ``cuda`` are the extension modules themselves to the type checker (their
stubs, ``_core.pyi`` and ``_cuda.pyi``, which ``mypy.stubtest`` keeps honest), so every
call into native code is checked against them. At run time they are proxies that import
the extension on first use:

- A missing ``_core`` must not break ``import fusedstats``: the first use raises a
  clear ImportError that says how to rebuild it.
- A missing ``_cuda`` (built without nvcc) or a machine without a GPU is not an
  error: :func:`cuda_built` is False and CUDA tensors take the pure-torch path.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

_REBUILD_HINT = (
    "fusedstats' compiled core (fusedstats._core) is not available: {err}. "
    "Rebuild it with `pip install --force-reinstall --no-deps .` from the source tree "
    "(needs a C++17 compiler and CMake), or install a wheel for this platform."
)


class _Extension:
    """A compiled module imported at first attribute access (then cached)."""

    def __init__(self, name: str, hint: str | None) -> None:
        self._name = name
        self._hint = hint
        self._module: ModuleType | None = None
        self._error: BaseException | None = None
        self._tried = False

    def load(self) -> ModuleType | None:
        if not self._tried:
            try:
                self._module = importlib.import_module(self._name)
            except ImportError as err:
                self._error = err
            self._tried = True
        return self._module

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # introspection (doctest, inspect): not the module's
            raise AttributeError(attr)
        module = self.load()
        if module is None:
            if self._hint is not None:
                raise ImportError(self._hint.format(err=self._error)) from self._error
            raise ImportError(f"{self._name} is not built: {self._error}") from self._error
        return getattr(module, attr)


_core_ext = _Extension("fusedstats._core", _REBUILD_HINT)
_cuda_ext = _Extension("fusedstats._cuda", None)

if TYPE_CHECKING:
    from . import _core as core
    from . import _cuda as cuda
else:
    core = _core_ext
    cuda = _cuda_ext


def cuda_built() -> bool:
    """Whether ``fusedstats._cuda`` was built (and imports) here."""
    return _cuda_ext.load() is not None


__all__ = ["core", "cuda", "cuda_built"]
