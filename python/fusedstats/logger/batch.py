"""Reductions and merges of many Stats in one call into the compiled core.

Python gathers the values of all Stats into one flat float64 array with offsets
(one C-level pass: ``numpy.fromiter`` over ``itertools.chain``), the core reduces or
merges every series (``csrc/cpu/series.cpp``), and Python hands the results back.
Python ints under sum/min/max stay exact python ints (reduced by the builtins), and
lists (``reduce=None``) are passed through untouched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from .. import _native
from .stats import Stats, _buffer_lock
from .values import is_tensor, tensors_to_host

# Op codes of csrc/include/fusedstats/series.h
MEAN, EMA, MIN, MAX, SUM, NONE = 0, 1, 2, 3, 4, 5


def op_of(s: Stats) -> int:
    r = s._reduce
    if r == "mean":
        return EMA if s._ema_coeff is not None else MEAN
    if r == "sum":
        return SUM
    if r == "min":
        return MIN
    if r == "max":
        return MAX
    return NONE  # None and percentiles keep their values as they are


def host_snapshots(stats: Sequence[Stats], snaps: list[list[Any]]) -> list[list[Any]]:
    """``snaps`` with the tensors of all Stats moved to the host in one batch."""
    holders = [i for i, s in enumerate(stats) if s._tensors]
    if not holders:
        return snaps
    flat = tensors_to_host(list(chain.from_iterable(snaps[i] for i in holders)))
    out = list(snaps)
    pos = 0
    for i in holders:
        n = len(snaps[i])
        out[i] = flat[pos : pos + n]
        pos += n
    return out


def _gather(snaps: Sequence[Sequence[Any]]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    lens = [len(v) for v in snaps]
    offsets = np.zeros(len(snaps) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    values = np.fromiter(chain.from_iterable(snaps), dtype=np.float64, count=int(offsets[-1]))
    return values, offsets


def reduce_values(stats: Sequence[Stats], snaps: list[list[Any]]) -> list[Any]:
    """The reduced value of each Stats over its snapshot of values; changes nothing."""
    snaps = host_snapshots(stats, snaps)
    results: list[Any] = [None] * len(stats)
    native: list[int] = []
    pct: list[int] = []
    for i, s in enumerate(stats):
        r = s._reduce
        vals = snaps[i]
        if r is None:
            results[i] = list(vals)
        elif r == "percentiles":
            pct.append(i)
        elif s._ints and r != "mean":
            # Exact python ints (no NaN among ints): the builtins, as RLlib keeps ints.
            if r == "sum":
                results[i] = sum(vals)
            elif vals:
                results[i] = min(vals) if r == "min" else max(vals)
            else:
                results[i] = math.nan
        else:
            native.append(i)
    core = _native.core()
    if native:
        values, offsets = _gather([snaps[i] for i in native])
        ops = np.fromiter((op_of(stats[i]) for i in native), dtype=np.int8, count=len(native))
        ema = np.fromiter(
            (stats[i]._ema_coeff or 0.0 for i in native), dtype=np.float64, count=len(native)
        )
        for i, r in zip(
            native, core.series_reduce(values, offsets, ops, ema).tolist(), strict=True
        ):
            results[i] = r
    if pct:
        values, offsets = _gather([snaps[i] for i in pct])
        qs = [stats[i]._percentiles or () for i in pct]
        q_offsets = np.zeros(len(pct) + 1, dtype=np.int64)
        np.cumsum([len(q) for q in qs], out=q_offsets[1:])
        q = np.fromiter(chain.from_iterable(qs), dtype=np.float64, count=int(q_offsets[-1]))
        out = core.series_percentiles(values, offsets, q, q_offsets).tolist()
        for j, i in enumerate(pct):
            a, b = int(q_offsets[j]), int(q_offsets[j + 1])
            results[i] = dict(zip(qs[j], out[a:b], strict=True))
    return results


def _post_reduce_values(s: Stats, vals: list[Any], reduced: Any) -> list[Any]:
    """The values a Stats keeps after a reduce (spec: Stats.reduce)."""
    if s._reduce is None or s._reduce == "percentiles":
        return vals
    if s._window is None:
        return [reduced]  # EMA -> [ema]; sum/min/max -> [result]
    if s._window == math.inf and s._reduce != "mean":
        return [reduced]
    return vals  # a window: its values


def _remove_prefix(buf: Any, n: int) -> None:
    if isinstance(buf, list):
        del buf[:n]
    else:
        for _ in range(n):
            buf.popleft()


def reduce_many(stats: Sequence[Stats]) -> list[Stats]:
    """Commits ``reduce()`` on every Stats; returns the Stats holding each result."""
    with _buffer_lock:
        raw = [list(s._values) for s in stats]
        snaps = host_snapshots(stats, raw)
        results = reduce_values(stats, snaps)
        now = time.perf_counter()
        out: list[Stats] = []
        for s, n_raw, vals, res in zip(stats, raw, snaps, results, strict=True):
            post = _post_reduce_values(s, vals, res)
            s._hist = [res, s._hist[0]]
            if s._throughput:
                s._throughput_base = float(res)
                s._throughput_since = now
            reduced = Stats._blank_like(s)
            reduced._hist = list(s._hist)
            reduced._throughput_base = s._throughput_base
            reduced._throughput_since = s._throughput_since
            reduced._values.extend(post)
            reduced._ints = s._ints
            if s._clear_on_reduce:
                _remove_prefix(s._values, len(n_raw))
                if not s._values:
                    s._ints, s._tensors = True, False
            elif isinstance(s._values, list):
                s._values[: len(n_raw)] = post
                s._tensors = s._tensors and any(map(is_tensor, s._values))
            out.append(reduced)
        return out


def merge_parallel_many(groups: Sequence[Sequence[Stats]]) -> None:
    """``groups[g][0].merge_in_parallel(*groups[g][1:])`` for every group, in one call.

    Settings must already be checked equal within each group.
    """
    if not groups:
        return
    series: list[list[Any]] = []
    stats_of: list[Stats] = []
    group_first = np.zeros(len(groups) + 1, dtype=np.int64)
    for g, group in enumerate(groups):
        stats_of.extend(group)
        group_first[g + 1] = group_first[g] + len(group)
    with _buffer_lock:
        raw = [list(s._values) for s in stats_of]
    snaps = host_snapshots(stats_of, raw)
    ops = np.fromiter((op_of(g[0]) for g in groups), dtype=np.int8, count=len(groups))
    windows = np.fromiter(
        (g[0]._window if g[0]._window not in (None, math.inf) else 0 for g in groups),
        dtype=np.int64,
        count=len(groups),
    )
    # Pass-through ops need only the lengths: zeros stand in for their values, which
    # may be any object (lists) or exact ints.
    for g in range(len(groups)):
        a, b = int(group_first[g]), int(group_first[g + 1])
        if ops[g] in (SUM, NONE):
            series.extend([0.0] * len(snaps[i]) for i in range(a, b))
        else:
            series.extend(snaps[i] for i in range(a, b))
    values, offsets = _gather(series)
    source, merged, out_offsets = _native.core().series_merge_parallel(
        values, offsets, group_first, ops, windows
    )
    objects = list(chain.from_iterable(snaps))
    src = source.tolist()
    val = merged.tolist()
    cuts = out_offsets.tolist()
    for g, group in enumerate(groups):
        base = group[0]
        a, b = cuts[g], cuts[g + 1]
        new = [objects[k] if k >= 0 else v for k, v in zip(src[a:b], val[a:b], strict=True)]
        ints = ops[g] not in (MEAN, EMA) and all(type(v) is int for v in new)
        with _buffer_lock:
            base._values.clear()
            base._values.extend(new)
            base._ints = ints
            base._tensors = False
