"""A reduced logger as one flat buffer, and the merge of all ranks' buffers into Stats.

A rank's payload is one float64 block, then (rarely) one pickle:

    n | lens[n] | previous[n] | before_previous[n] | flags[n] | every key's values, in order

Packing is one native pass over every key's values (``series_flatten``: each value as
float64 plus what kinds of values each key holds), then a few numpy operations over all
keys at once. A key whose values cannot ride as float64 without loss (a list of strings
or of many-element tensors, ints beyond 2**53, ints mixed with floats where ints matter)
goes whole into the pickle instead (flag ``OBJECTS``). Settings are not sent: see
``_schema``.

The merge is the one ``MetricsLogger.merge_and_log_n_dicts`` runs, done by one native
call that reads every rank's block where it lies (``series_merge_blocks``: no values
unpacked into python lists first), except for lifetime sums, which add up every rank's
total (see ``sync_logger``). Python then makes one Stats per key.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _native
from ..logger import batch
from ..logger.stats import (
    Stats,
    assemble_many,
    flatten_values,
    histories,
    snapshots,
    tensor_holders,
)
from ..logger.values import is_tensor, tensors_to_host
from ._schema import Plan
from ._transport import Slots

# Per-key flags.
INTS = 1  # the values are python ints (restored as ints)
OBJECTS = 2  # values and previous results are in the pickle
PREV_INT = 4  # the previous result is an int
PREV2_INT = 8  # the one before it is an int
_EXACT = 2**53  # larger ints do not survive float64
# Kinds series_flatten reports per key.
_HAS_FLOAT, _HAS_INT, _HAS_OTHER = 1, 2, 4


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
    raw, lens_list, kind_bytes = flatten_values(stats)
    values = np.frombuffer(raw, dtype=np.float64)
    lens = np.array(lens_list, dtype=np.int64)
    kinds = np.frombuffer(kind_bytes, dtype=np.uint8)
    hists = histories(stats)
    flags = np.zeros(n, dtype=np.int64)
    prev_f, prev2_f, objects = _previous_results(hists, plan, flags)
    tensors: list[tuple[int, int, Any]] = []  # (key, position within the key, tensor)
    held = tensor_holders(stats)
    snaps: dict[int, list[Any]] = {}
    objects |= _mark_all_tensors(stats, held, kinds, snaps, tensors)
    flags[plan.int_aware & (kinds == _HAS_INT)] |= INTS
    objects |= plan.int_aware & (kinds == (_HAS_INT | _HAS_FLOAT))  # ints mixed with floats
    extra = b""
    if objects.any():
        special = np.flatnonzero(objects).tolist()
        extra = _objects_table(stats, special, snaps, held, hists)
        flags[special] = OBJECTS
        prev_f, prev2_f = prev_f.copy(), prev2_f.copy()
        prev_f[special] = prev2_f[special] = 0.0
        values = values[np.repeat(~objects, lens)]
        lens[special] = 0
        tensors = [t for t in tensors if not objects[t[0]]]
    block = np.empty(1 + 4 * n + values.size, dtype=np.float64)
    block[0] = n
    block[1 : 1 + n] = lens
    block[1 + n : 1 + 2 * n] = prev_f
    block[1 + 2 * n : 1 + 3 * n] = prev2_f
    block[1 + 3 * n : 1 + 4 * n] = flags
    block[1 + 4 * n :] = values
    slots: Slots = []
    if tensors:
        starts = (np.cumsum(lens) - lens + 1 + 4 * n).tolist()
        where = [starts[i] + k for i, k, _ in tensors]
        found = [t for _, _, t in tensors]
        if keep_tensors:
            slots = [(8 * w, t) for w, t in zip(where, found, strict=True)]
        else:
            block[where] = tensors_to_host(found)
    return Packed(block.tobytes() + extra, block.size, len(extra), slots)


def _previous_results(hists: list[Any], plan: Plan, flags: Any) -> tuple[Any, Any, Any]:
    """The previous results of every key as float64 (ints flagged in ``flags``, which
    keep their type), and which keys hold anything else (sent as objects)."""
    prev: list[Any] = [h[0] for h in hists]
    prev2: list[Any] = [h[1] for h in hists]
    for u in plan.passed:  # lists' and percentiles' previous results are not sent
        prev[u] = prev2[u] = 0.0
    past = []
    for hs, bit in ((prev, PREV_INT), (prev2, PREV2_INT)):
        raw_h, kinds_h = _native.core.numbers_flatten(hs)
        kind_h = np.frombuffer(kinds_h, dtype=np.uint8)
        flags[kind_h == _HAS_INT] |= bit
        past.append((np.frombuffer(raw_h, dtype=np.float64), kind_h == _HAS_OTHER))
    return past[0][0], past[1][0], past[0][1] | past[1][1]


def _mark_all_tensors(
    stats: list[Stats],
    held: list[int],
    kinds: Any,
    snaps: dict[int, list[Any]],
    tensors: list[tuple[int, int, Any]],
) -> Any:
    """Which keys must be sent as objects because of their values: the tensor holders'
    odd values (their one-element tensors are collected into ``tensors``), other keys'
    values of other types."""
    odd = kinds & _HAS_OTHER != 0
    if not held:
        return odd
    objects = np.zeros(len(stats), dtype=bool)
    for i, vals in zip(held, snapshots([stats[i] for i in held]), strict=True):
        snaps[i] = vals
        objects[i] |= _mark_tensors(i, vals, tensors)
    odd = odd.copy()
    odd[held] = False  # their tensors are handled above
    return objects | odd


def _objects_table(
    stats: list[Stats],
    special: list[int],
    snaps: dict[int, list[Any]],
    held: list[int],
    hists: list[Any],
) -> bytes:
    """The pickled (values, history) of the keys sent as objects."""
    missing = [i for i in special if i not in snaps]
    snaps.update(zip(missing, snapshots([stats[i] for i in missing]), strict=True))
    table = {}
    for i in special:
        vals = snaps[i]
        table[i] = (tensors_to_host(vals) if i in held else vals, hists[i])
    return pickle.dumps(table, protocol=pickle.HIGHEST_PROTOCOL)


def _mark_tensors(i: int, vals: list[Any], tensors: list[tuple[int, int, Any]]) -> bool:
    """Notes key i's one-element tensors (their places hold 0.0 in the block); True if
    the key must go into the pickle (a tensor of several elements: a list's item, or
    a value float64 cannot hold)."""
    found = []
    for k, v in enumerate(vals):
        if is_tensor(v):
            if v.numel() != 1:
                return True
            found.append((i, k, v))
        elif type(v) is not float and not (type(v) is int and abs(v) <= _EXACT):
            return True
    tensors += found
    return False


@dataclass
class RankData:
    """One rank's block, read in place, and what the merge needs of it in python."""

    block: np.ndarray[Any, Any]  # the float64 block
    n: int
    flags: np.ndarray[Any, Any]
    prev: list[Any]
    prev2: list[Any]
    objects: dict[int, tuple[list[Any], tuple[Any, Any]]]

    def series(self, i: int) -> list[Any]:
        """Key i's values as python numbers (ints where they were ints)."""
        if i in self.objects:
            return list(self.objects[i][0])
        n = self.n
        lens = self.block[1 : 1 + n].astype(np.int64)
        start = 1 + 4 * n + int(lens[:i].sum())
        vals = self.block[start : start + int(lens[i])]
        out: list[Any] = (vals.astype(np.int64) if self.flags[i] & INTS else vals).tolist()
        return out


def unpack(payload: np.ndarray[Any, Any], n: int, n_f64: int, n_pickle: int) -> RankData:
    """One rank's payload (uint8) as a block to merge from, its previous results as
    python numbers."""
    block = payload[: 8 * n_f64].view(np.float64)
    if n_f64 < 1 or int(block[0]) != n:
        raise RuntimeError("sync_logger: a rank's payload does not match its header")
    flags = block[1 + 3 * n : 1 + 4 * n].astype(np.int64)
    prev = block[1 + n : 1 + 2 * n].tolist()
    prev2 = block[1 + 2 * n : 1 + 3 * n].tolist()
    objects: dict[int, tuple[list[Any], tuple[Any, Any]]] = {}
    if flags.any():
        _put(prev, np.flatnonzero(flags & PREV_INT), block[1 + n : 1 + 2 * n])
        _put(prev2, np.flatnonzero(flags & PREV2_INT), block[1 + 2 * n : 1 + 3 * n])
        if n_pickle:
            objects = pickle.loads(payload[8 * n_f64 : 8 * n_f64 + n_pickle].tobytes())
            for i, (_, (p, p2)) in objects.items():
                prev[i], prev2[i] = p, p2
    return RankData(block, n, flags, prev, prev2, objects)


def _put(target: list[Any], at: np.ndarray[Any, Any], source: np.ndarray[Any, Any]) -> None:
    """``target[k] = int(source[k])`` for every k in ``at`` (C loops, no Python per item)."""
    if at.size:
        list(map(target.__setitem__, at.tolist(), source[at].astype(np.int64).tolist()))


def merge(plan: Plan, ranks: list[RankData]) -> list[Stats]:
    """One Stats per key of ``plan``: the parallel merge of the ranks that have it (in
    rank order), in one native call over the ranks' blocks."""
    n_ranks = len(ranks)
    merged = _native.core.series_merge_blocks(
        [rd.block for rd in ranks], plan.index(n_ranks), plan.ops, plan.windows
    )
    special = sorted({u for _, u in _objects(plan, ranks)})
    if special:  # keys some rank sent in the pickle: merged from python lists
        where = np.frombuffer(plan.index(n_ranks), dtype=np.int64).reshape(-1, n_ranks)
        series: list[Any] = []
        first = [0]
        for u in special:
            series += [ranks[r].series(int(i)) for r, i in enumerate(where[u]) if i >= 0]
            first.append(len(series))
        redone = batch.merge_series([plan.settings[u] for u in special], series, first)
        for u, vals in zip(special, redone, strict=True):
            merged[u] = vals
    prev, prev2 = _previous(plan, ranks)
    return assemble_many(plan.settings, merged, prev, prev2)


def _objects(plan: Plan, ranks: list[RankData]) -> list[tuple[int, int]]:
    """(rank, union key) of every key a rank sent in its pickle."""
    out = []
    for r, rd in enumerate(ranks):
        for i in rd.objects:
            out.append((r, i if plan.maps is None else plan.maps[r][i]))
    return out


def _previous(plan: Plan, ranks: list[RankData]) -> tuple[list[Any], list[Any]]:
    """Per key the previous results: the first rank's that has it (as
    ``merge_and_log_n_dicts`` takes them), for lifetime sums the sums of all ranks';
    0 for lists and percentiles (theirs are not sent)."""
    if plan.maps is None:
        prev, prev2 = list(ranks[0].prev), list(ranks[0].prev2)
        if plan.lifetime:
            for target, column in ((prev, 1), (prev2, 2)):
                _lifetime_totals(plan.lifetime, ranks, column, target)
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


def _lifetime_totals(keys: list[int], ranks: list[RankData], column: int, out: list[Any]) -> None:
    """``out[u]`` = the NaN-ignoring sum of every rank's previous result (``column`` 1)
    or the one before (2) of each lifetime sum u, all keys at once: python ints where
    every rank's is an int, floats summed in rank order (as python's sum would)."""
    n = ranks[0].n
    at = np.array(keys)
    rows = np.stack([rd.block[1 + column * n : 1 + (column + 1) * n][at] for rd in ranks])
    bit = PREV_INT if column == 1 else PREV2_INT
    ints = (np.stack([rd.flags[at] for rd in ranks]) & bit != 0).all(axis=0)
    picked = (np.stack([rd.flags[at] for rd in ranks]) & OBJECTS != 0).any(axis=0)
    totals = np.nansum(rows, axis=0).tolist()
    exact = rows[:, ints].astype(np.int64).sum(axis=0).tolist() if ints.any() else []
    for u, total in zip(np.array(keys)[ints].tolist(), exact, strict=True):
        out[u] = total
    for u, total in zip(np.array(keys)[~ints].tolist(), np.array(totals)[~ints], strict=True):
        out[u] = float(total)
    for u in np.array(keys)[picked].tolist():  # some rank sent it in the pickle
        history = [rd.prev[u] if column == 1 else rd.prev2[u] for rd in ranks]
        out[u] = _nansum(history)


def _nansum(xs: list[Any]) -> Any:
    """The sum ignoring NaN (0.0 if all are, as numpy's nansum): the logger's sum rule,
    for previous totals."""
    kept = [x for x in xs if not (isinstance(x, float) and math.isnan(x))]
    return sum(kept) if kept else 0.0
