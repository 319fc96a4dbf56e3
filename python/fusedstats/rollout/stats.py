"""``RolloutStats``: running per-key statistics of the info dicts of vectorized envs."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import numpy as np

from .flatten import Batch, Flattener

logger = logging.getLogger(__name__)

_STAT_NAMES = ("count", "sum", "mean", "std", "min", "max")
# Why an info was not accumulated (the reasons the native walk reports, and the call-level
# ones of add()), in words for RolloutStats.last_rejection.
_REASONS = {
    "cycle": "contains itself (a cycle)",
    "too deep": "is nested deeper than 512 levels",
    "too large": "has more than 262,144 entries (shared sub-dicts counted each time)",
    "changed during the call": "changed size while it was read (another thread, or a "
    "leaf's __float__, changed it)",
    "bad key": "has a key that cannot be turned into a str",
    "bad mapping": "has a mapping whose items() failed",
    "not info dicts": "is not a list of info dicts",
    "re-entrant call": "came from inside another add() call on the same RolloutStats",
}
DEFAULT_FORGET_AFTER = 10  # clear() periods a key may go unseen before it is forgotten
KEY_TABLE_WARN = 100_000  # keys held: past this, a warning (once) about ever-new keys


def warmup() -> None:
    """Compiles the numba kernels, or loads them from numba's on-disk cache.

    The first call in a process imports numba (~0.3 s) and, the first time on a machine
    (or after fusedstats changed), compiles (~1 s); later processes load the compiled
    code from numba's cache in ``__pycache__`` (~0.2 s). Call it when a trainer is
    built, never inside a step; :class:`RolloutStats` calls it on construction. Calling
    it again costs nothing.

    Example:
        >>> warmup()
        >>> warmup()  # idempotent
    """
    _load_kernels()


@functools.cache
def _load_kernels() -> ModuleType:
    from . import _kernels  # compiles, or loads from numba's cache, at import

    return _kernels


class RolloutStats:
    """Accumulates info dicts from vectorized envs; per-key count/sum/mean/std(M2)/min/max.

    Every leaf of every info dict is accumulated under its path joined by ``"/"``
    (nested dicts only; lists, tuples, numpy arrays and torch tensors are leaves). A
    leaf may be a number (bool counts 0/1), or an array, list or tensor of numbers whose
    elements all count (a 1-element one is just a number; per-agent arrays may have
    different lengths in different infos). Anything else (str, None, bytes, objects,
    object/string/complex arrays, ragged nested lists) is skipped and counted in
    :attr:`skipped`, once per key per :meth:`add` call. Keys that are not str count
    under ``str(key)``.

    :meth:`add` never raises on bad input. An info dict that cannot be read as a whole
    (one that contains itself, is nested deeper than 512 levels, has more than 262,144
    entries, or is changed by another thread while it is read) is left out entirely and
    counted in :attr:`rejected` by reason (:attr:`last_rejection` says which info and
    where); the call's other infos are accumulated.

    NaN values are accumulated like numbers, as ``np.mean`` would: one NaN makes its
    key's sum, mean, std, min and max NaN (count still counts it).

    Statistics match numpy's over all values seen since construction or
    :meth:`clear` (``std`` is the population one, like ``np.std``); :meth:`get`
    returns the values themselves, in the order they were read (info by info). A key
    spelled with a "/" and a nested path that joins to the same string are one key.

    Keys are kept in a table across :meth:`clear` calls (ids index the statistics). So
    that keys which embed ever-new ids (episode ids) cannot grow it forever, a key not
    seen in the last ``forget_after`` clear() periods is forgotten at :meth:`clear` (a
    forgotten key that comes back simply counts as new); ``forget_after=None`` keeps
    every key. Past 100,000 keys a warning is logged once.

    Args:
        forget_after: clear() periods a key may go unseen before it is forgotten (the
            reporter clears once per report), or None to keep all keys.

    Example:
        >>> stats = RolloutStats()
        >>> stats.add([{"reward": 1.0, "game": {"hearts": [1, 2, 3]}}, {"reward": 3}])
        >>> stats.means()
        {'reward': 2.0, 'game/hearts': 2.0}
        >>> stats.get("game/hearts")
        array([1., 2., 3.])
        >>> stats.add([{"reward": "n/a"}]); stats.skipped
        {'reward': 1}
        >>> loop = {"x": 5.0}; loop["self"] = loop
        >>> stats.add([loop, {"reward": 5}]); stats.rejected, stats.means()["reward"]
        ({'cycle': 1}, 3.0)
    """

    skipped: dict[str, int]
    rejected: dict[str, int]
    last_rejection: str | None

    def __init__(self, *, forget_after: int | None = DEFAULT_FORGET_AFTER) -> None:
        if forget_after is not None and (
            isinstance(forget_after, bool) or not isinstance(forget_after, int) or forget_after < 1
        ):
            raise ValueError(f"forget_after must be an int >= 1 or None, got {forget_after!r}")
        _load_kernels()  # compiled now, not in the first add() of a training step
        self._flattener = Flattener()
        self._forget_after = forget_after
        self._warned_keys = False
        self._lock = threading.RLock()
        self._adding = False
        self.skipped = {}
        self.rejected = {}
        self.last_rejection = None
        self._allocate(16)
        # get(): each call's values and segments, sliced per key only when asked for.
        self._pending: list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = []
        self._chunks: dict[int, list[np.ndarray[Any, Any]]] = {}

    def _allocate(self, capacity: int) -> None:
        self._count = np.zeros(capacity, dtype=np.int64)
        self._sum = np.zeros(capacity)
        self._mean = np.zeros(capacity)
        self._m2 = np.zeros(capacity)
        self._min = np.full(capacity, np.inf)
        self._max = np.full(capacity, -np.inf)

    def _grow(self, n_keys: int) -> None:
        old = (self._count, self._sum, self._mean, self._m2, self._min, self._max)
        self._allocate(max(n_keys, 2 * old[0].size))
        for new, prev in zip(
            (self._count, self._sum, self._mean, self._m2, self._min, self._max), old, strict=True
        ):
            new[: prev.size] = prev

    def add(self, infos: Iterable[Mapping[str, Any]] | Mapping[str, Any]) -> None:
        """Accumulates every numeric leaf of ``infos``: a list (any iterable) of info
        dicts, or one info dict. Entries that are not mappings, such as None, are
        ignored; infos that cannot be read are counted in :attr:`rejected`. Never raises
        on bad input.

        Example:
            >>> stats = RolloutStats()
            >>> stats.add([{"agent": {"reward": np.array([1.0, 0.0])}}, {}])
            >>> stats.add({"agent": {"reward": 2.0}})  # one dict: one info
            >>> stats.summary()["agent/reward"]["count"]
            3.0
        """
        given: object = infos  # typed callers can still pass anything: checked here
        batch: Iterable[Any]
        if isinstance(given, Mapping):
            batch = (given,)
        elif isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
            self._reject_call("not info dicts", f"got {type(given).__name__}")
            return
        else:
            batch = given
        with self._lock:  # one add() at a time; the walk keeps state between its steps
            if self._adding:  # the same thread, from a leaf's __float__ or __array__
                self._reject_call("re-entrant call", "")
                return
            self._adding = True
            try:
                self._add(batch)
            finally:
                self._adding = False

    def _add(self, infos: Iterable[Any]) -> None:
        try:
            batch = self._flattener.flatten(infos)
        except Exception as e:  # iterating infos raised (a generator that fails...)
            self._reject_call("not info dicts", repr(e))
            return
        for path in batch.skipped:
            self.skipped[path] = self.skipped.get(path, 0) + 1
        for index, reason, path, detail in batch.rejected:
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
            shown = path
            if len(path) > 120:  # a path 500 levels deep: its two ends say enough
                shown = f"{path[:50]}...{path[-50:]} ({len(path)} characters)"
            where = f" at {shown!r}" if path else ""
            said = _REASONS.get(reason, reason)
            self.last_rejection = f"info {index} of an add() call {said}{where}" + (
                f" ({detail})" if detail else ""
            )
        if batch.segments.shape[1]:
            self._reduce(batch)
        n_keys = len(self._flattener.names)
        if n_keys > KEY_TABLE_WARN and not self._warned_keys:
            self._warned_keys = True
            logger.warning(
                "RolloutStats holds %d keys: do info keys embed ever-new ids (episode ids)? "
                "Unseen keys are forgotten at clear() (forget_after=%s)",
                n_keys,
                self._forget_after,
            )

    def _reject_call(self, reason: str, detail: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        said = _REASONS.get(reason, reason)
        self.last_rejection = f"an add() call's argument {said}" + (
            f" ({detail})" if detail else ""
        )

    def _reduce(self, batch: Batch) -> None:
        n_keys = len(self._flattener.names)
        if n_keys > self._count.size:
            self._grow(n_keys)
        segments, values = batch.segments, batch.values  # the walk's buffers, not copies
        _load_kernels().reduce_segments(
            segments, values, self._count, self._sum, self._mean, self._m2, self._min, self._max
        )
        values.flags.writeable = False  # get() hands out views of it
        self._pending.append((segments, values))

    # ---- reading -----------------------------------------------------------------

    def _present(self) -> list[int]:
        count = self._count[: len(self._flattener.names)]
        present: list[int] = np.flatnonzero(count).tolist()
        return present

    def keys(self) -> list[str]:
        """The keys with at least one numeric value, in order of first appearance."""
        names = self._flattener.names
        return [names[i] for i in self._present()]

    def __contains__(self, key: object) -> bool:
        kid = self._flattener.ids.get(key) if isinstance(key, str) else None
        return kid is not None and bool(self._count[kid] > 0)

    def __len__(self) -> int:
        return int(np.count_nonzero(self._count))

    def means(self) -> dict[str, float]:
        """Mean per key (keys with at least one numeric value).

        Example:
            >>> stats = RolloutStats()
            >>> stats.add([{"x": 1}, {"x": 2}, {"y": None}])
            >>> stats.means()
            {'x': 1.5}
        """
        present = self._present()
        names = self._flattener.names
        means = (self._sum[present] / self._count[present]).tolist()
        return {names[i]: m for i, m in zip(present, means, strict=True)}

    def summary(self) -> dict[str, dict[str, float]]:
        """Per key: count, sum, mean, std (population, like ``np.std``), min and max.

        Example:
            >>> stats = RolloutStats()
            >>> stats.add([{"x": np.array([1.0, 3.0])}])
            >>> stats.summary()
            {'x': {'count': 2.0, 'sum': 4.0, 'mean': 2.0, 'std': 1.0, 'min': 1.0, 'max': 3.0}}
        """
        present = self._present()
        count = self._count[present].astype(np.float64)
        columns = (
            count,
            self._sum[present],
            self._sum[present] / count,
            np.sqrt(self._m2[present] / count),
            self._min[present],
            self._max[present],
        )
        names = self._flattener.names
        rows = zip(*(c.tolist() for c in columns), strict=True)
        return {
            names[i]: dict(zip(_STAT_NAMES, row, strict=True))
            for i, row in zip(present, rows, strict=True)
        }

    def get(self, key: str, default: Any = None) -> np.ndarray[Any, Any] | Any:
        """All values accumulated for ``key`` (float64, 1-D, in order), or ``default``.

        The array is read-only: it may share memory with the stored values (copy it to
        change it).

        Example:
            >>> stats = RolloutStats()
            >>> stats.add([{"x": 1}, {"x": [2, 3]}])
            >>> float(np.mean(stats.get("x"))), stats.get("nope", [])
            (2.0, [])
        """
        kid = self._flattener.ids.get(key)
        if kid is None or self._count[kid] == 0:
            return default
        self._slice_pending()
        chunks = self._chunks.get(kid)
        if not chunks:  # statistics merged in from elsewhere (merge_state) carry no values
            return default
        if len(chunks) > 1 or chunks[0].strides != (8,):  # one contiguous array, kept
            joined = np.concatenate(chunks)
            joined.flags.writeable = False
            chunks[:] = [joined]
        return chunks[0]

    def _slice_pending(self) -> None:
        for segments, values in self._pending:
            for kid, start, n, stride in segments.T.tolist():
                if n:
                    chunk = values[start : start + n * stride : stride]
                    self._chunks.setdefault(kid, []).append(chunk)
        self._pending.clear()

    # ---- merging across processes --------------------------------------------------

    def export_state(self) -> dict[str, Any]:
        """The running statistics as plain data (JSON/pickle safe), for
        :meth:`merge_state` in another process: per key its count, sum, mean, M2
        (sum of squared deviations), min and max, and the skip and rejection counts. The values
        themselves (what :meth:`get` returns) are not included.

        Example:
            >>> stats = RolloutStats()
            >>> stats.add([{"x": 1.0}, {"x": 3.0}])
            >>> stats.export_state()["m2"]
            [2.0]
        """
        present = self._present()
        names = self._flattener.names
        return {
            "keys": [names[i] for i in present],
            "count": self._count[present].tolist(),
            "sum": self._sum[present].tolist(),
            "mean": self._mean[present].tolist(),
            "m2": self._m2[present].tolist(),
            "min": self._min[present].tolist(),
            "max": self._max[present].tolist(),
            "skipped": dict(self.skipped),
            "rejected": dict(self.rejected),
        }

    def merge_state(self, state: Mapping[str, Any]) -> None:
        """Merges another RolloutStats' :meth:`export_state` into these statistics, as
        if its values had been added here (exact: counts and sums add, M2 by Chan et
        al.'s formula, NaN sticks in min/max as in :meth:`add`). :meth:`get` still
        returns only the values added here.

        Example:
            >>> a, b = RolloutStats(), RolloutStats()
            >>> a.add([{"x": 1.0}]); b.add([{"x": 3.0}, {"y": 5}])
            >>> a.merge_state(b.export_state()); a.means()
            {'x': 2.0, 'y': 5.0}
        """
        with self._lock:
            keys = list(state["keys"])
            if keys:
                ids = np.array([self._flattener.key_id(k) for k in keys], dtype=np.int64)
                if len(self._flattener.names) > self._count.size:
                    self._grow(len(self._flattener.names))
                n = np.asarray(state["count"], dtype=np.int64)
                seen = self._count[ids]
                total = seen + n
                mean = np.asarray(state["mean"], dtype=np.float64)
                delta = mean - self._mean[ids]
                with np.errstate(invalid="ignore", divide="ignore"):
                    share = np.where(total > 0, n / np.maximum(total, 1), 0.0)
                    self._mean[ids] = np.where(seen == 0, mean, self._mean[ids] + delta * share)
                    self._m2[ids] = np.where(
                        seen == 0,
                        state["m2"],
                        self._m2[ids] + np.asarray(state["m2"]) + delta * delta * seen * share,
                    )
                # np.minimum/np.maximum propagate NaN: it sticks, as in add().
                self._min[ids] = np.minimum(
                    self._min[ids], np.asarray(state["min"], dtype=np.float64)
                )
                self._max[ids] = np.maximum(
                    self._max[ids], np.asarray(state["max"], dtype=np.float64)
                )
                self._sum[ids] += np.asarray(state["sum"], dtype=np.float64)
                self._count[ids] = total
            for key, n_skipped in state.get("skipped", {}).items():
                self.skipped[key] = self.skipped.get(key, 0) + int(n_skipped)
            for reason, n_rejected in state.get("rejected", {}).items():
                self.rejected[reason] = self.rejected.get(reason, 0) + int(n_rejected)

    def clear(self) -> None:
        """Forgets all values, skip and rejection counts. Key ids stay, to be reused,
        except those of keys not seen in the last ``forget_after`` clear() periods,
        which are forgotten (the others keep their order).

        Example:
            >>> stats = RolloutStats(forget_after=1)
            >>> stats.add([{"episode_17": 1.0, "x": 2.0}]); stats.clear()
            >>> stats.add([{"x": 3.0}]); stats.clear()  # episode_17 unseen since: forgotten
            >>> stats._flattener.names
            ['x']
        """
        with self._lock:
            if self._forget_after is not None:
                self._flattener.forget(self._forget_after)
            self._allocate(self._count.size)
            self.skipped.clear()
            self.rejected.clear()
            self.last_rejection = None
            self._pending.clear()
            self._chunks.clear()

    def debug_summary(self) -> str:
        """One line per skipped key with its count (empty when nothing was skipped).

        Example:
            >>> stats = RolloutStats()
            >>> stats.add([{"name": "env-3", "x": 1.0}])
            >>> print(stats.debug_summary())
            name: skipped in 1 add() call (non-numeric leaves)
        """
        lines = []
        for key in sorted(self.skipped):
            n = self.skipped[key]
            calls = "call" if n == 1 else "calls"
            lines.append(f"{key}: skipped in {n} add() {calls} (non-numeric leaves)")
        for reason in sorted(self.rejected):
            n = self.rejected[reason]
            lines.append(f"rejected ({reason}): {n} info{'' if n == 1 else 's'} not accumulated")
        if self.last_rejection:
            lines.append(f"last rejected: {self.last_rejection}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"RolloutStats({len(self)} keys, {len(self.skipped)} skipped)"

    # ---- pickling (checkpoints, deepcopy): the native key table is rebuilt ---------

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            self._slice_pending()  # the values as per-key arrays, without the walk's buffers
            state = {k: v for k, v in self.__dict__.items() if k not in ("_flattener", "_lock")}
            state["_names"] = list(self._flattener.names)
            state["_adding"] = False
            return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        names = state.pop("_names")
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._flattener = Flattener()
        for name in names:
            self._flattener.key_id(name)
