"""Reductions and merges of many Stats in one call into the compiled core.

The core reads every Stats' value list itself (one C loop over the python floats, see
``flatten_series`` in the bindings) and reduces or merges all series in one call
(``csrc/cpu/series.cpp``). Python ints under sum/min/max stay exact python ints
(reduced by the builtins), and lists (``reduce=None``) are passed through untouched.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Iterable, Sequence
from itertools import accumulate, chain
from operator import attrgetter
from typing import Any

from .. import _native
from .stats import EMA, MEAN, MIN, NONE, PERCENTILES, SUM, Stats, _buffer_lock, tensors_seen
from .values import is_tensor, tensors_to_host

_VALUES = attrgetter("_values")


def host_snapshots(stats: Sequence[Stats], snaps: list[list[Any]]) -> list[list[Any]]:
    """``snaps`` with the tensors of all Stats moved to the host in one batch."""
    if not tensors_seen[0]:
        return snaps
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


def reduce_values(stats: Sequence[Stats], snaps: list[list[Any]]) -> list[Any]:
    """The reduced value of each Stats over its snapshot of values; changes nothing."""
    snaps = host_snapshots(stats, snaps)
    results: list[Any] = [None] * len(stats)
    native: list[int] = []
    pct: list[int] = []
    for i, s in enumerate(stats):
        op = s._op
        if op == NONE:
            results[i] = list(snaps[i])
        elif op == EMA and len(snaps[i]) == 1:
            results[i] = snaps[i][0]  # RLlib: the first value as pushed (an int stays one)
        elif op == PERCENTILES:
            pct.append(i)
        elif op >= MIN and all_ints(snaps[i]):
            # Exact python ints (never NaN): the builtins, as RLlib keeps ints.
            vals = snaps[i]
            if op == SUM:
                results[i] = sum(vals)
            elif vals:
                results[i] = min(vals) if op == MIN else max(vals)
            else:
                results[i] = math.nan
        else:
            native.append(i)
    core = _native.core()
    if native:
        reduced = core.series_reduce(
            [snaps[i] for i in native],
            bytes([stats[i]._op for i in native]),
            array("d", [stats[i]._ema_coeff or 0.0 for i in native]),
        )
        for i, r in zip(native, reduced, strict=True):
            results[i] = r
    if pct:
        qs = [stats[i]._percentiles or () for i in pct]
        out = core.series_percentiles([snaps[i] for i in pct], [list(q) for q in qs])
        pos = 0
        for i, q in zip(pct, qs, strict=True):
            results[i] = dict(zip(q, out[pos : pos + len(q)], strict=True))
            pos += len(q)
    return results


def all_ints(vals: Iterable[Any]) -> bool:
    """Whether the values are all python ints (then sum/min/max give an exact int, as
    RLlib does). Judged on the values at hand, not on a Stats' history: a window
    forgets its old values. Stops at the first float, so float Stats pay nothing."""
    return all(type(v) is int for v in vals)


def _post_reduce_values(s: Stats, vals: list[Any], reduced: Any) -> list[Any]:
    """The values a Stats keeps after a reduce (spec: Stats.reduce)."""
    op = s._op
    if op in (NONE, PERCENTILES) or not vals:
        return vals  # nothing reduced leaves nothing behind (no NaN or 0 placeholder)
    if s._window is None:
        return [reduced]  # EMA -> [ema]; sum/min/max -> [result]
    if s._window == math.inf and op != MEAN:
        return [reduced]
    return vals  # a window: its values


def _remove_prefix(buf: Any, n: int) -> None:
    if isinstance(buf, list):
        del buf[:n]
    else:
        for _ in range(n):
            buf.popleft()


def reduce_many(stats: Sequence[Stats]) -> list[Stats]:
    """Commits ``reduce()`` on every Stats; returns the Stats holding each result.

    As in RLlib, that is the Stats itself, except with ``clear_on_reduce``: then the
    Stats is emptied and a new one holds the reduced values.
    """
    blank = Stats._blank_like
    with _buffer_lock:
        raw = [list(s._values) for s in stats]
        snaps = host_snapshots(stats, raw)
        results = reduce_values(stats, snaps)
        now = time.perf_counter()
        out = list(stats)  # the Stats themselves, except where clear_on_reduce
        for i, (s, n_raw, vals, res) in enumerate(zip(stats, raw, snaps, results, strict=True)):
            s._hist = [res, s._hist[0]]
            if s._simple:
                continue  # a window: its values stay as they are
            if s._throughput:
                s._throughput_base = float(res)
                s._throughput_since = now
            post = _post_reduce_values(s, vals, res)
            if s._clear_on_reduce:
                reduced = blank(s)
                reduced._hist = list(s._hist)
                reduced._throughput_base = s._throughput_base
                reduced._throughput_since = s._throughput_since
                reduced._values.extend(post)
                _remove_prefix(s._values, len(n_raw))
                if not s._values:
                    s._tensors = False
                out[i] = reduced
            elif post is not vals:  # a window-less list keeps [result]
                assert isinstance(s._values, list)
                s._values[: len(n_raw)] = post
                s._tensors = s._tensors and any(map(is_tensor, s._values))
        return out


def merge_parallel_many(groups: Sequence[Sequence[Stats]]) -> None:
    """``groups[g][0].merge_in_parallel(*groups[g][1:])`` for every group, in one call.

    Settings must already be checked equal within each group. Means and EMAs hand
    the core their live value lists (it reads them under the GIL); groups whose
    results are original objects (lists, int sums/min/max) or tensors are snapshot
    first, so the core's source indices point into the snapshot.
    """
    if not groups:
        return
    core = _native.core()
    head = groups[0][0]
    if (
        head._op in (MEAN, EMA)
        and not tensors_seen[0]
        and all(g[0]._cfg is head._cfg for g in groups)
    ):
        # One mean/EMA setting for every group and no tensors (a typical merge of
        # reduce() results): no objects to keep, no per-group decisions.
        group_first = array("q", [0])
        group_first.extend(accumulate(map(len, groups)))
        w = head._window
        n = len(groups)
        _, merged, cuts = core.series_merge_parallel(
            [s._values for g in groups for s in g],
            group_first,
            bytes([head._op]) * n,
            array("q", [0 if w is None or w == math.inf else int(w)]) * n,
        )
        for members, a, b in zip(groups, cuts, cuts[1:], strict=False):
            base = members[0]
            base._values.clear()
            base._values.extend(merged[a:b])
            base._tensors = False
        return
    group_first_list = [0]
    ops: list[int] = []
    windows: list[int] = []
    series: list[Any] = []
    objects: list[list[Any] | None] = []  # per group: its values flattened, if needed
    tensors = tensors_seen[0]
    for group in groups:
        head = group[0]
        op = NONE if head._op == PERCENTILES else head._op
        # Original objects are kept for lists, and where ints may be involved in
        # sums/min/max (the core marks which merged values stay ints).
        keep = op == NONE or (
            op not in (MEAN, EMA) and any(all_ints(list(s._values)) for s in group)
        )
        if keep or (tensors and any(s._tensors for s in group)):
            with _buffer_lock:
                snaps = host_snapshots(group, [list(s._values) for s in group])
            objects.append(list(chain.from_iterable(snaps)) if keep else None)
            series += snaps
        else:
            objects.append(None)
            series += map(_VALUES, group)
        group_first_list.append(group_first_list[-1] + len(group))
        ops.append(op)
        w = head._window
        windows.append(0 if w is None or w == math.inf else int(w))
    source, merged, cuts = core.series_merge_parallel(
        series, array("q", group_first_list), bytes(ops), array("q", windows)
    )
    for g, group in enumerate(groups):
        a, b = cuts[g], cuts[g + 1]
        objs = objects[g]
        if objs is None:
            new: list[Any] = merged[a:b]
        else:
            new = [objs[k] if k >= 0 else v for k, v in zip(source[a:b], merged[a:b], strict=True)]
        base = group[0]
        base._values.clear()
        base._values.extend(new)
        base._tensors = False
