"""One ``add()`` call's info dicts, flattened into segments of (key path, values).

Every value of a key path within a call lands in one or a few consecutive segments, in
info order, so the kernel reduces segments and ``get()`` can hand out slices.

Vectorized envs return info dicts of one shape, so the flattening works a level (all
infos' dicts at one path) at a time, in C loops: ``operator.itemgetter`` pulls the
level's values out of every dict, ``sum`` checks that its numbers are numbers and
``struct`` packs them, and ``b"".join`` copies a column of per-agent arrays. Python code
runs per element only where a column mixes kinds (a number here, a string there) or
the dicts of a level have different keys.

What counts as a number is the same on every path: bool, int, float, numpy bool,
integer and floating scalars, and other ``numbers.Real`` (Fraction); not complex, not
Decimal. (An object that is none of these but adds to a float as a float and converts
with ``float()`` passes the fast path's checks; nothing of the kind is known to turn up
in info dicts.)
"""

from __future__ import annotations

import functools
import gc
import numbers
import struct
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, starmap
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np

# Exact types of leaves that are numbers; np.array turns a column of them into one
# numeric array. bool counts 0/1. (np.float64 is a float subclass, listed for speed.)
_SCALAR_TYPES: frozenset[type] = frozenset(
    {bool, int, float, np.bool_, np.float16, np.float32, np.float64, np.longdouble}
    | {np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64}
)
# dtype kinds that are numbers: bool, signed, unsigned, float (not complex, str, object).
_NUMERIC_KINDS = "biuf"
_STRUCT_CODES = {float: "d", int: "q", bool: "q"}
_dtype_of = attrgetter("dtype")
_MAX_CACHED_LEVELS = 4096  # (prefix, keys) of uniform levels; more means keys vary


@dataclass
class TensorPart:
    """A torch tensor's values, moved to host with the call's other tensors."""

    tensor: Any
    path: str
    segment: int


@dataclass
class Batch:
    """One call, flattened. ``parts`` (numeric arrays, read in C order, or tensors)
    laid end to end are the call's values; segment ``s`` is the ``seg_lens[s]`` values
    of key id ``seg_keys[s]`` that start at ``seg_starts[s]``, ``seg_strides[s]``
    apart. ``skipped`` names the paths that had a non-numeric leaf."""

    seg_keys: list[int] = field(default_factory=list)
    seg_starts: list[int] = field(default_factory=list)
    seg_lens: list[int] = field(default_factory=list)
    seg_strides: list[int] = field(default_factory=list)
    parts: list[Any] = field(default_factory=list)
    skipped: set[str] = field(default_factory=set)
    size: int = 0

    def add(self, key_id: int, values: Any, size: int) -> None:
        self.seg_keys.append(key_id)
        self.seg_starts.append(self.size)
        self.seg_lens.append(size)
        self.seg_strides.append(1)
        self.parts.append(values)
        self.size += size

    def add_block(self, key_ids: list[int], block: np.ndarray[Any, Any]) -> None:
        """Column ``j`` of the C-contiguous (infos, keys) ``block`` holds key
        ``key_ids[j]``: a strided segment, so the block is never transposed."""
        n, k = block.shape
        self.seg_keys.extend(key_ids)
        self.seg_starts.extend(range(self.size, self.size + k))
        self.seg_lens.extend([n] * k)
        self.seg_strides.extend([k] * k)
        self.parts.append(block)
        self.size += n * k


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}/{key}" if prefix else str(key)


def _numbers(rows: Sequence[Sequence[Any]], codes: str) -> np.ndarray[Any, Any] | None:
    """``rows`` (equal-length sequences of numbers) as a float64 array, or None if any
    element is not a number.

    Python floats and ints (``codes``: struct's ``d`` and ``q`` per position, from the
    first row's types) take a fast way: ``sum`` runs a C loop that raises on str, None,
    containers, Decimal, and turns complex, arrays and tensors into a non-number
    result, then ``struct`` packs the rows (~8 ns a value, against ~33 for ``np.array``,
    which reads every element's type twice). Other numbers (numpy scalars), or a
    failure, go through ``np.array``, whose dtype tells whether all were numbers.
    """
    n, k = len(rows), len(codes)
    if codes:
        try:
            if type(sum(chain.from_iterable(rows))) in (int, float):
                packed = b"".join(starmap(_struct(codes).pack, rows))
                return _unpack(packed, codes, n)
        except Exception:  # a str, None, container, an int beyond int64 or float range...
            pass
    try:
        a = np.array(rows)
    except Exception:  # whatever a leaf's __array__ or __len__ raises: not numbers
        return None
    if a.shape != (n, k) or a.dtype.kind not in _NUMERIC_KINDS:
        return None
    return a


@functools.lru_cache(maxsize=256)
def _struct(codes: str) -> struct.Struct:
    return struct.Struct("=" + codes)  # standard sizes, no padding: 8 bytes a value


def _unpack(packed: bytes, codes: str, n: int) -> np.ndarray[Any, Any]:
    """(n, len(codes)) float64 from struct-packed rows of float64 (d) and int64 (q)."""
    floats = np.frombuffer(packed, np.float64).reshape(n, len(codes))
    if "q" not in codes:
        return floats
    is_int = np.frombuffer(codes.encode(), np.uint8) == ord("q")
    if is_int.all():
        return floats.view(np.int64).astype(np.float64)
    out: np.ndarray[Any, Any] = floats.copy()
    out[:, is_int] = floats.view(np.int64)[:, is_int]
    return out


def _codes(values: Sequence[Any]) -> str:
    """struct codes of exact Python numbers (bool and int as int64), else ""."""
    try:
        return "".join([_STRUCT_CODES[type(v)] for v in values])
    except KeyError:
        return ""


def _joined_arrays(col: Sequence[Any]) -> np.ndarray[Any, Any] | None:
    """All elements of a column of C-contiguous numeric arrays of one dtype, or None.

    ``b"".join`` copies the arrays' buffers at ~40 ns per array; ``np.concatenate``
    spends ~130 ns per array on dispatch. Non-contiguous arrays have no simple buffer
    (TypeError), and bytes have no dtype (AttributeError): both go the slow way.
    """
    try:
        dtypes = set(map(_dtype_of, col))
        if len(dtypes) != 1:
            return None
        dtype = dtypes.pop()
        if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC_KINDS:
            return None
        return np.frombuffer(b"".join(col), dtype=dtype)
    except (AttributeError, TypeError, BufferError, ValueError):
        return None


def _is_number(v: Any) -> bool:
    # np.integer and np.floating are registered as numbers.Real; np.bool_ is not.
    return isinstance(v, (numbers.Real, np.bool_))


class Flattener:
    """Turns info dicts into a :class:`Batch`; owns the key path -> key id table, which
    persists across calls (ids index the running-stat arrays)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []
        self._paths: dict[tuple[str, tuple[Any, ...]], list[str]] = {}
        self._ids_of_level: dict[tuple[str, tuple[Any, ...]], list[int]] = {}

    def key_id(self, path: str) -> int:
        kid = self.ids.get(path)
        if kid is None:
            kid = self.ids[path] = len(self.names)
            self.names.append(path)
        return kid

    def flatten(self, infos: Sequence[Any]) -> Batch:
        """Flattens ``infos``; entries that are not mappings (None, ...) are ignored."""
        batch = Batch()
        col = list(infos)
        if not all(issubclass(t, Mapping) for t in set(map(type, col))):
            col = [d for d in col if isinstance(d, Mapping)]
        if not col:
            return batch
        # The rows and columns built here are thousands of short-lived tuples, all freed
        # before returning; with the collector on they set off young-generation
        # collections that find nothing to free (14% of the benchmark's time).
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._mappings(batch, "", col)
        finally:
            if collecting:
                gc.enable()
        return batch

    def _level_paths(self, prefix: str, keys: tuple[Any, ...]) -> list[str]:
        """The paths of a uniform level's keys (cached: the same levels come back)."""
        paths = self._paths.get((prefix, keys))
        if paths is None:
            if len(self._paths) >= _MAX_CACHED_LEVELS:
                self._paths.clear()
                self._ids_of_level.clear()
            paths = self._paths[prefix, keys] = [_join(prefix, k) for k in keys]
        return paths

    def _level_ids(self, prefix: str, keys: tuple[Any, ...], paths: list[str]) -> list[int]:
        ids = self._ids_of_level.get((prefix, keys))
        if ids is None:
            ids = self._ids_of_level[prefix, keys] = [self.key_id(p) for p in paths]
        return ids

    # ---- levels of dicts --------------------------------------------------------

    def _mappings(self, batch: Batch, prefix: str, col: list[Any]) -> None:
        """``col``: the mappings found at ``prefix`` in each info, in info order."""
        keys = tuple(col[0])
        rows: list[Any] | None = None
        if keys and set(map(len, col)) == {len(keys)}:
            try:  # same size and every key present: the same keys everywhere
                rows = list(map(itemgetter(*keys), col))
            except KeyError:
                rows = None
        elif not keys and set(map(len, col)) == {0}:
            return
        if rows is None:
            self._mappings_of_many_shapes(batch, prefix, col)
            return
        paths = self._level_paths(prefix, keys)
        if len(keys) == 1:  # itemgetter of one key gives the value, not a 1-tuple
            self._column(batch, paths[0], rows)
            return
        first = rows[0]
        if all(type(v) in _SCALAR_TYPES for v in first):  # a level of numbers only
            block = _numbers(rows, _codes(first))
            if block is not None:
                batch.add_block(self._level_ids(prefix, keys, paths), block)
                return
        for path, column in zip(paths, zip(*rows, strict=True), strict=True):
            self._column(batch, path, column)

    def _mappings_of_many_shapes(self, batch: Batch, prefix: str, col: list[Any]) -> None:
        """Mappings whose keys differ: gather each key's column in Python, then go on
        column by column (the columns themselves are usually uniform again)."""
        cols: dict[Any, list[Any]] = {}
        for d in col:
            for k, v in d.items():
                c = cols.get(k)
                if c is None:
                    cols[k] = [v]
                else:
                    c.append(v)
        for k, c in cols.items():
            self._column(batch, _join(prefix, k), c)

    # ---- one key path's values across infos --------------------------------------

    def _column(self, batch: Batch, path: str, col: Sequence[Any]) -> None:
        first = type(col[0])
        if first in _SCALAR_TYPES:
            code = _STRUCT_CODES.get(first, "")
            a = _numbers([col], code * len(col) if code else "")
            if a is not None:
                batch.add(self.key_id(path), a, a.size)
                return
        elif first is np.ndarray:
            a = _joined_arrays(col)
            if a is not None:
                batch.add(self.key_id(path), a, a.size)
                return
        elif issubclass(first, Mapping):
            if all(issubclass(t, Mapping) for t in set(map(type, col))):
                self._mappings(batch, path, list(col))
                return
        else:
            torch = sys.modules.get("torch")
            is_tensor = torch is not None and issubclass(first, torch.Tensor)
            if is_tensor and self._tensor_column(batch, path, col, torch):
                return
        self._mixed_column(batch, path, col)

    def _tensor_column(self, batch: Batch, path: str, col: Sequence[Any], torch: Any) -> bool:
        """All tensors of a column as one (cat or stack), else False."""
        if not all(issubclass(t, torch.Tensor) for t in set(map(type, col))):
            return False
        try:
            with torch.no_grad():
                t = torch.cat(col) if col[0].ndim > 0 else torch.stack(col)
        except Exception:  # shapes, devices or layouts that do not combine
            return False
        if t.is_complex() or t.layout != torch.strided:
            return False
        batch.add(self.key_id(path), TensorPart(t, path, len(batch.seg_keys)), t.numel())
        return True

    def _mixed_column(self, batch: Batch, path: str, col: Sequence[Any]) -> None:
        """Element by element: numbers, arrays and tensors are kept in order; nested
        mappings go on one level down; anything else is skipped and counted."""
        torch = sys.modules.get("torch")
        nested: list[Any] = []
        run: list[float] = []  # consecutive numbers, converted together
        kid = -1
        for v in col:
            if isinstance(v, Mapping):
                nested.append(v)
                continue
            if _is_number(v):
                try:
                    run.append(float(v))
                except OverflowError:  # an int beyond float range
                    batch.skipped.add(path)
                continue
            part = _leaf_part(v, torch)
            if part is None:
                batch.skipped.add(path)
                continue
            if kid < 0:
                kid = self.key_id(path)
            if run:
                batch.add(kid, np.array(run), len(run))
                run = []
            if isinstance(part, np.ndarray):
                batch.add(kid, part, part.size)
            else:
                batch.add(kid, TensorPart(part, path, len(batch.seg_keys)), part.numel())
        if run:
            batch.add(self.key_id(path), np.array(run), len(run))
        if nested:
            self._mappings(batch, path, nested)


def _leaf_part(v: Any, torch: Any) -> Any:
    """A non-number leaf's values: a numeric ndarray, a tensor, or None (skip it)."""
    if isinstance(v, np.ndarray):
        return np.asarray(v) if v.dtype.kind in _NUMERIC_KINDS else None
    if torch is not None and isinstance(v, torch.Tensor):
        return v if not v.is_complex() and v.layout == torch.strided else None
    if isinstance(v, (list, tuple)):
        try:
            a = np.asarray(v)
        except Exception:  # ragged nesting, or elements numpy cannot read
            return None
        return a if a.dtype.kind in _NUMERIC_KINDS else None
    return None  # str, bytes, None, numpy non-numbers, other objects


def tensors_to_host(batch: Batch, torch: Any) -> None:
    """Replaces the batch's tensor parts by float64 arrays: one concatenation and one
    copy to host per device (a CUDA tensor read one by one would sync each time)."""
    where = [i for i, p in enumerate(batch.parts) if type(p) is TensorPart]
    by_device: dict[Any, list[int]] = {}
    for i in where:
        by_device.setdefault(batch.parts[i].tensor.device, []).append(i)
    for indexes in by_device.values():
        try:
            with torch.no_grad():
                flat = [batch.parts[i].tensor.reshape(-1).to(torch.float64) for i in indexes]
                host = (torch.cat(flat) if len(flat) > 1 else flat[0]).cpu().numpy()
        except Exception:  # a device or layout that cannot reach the host: one by one
            for i in indexes:
                _one_tensor_to_host(batch, i, torch)
            continue
        start = 0
        for i in indexes:
            size = batch.seg_lens[batch.parts[i].segment]
            batch.parts[i] = host[start : start + size]
            start += size


def _one_tensor_to_host(batch: Batch, i: int, torch: Any) -> None:
    part: TensorPart = batch.parts[i]
    try:
        with torch.no_grad():
            batch.parts[i] = part.tensor.reshape(-1).to(torch.float64).cpu().numpy()
    except Exception:  # its place in the values stays, unread: the segment is emptied
        batch.parts[i] = np.zeros(batch.seg_lens[part.segment])
        batch.seg_lens[part.segment] = 0
        batch.skipped.add(part.path)
