"""Reductions and parallel merges of many value series in one call into the compiled core.

A series is what a Stats holds: a list or deque of python numbers (torch tensors are
moved to the host first, by :func:`host_series`), reduced or merged as its
:class:`~fusedstats.logger.ops.Settings` say. The core reads the python floats itself
(one C loop, see ``flatten_series`` in the bindings) and reduces or merges every series
in one call (``csrc/cpu/series.cpp``). Python ints under sum/min/max stay exact python
ints (reduced by the builtins), and lists (``reduce=None``) pass through untouched.

Nothing here knows Stats: ``stats.py`` owns Stats and calls these functions.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from itertools import chain
from operator import attrgetter
from typing import Any

from .. import _native
from .ops import MEAN, PERCENTILES, Settings
from .values import tensors_to_host


def host_series(snaps: list[list[Any]], holders: Sequence[int]) -> list[list[Any]]:
    """``snaps`` with the tensors of the series ``holders`` moved to the host, all of
    them in one batch per device (the others are not looked at)."""
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


def reduce_series(settings: Sequence[Settings], snaps: Sequence[Sequence[Any]]) -> list[Any]:
    """The reduction of each series (on the host) by its settings; changes nothing.

    One native call (``series_reduce``) applies RLlib's number rules too: a list comes
    back as a list, an EMA of one value as that value, sums/min/max of python ints only
    as exact python ints; percentiles are computed in a second call when there are any.
    """
    ops = bytes(map(_OP, settings))
    core = _native.core
    results: list[Any] = core.series_reduce(
        snaps if isinstance(snaps, list) else list(snaps), ops, array("d", map(_EMA, settings))
    )
    if _PERCENTILES in ops:
        pct = [i for i, op in enumerate(ops) if op == PERCENTILES]
        qs = [settings[i].percentiles or () for i in pct]
        out = core.series_percentiles([snaps[i] for i in pct], [list(q) for q in qs])
        pos = 0
        for i, q in zip(pct, qs, strict=True):
            results[i] = dict(zip(q, out[pos : pos + len(q)], strict=True))
            pos += len(q)
    return results


_OP = attrgetter("op")
_EMA = attrgetter("ema_weight")
_PERCENTILES = bytes([PERCENTILES])


def kept_after_reduce(st: Settings, vals: list[Any], reduced: Any) -> list[Any]:
    """The values a Stats keeps after a reduce (docs/logger.md, "reduce() and previous
    results")."""
    if st.passes_values or not vals:
        return vals  # nothing reduced leaves nothing behind (no NaN or 0 placeholder)
    if st.window is None:
        return [reduced]  # EMA -> [ema]; sum/min/max -> [result]
    if st.window == math.inf and st.op != MEAN:
        return [reduced]
    return vals  # a window: its values


def merge_series(
    heads: Sequence[Settings], series: list[Sequence[Any]], group_first: Sequence[int]
) -> list[list[Any]]:
    """The parallel merge of each group of series (group g: ``series[group_first[g] :
    group_first[g + 1]]``, merged with ``heads[g]``), in one native call. A windowed
    group's result holds at most ``window`` values; values taken over as they are
    (sums', lists', and min/max of ints) are the original objects."""
    if not heads:
        return []
    merged: list[list[Any]] = _native.core.series_merge_parallel(
        series,
        array("q", group_first),
        bytes([st.merge_op for st in heads]),
        array("q", [st.window_len for st in heads]),
    )
    return merged
