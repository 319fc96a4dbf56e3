"""One ``add()`` call's info dicts, flattened into segments of (key id, values).

The walk is native (``fusedstats._core.InfoFlattener``, csrc/cpython/info_flattener.cpp):
it reads the dicts, floats, ints, bools, numpy arrays and lists of numbers itself,
interns key paths, and writes every value straight into the buffer that becomes the
call's values array, so the numba kernel reads it without a copy. This module holds
the policy it asks about (STYLE: policy in Python, the walk in the core):

- :func:`classify_type`: what a leaf of a type the walk does not know by heart is (asked
  once per type): a number, a non-dict mapping, a list, a tensor, an array, or skipped.
- :func:`leaf_array`: the values of the rare leaves the walk does not read itself (lists
  of numpy scalars or nested lists, arrays of a non-native byte order), as numpy reads
  them.
- :func:`gather_tensors`: torch tensors to host, one copy per device per call.

What counts as a number: bool, int, float, numpy bool, integer and floating scalars, and
other ``numbers.Real`` (Fraction); not complex, not Decimal. Lists, tuples, numpy arrays
and tensors count with all their elements; anything else is skipped and counted.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np

from .. import _native

# Leaf kinds: the numbers of enum LeafKind in csrc/cpython/info_flattener.h.
SKIP, NUMBER, MAPPING, SEQUENCE, TENSOR, ARRAY, FLOAT = range(7)
# dtype kinds that are numbers: bool, signed, unsigned, float (not complex, str, object).
_NUMERIC_KINDS = "biuf"
_dtype_of = attrgetter("dtype")


def classify_type(tp: type) -> int:
    """The kind of leaf every instance of ``tp`` is (the walk caches the answer per type).

    Example:
        >>> classify_type(np.float32) == NUMBER, classify_type(str) == SKIP
        (True, True)
    """
    if issubclass(tp, Mapping):
        return MAPPING
    if issubclass(tp, np.ndarray):
        return ARRAY
    if issubclass(tp, (list, tuple)):
        return SEQUENCE
    torch = sys.modules.get("torch")
    if torch is not None and issubclass(tp, torch.Tensor):
        return TENSOR
    if tp is np.float64:  # a float subclass holding its value as a float does
        return FLOAT
    # np.integer and np.floating are registered as numbers.Real; np.bool_ is not.
    if issubclass(tp, (numbers.Real, np.bool_)):
        return NUMBER
    return SKIP


def leaf_array(v: Any) -> np.ndarray[Any, Any] | None:
    """A leaf's values as a numeric numpy array (read as ``numpy.asarray`` reads it), or
    None when it is not numbers (ragged nesting, strings, objects, complex)."""
    try:
        a = np.asarray(v)
        if a.dtype.kind not in _NUMERIC_KINDS:
            return None
        return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))
    except Exception:  # whatever a leaf's __array__ or __len__ raises: not numbers
        return None


def gather_tensors(tensors: list[Any], torch: Any) -> tuple[np.ndarray[Any, Any], list[int]]:
    """The values of ``tensors`` on the host as float64, end to end, and each tensor's
    number of values (-1: it could not be read, so it is skipped).

    The common case is one ``torch.cat`` of tensors that share a dtype, then one
    conversion and one copy to the host: per call, not per tensor (a CUDA tensor read on
    its own would sync each time). A cat is refused or not exact (devices, 0-d and
    n-d shapes mixed, complex, sparse, dtypes whose promotion would round) → one
    concatenation per device of the tensors converted one by one, still one copy per
    device; a device that cannot reach the host → tensor by tensor.
    """
    lengths: list[int] = list(map(torch.Tensor.numel, tensors))
    try:
        with torch.no_grad():
            if len(set(map(_dtype_of, tensors))) == 1:
                first = tensors[0]
                joined = torch.cat(tensors) if first.ndim > 0 else torch.stack(tensors)
                if not joined.is_complex() and joined.layout == torch.strided:
                    host = joined.reshape(-1).to(torch.float64).cpu().numpy()
                    if host.size == sum(lengths):
                        return host, lengths
    except Exception:  # shapes, devices or layouts that do not combine: the way below
        pass
    return _gather_by_device(tensors, lengths, torch)


def _gather_by_device(
    tensors: list[Any], lengths: list[int], torch: Any
) -> tuple[np.ndarray[Any, Any], list[int]]:
    parts: list[np.ndarray[Any, Any] | None] = [None] * len(tensors)
    by_device: dict[Any, list[int]] = {}
    for i, t in enumerate(tensors):
        if t.is_complex() or t.layout != torch.strided:
            lengths[i] = -1
            continue
        by_device.setdefault(t.device, []).append(i)
    for indexes in by_device.values():
        try:
            with torch.no_grad():
                flat = [tensors[i].reshape(-1).to(torch.float64) for i in indexes]
                host = (torch.cat(flat) if len(flat) > 1 else flat[0]).cpu().numpy()
        except Exception:  # a device that cannot reach the host: one by one
            for i in indexes:
                parts[i] = _one_to_host(tensors[i], torch)
            continue
        start = 0
        for i in indexes:
            parts[i] = host[start : start + lengths[i]]
            start += lengths[i]
    for i, part in enumerate(parts):
        if part is None:
            lengths[i] = -1
        else:
            lengths[i] = part.size
    kept = [p for p in parts if p is not None]
    return (np.concatenate(kept) if kept else np.zeros(0)), lengths


def _one_to_host(t: Any, torch: Any) -> np.ndarray[Any, Any] | None:
    try:
        with torch.no_grad():
            host: np.ndarray[Any, Any] = t.reshape(-1).to(torch.float64).cpu().numpy()
            return host
    except Exception:  # a meta tensor, a tensor subclass without data: skipped
        return None


@dataclass
class Batch:
    """One call, flattened: ``segments`` (4, n) of key id, start, length and stride
    (always 1) into ``values``; ``skipped`` names the paths that had a non-numeric leaf;
    ``rejected`` lists the infos not accumulated at all, as (index in the call, reason,
    path where it was found, detail)."""

    segments: np.ndarray[Any, Any]
    values: np.ndarray[Any, Any]
    skipped: set[str] = field(default_factory=set)
    rejected: list[tuple[int, str, str, str]] = field(default_factory=list)


class Flattener:
    """Turns info dicts into a :class:`Batch`; owns the key path -> key id table, which
    persists across calls (ids index the running-stat arrays). ``ids`` and ``names`` are
    the native flattener's own dict and list, updated in place."""

    def __init__(self) -> None:
        self._native = _native.core.InfoFlattener(classify_type, leaf_array)
        self.ids: dict[str, int] = self._native.ids
        self.names: list[str] = self._native.names

    def key_id(self, path: str) -> int:
        """The id of ``path``, added to the table if new."""
        return int(self._native.intern(path))

    @property
    def node_count(self) -> int:
        """Key-path nodes held (paths as reached through dict keys, including dicts and
        paths that never held a number)."""
        return int(self._native.node_count)

    def forget(self, keep_periods: int) -> int:
        """Ends a period (one ``clear()``): keys and paths not seen in the last
        ``keep_periods`` periods are dropped, the remaining ids renumbered in order.
        Returns the number of keys dropped."""
        return int(self._native.forget(keep_periods))

    def flatten(self, infos: Iterable[Any]) -> Batch:
        """Flattens ``infos``; entries that are not mappings (None, ...) are ignored.

        Raises TypeError when ``infos`` cannot be iterated (nothing is read then)."""
        tensors = self._native.walk(infos)
        host: np.ndarray[Any, Any] | None = None
        lengths: list[int] = []
        if tensors:
            torch = sys.modules["torch"]  # a tensor exists, so torch is imported
            try:
                host, lengths = gather_tensors(tensors, torch)
            except Exception:  # a tensor type that breaks even the one-by-one way: skipped
                host, lengths = np.zeros(0), [-1] * len(tensors)
        segments, values, skipped, rejected = self._native.finish(host, lengths)
        return Batch(segments, values, set(skipped), rejected)
