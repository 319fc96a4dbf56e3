"""A reduced logger as one flat buffer, and the merge of all ranks' buffers into Stats.

A rank's payload is one float64 block, then (rarely) one pickle:

    lens[n] | previous[n] | before_previous[n] | flags[n] | every key's values, in order

A key whose values cannot ride as float64 without loss (a list of strings or of
many-element tensors, ints beyond 2**53, ints mixed with floats where ints matter)
goes whole into the pickle instead (flag ``OBJECTS``). Settings are not sent: see
``_schema``.

The merge is the one ``MetricsLogger.merge_and_log_n_dicts`` runs (one native
``series_merge_parallel`` call for all keys), except for lifetime sums, which add up
every rank's total (see ``sync_logger``). Per key, Python does only what the result
needs: a slice of the merged values and a new Stats.
"""

from __future__ import annotations

import math
import pickle
import time
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Any

import numpy as np

from .. import _native
from ..logger.stats import Stats
from ..logger.values import is_tensor, tensors_to_host
from ._schema import Plan
from ._transport import Slots

# Per-key flags.
INTS = 1  # the values are python ints (restored as ints)
OBJECTS = 2  # values and previous results are in the pickle
PREV_INT = 4  # the previous result is an int
PREV2_INT = 8  # the one before it is an int
_EXACT = 2**53  # larger ints do not survive float64
_VALUES = attrgetter("_values")
_HIST = attrgetter("_hist")
_TENSORS = attrgetter("_tensors")
_EMPTY: list[Any] = []  # a key a rank does not have (never changed)
_INT, _FLOAT = {int}, {float}


@dataclass
class Packed:
    payload: bytes
    n_f64: int
    n_pickle: int
    slots: Slots


def pack(stats: list[Stats], plan: Plan, keep_tensors: bool) -> Packed:
    """One rank's values and previous results (keys in ``plan`` order). With
    ``keep_tensors``, one-element tensors become slots filled on the group's device;
    else they move to the host here, in one batch per device."""
    n = len(stats)
    snaps = list(map(list, map(_VALUES, stats)))  # a consistent copy: others may log
    hists = list(map(_HIST, stats))
    prev = [h[0] for h in hists]
    prev2 = [h[1] for h in hists]
    for u in plan.passed:  # lists' and percentiles' previous results are not sent
        prev[u] = prev2[u] = 0.0
    flags = [0] * n
    tensors: list[tuple[int, int, Any]] = []  # (key, position within the key, tensor)
    if any(map(_TENSORS, stats)):
        for i, s in enumerate(stats):
            if s._tensors:
                flags[i] |= _mark_tensors(i, snaps, tensors)
    if set(map(type, chain.from_iterable(snaps))) != _FLOAT:
        for i in np.flatnonzero(plan.int_aware).tolist():  # where ints matter
            vals = snaps[i]
            if flags[i] or not vals:
                continue
            kinds = set(map(type, vals))
            if kinds == _INT:
                flags[i] |= INTS if max(map(abs, vals)) <= _EXACT else OBJECTS
            elif kinds != _FLOAT:
                flags[i] |= OBJECTS
    if set(map(type, prev)) | set(map(type, prev2)) != {float}:
        odd = [i for i in range(n) if type(prev[i]) is not float or type(prev2[i]) is not float]
        for i in odd:
            for h, bit in ((prev[i], PREV_INT), (prev2[i], PREV2_INT)):
                if type(h) is int:
                    flags[i] |= bit if abs(h) <= _EXACT else OBJECTS
                elif type(h) is not float:
                    flags[i] |= OBJECTS
    objects: dict[int, tuple[list[Any], list[Any]]] = {}
    for i in (i for i, f in enumerate(flags) if f & OBJECTS):
        raw = list(stats[i]._values)  # again: tensors were replaced in the snapshot
        objects[i] = (tensors_to_host(raw) if stats[i]._tensors else raw, list(hists[i]))
        snaps[i] = _EMPTY
        prev[i] = prev2[i] = 0.0
        tensors = [t for t in tensors if t[0] != i]
    lens = list(map(len, snaps))
    block = np.array(
        lens + prev + prev2 + flags + list(chain.from_iterable(snaps)), dtype=np.float64
    )
    slots: Slots = []
    if tensors:
        starts = np.cumsum([4 * n, *lens]).tolist()
        where = [starts[i] + k for i, k, _ in tensors]
        held = [t for _, _, t in tensors]
        if keep_tensors:
            slots = [(8 * w, t) for w, t in zip(where, held, strict=True)]
        else:
            block[where] = tensors_to_host(held)
    extra = pickle.dumps(objects, protocol=pickle.HIGHEST_PROTOCOL) if objects else b""
    return Packed(block.tobytes() + extra, block.size, len(extra), slots)


def _mark_tensors(i: int, snaps: list[list[Any]], tensors: list[tuple[int, int, Any]]) -> int:
    """Replaces key i's one-element tensors by 0.0 placeholders (noted in ``tensors``);
    OBJECTS if it holds a tensor of several elements (a list's item)."""
    vals = snaps[i]
    for k, v in enumerate(vals):
        if is_tensor(v):
            if v.numel() != 1:
                return OBJECTS
            tensors.append((i, k, v))
            vals[k] = 0.0
    return 0


@dataclass
class RankData:
    series: list[list[Any]]
    prev: list[Any]
    prev2: list[Any]
    flags: np.ndarray[Any, Any]


def unpack(payload: np.ndarray[Any, Any], n: int, n_f64: int, n_pickle: int) -> RankData:
    """One rank's keys, in its own order."""
    f64 = payload[: 8 * n_f64].view(np.float64)
    lens = f64[:n].astype(np.int64)
    flags = f64[3 * n : 4 * n].astype(np.int64)
    values = f64[4 * n :].tolist()
    ends = np.cumsum(lens)
    starts_l, ends_l = (ends - lens).tolist(), ends.tolist()
    series = list(map(values.__getitem__, map(slice, starts_l, ends_l)))
    prev = f64[n : 2 * n].tolist()
    prev2 = f64[2 * n : 3 * n].tolist()
    if flags.any():
        ints = flags & INTS != 0
        if ints.any():  # one conversion for all int values, then the slices again
            at = np.flatnonzero(np.repeat(ints, lens))
            _put(values, at, f64[4 * n :])
            for i in np.flatnonzero(ints).tolist():
                series[i] = values[starts_l[i] : ends_l[i]]
        _put(prev, np.flatnonzero(flags & PREV_INT), f64[n : 2 * n])
        _put(prev2, np.flatnonzero(flags & PREV2_INT), f64[2 * n : 3 * n])
        if n_pickle:
            objects = pickle.loads(payload[8 * n_f64 : 8 * n_f64 + n_pickle].tobytes())
            for i, (vals, (p, p2)) in objects.items():
                series[i], prev[i], prev2[i] = vals, p, p2
    return RankData(series, prev, prev2, flags)


def _put(target: list[Any], at: np.ndarray[Any, Any], source: np.ndarray[Any, Any]) -> None:
    """``target[k] = int(source[k])`` for every k in ``at`` (C loops, no Python per item)."""
    if at.size:
        list(map(target.__setitem__, at.tolist(), source[at].astype(np.int64).tolist()))


def merge(plan: Plan, ranks: list[RankData]) -> list[Stats]:
    """One Stats per key of ``plan``: the parallel merge of the ranks that have it (in
    rank order), in one native call."""
    n_ranks, n_keys = len(ranks), len(plan.paths)
    flags: np.ndarray[Any, Any]
    if plan.maps is None:
        columns = [rd.series for rd in ranks]
        flags = np.stack([rd.flags for rd in ranks])
    else:
        columns = []
        flags = np.zeros((n_ranks, n_keys), dtype=np.int64)
        for r, (rd, mapping) in enumerate(zip(ranks, plan.maps, strict=True)):
            column = [_EMPTY] * n_keys
            for i, u in enumerate(mapping):
                column[u] = rd.series[i]
            columns.append(column)
            flags[r, mapping] = rd.flags
    series = list(chain.from_iterable(zip(*columns, strict=True)))  # key-major
    source, merged, cuts = _native.core().series_merge_parallel(
        series, plan.group_first(n_ranks), plan.ops, plan.windows
    )
    new = list(map(merged.__getitem__, map(slice, cuts[:-1], cuts[1:])))
    # Lists, and sums/min/max where ints went in, keep the original objects by source.
    special: list[bool] = np.bitwise_and(flags, INTS | OBJECTS).any(axis=0).tolist()
    for u in plan.passed + [u for u in plan.extremes if special[u]]:
        objs = list(chain.from_iterable(column[u] for column in columns))
        a, b = cuts[u], cuts[u + 1]
        new[u] = [objs[k] if k >= 0 else v for k, v in zip(source[a:b], merged[a:b], strict=True)]
    prev, prev2 = _previous(plan, ranks)
    blank = Stats._blank_like
    out = []
    for proto, vals, p, p2 in zip(plan.prototypes, new, prev, prev2, strict=True):
        stats = blank(proto)
        stats._values.extend(vals)
        stats._hist = [p, p2]
        out.append(stats)
    now = time.perf_counter()
    for u in plan.throughput:
        stats = out[u]
        stats._throughput_base = 0.0 if stats._clear_on_reduce else float(prev[u])
        stats._throughput_since = now
    return out


def _previous(plan: Plan, ranks: list[RankData]) -> tuple[list[Any], list[Any]]:
    """Per key the previous results: the first rank's that has it (as
    ``merge_and_log_n_dicts`` takes them), for lifetime sums the sums of all ranks';
    0 for lists and percentiles (theirs are not sent)."""
    if plan.maps is None:
        prev, prev2 = list(ranks[0].prev), list(ranks[0].prev2)
        for u in plan.lifetime:
            prev[u] = _nansum([rd.prev[u] for rd in ranks])
            prev2[u] = _nansum([rd.prev2[u] for rd in ranks])
    else:
        assert plan.first is not None
        prev = [ranks[r].prev[i] for r, i in plan.first]
        prev2 = [ranks[r].prev2[i] for r, i in plan.first]
        if plan.lifetime:
            where: dict[int, list[tuple[int, int]]] = {u: [] for u in plan.lifetime}
            for r, mapping in enumerate(plan.maps):
                for i, u in enumerate(mapping):
                    if u in where:
                        where[u].append((r, i))
            for u, at in where.items():
                prev[u] = _nansum([ranks[r].prev[i] for r, i in at])
                prev2[u] = _nansum([ranks[r].prev2[i] for r, i in at])
    for u in plan.passed:
        prev[u] = prev2[u] = 0
    return prev, prev2


def _nansum(xs: list[Any]) -> Any:
    """The sum ignoring NaN (0.0 if all are, as numpy's nansum): the logger's sum rule,
    for previous totals."""
    kept = [x for x in xs if not (isinstance(x, float) and math.isnan(x))]
    return sum(kept) if kept else 0.0
