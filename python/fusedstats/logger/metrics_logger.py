"""MetricsLogger: RLlib's metrics-logger API on a batched native core."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

from .ops import Settings
from .stats import (
    Stats,
    check_mergeable,
    common_settings,
    merge_columns,
    peek_all,
    reduce_all,
    set_exit_hook,
    set_values,
    snapshots,
    throughputs,
)
from .values import FLOAT_INT_MAX, TENSOR_CLASS, is_tensor, plain_list, tensors_to_host

Key = str | tuple[str, ...]
_MISSING: Any = object()


def key_path(key: Any) -> tuple[str, ...]:
    """A key as a tuple of str: "a" -> ("a",), ("a", "b") stays."""
    if isinstance(key, str):
        return (key,)
    if isinstance(key, tuple) and key and all(isinstance(k, str) for k in key):
        return key
    raise TypeError(f"a key is a str or a non-empty tuple of str, got {key!r}")


def _leaves(
    tree: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    for k, v in tree.items():
        path = (*prefix, k)
        if isinstance(v, Mapping):
            yield from _leaves(v, path)
        else:
            yield path, v


def _build(pairs: Sequence[tuple[tuple[str, ...], Any]], strip: int = 0) -> dict[str, Any]:
    """The nested dict of (path, value) pairs, paths cut by their first ``strip`` keys."""
    out: dict[str, Any] = {}
    for path, value in pairs:
        if len(path) == strip + 1:  # a top-level key: no nesting to walk
            out[path[-1]] = value
            continue
        node = out
        for k in path[strip:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = value
    return out


class MetricsLogger:
    """Logs metrics under nested keys and reduces them: RLlib's ``MetricsLogger`` API.

    ``log_value`` on a known key is a dict lookup and an append; ``reduce``, ``peek``
    and ``merge_and_log_n_dicts`` reduce or merge all keys in one call into the
    compiled core. Torch tensors are detached and stay on their device until a reduce
    or peek moves all of them to the host in one transfer per device. Logging from
    several threads loses nothing. ``get_state()`` is plain data.

    Example:
        >>> logger = MetricsLogger()
        >>> logger.log_value("loss", 2.0); logger.log_value("loss", 3.0)
        >>> logger.peek("loss")
        2.01
        >>> logger.log_value(("env", "steps"), 10, reduce="sum")
        >>> logger.log_value(("env", "steps"), 5, reduce="sum")
        >>> logger.reduce(return_stats_obj=False)
        {'loss': 2.01, 'env': {'steps': 15}}
    """

    def __init__(self) -> None:
        self.stats: dict[str, Any] = {}
        # Every form of a key seen (str and tuple) -> its Stats: the log_value fast path.
        self._flat: dict[Any, Stats] = {}
        self._paths: dict[tuple[str, ...], Stats] = {}
        self._lock = threading.RLock()
        self._tensor_mode = False
        self._tensor_keys: dict[tuple[str, ...], Any] = {}
        # Keys of more than one part: none means self.stats is flat, {name: Stats} in
        # the order of self._paths, and a result is one dict(zip(...)).
        self._n_nested = 0

    # ---- logging ----------------------------------------------------------------

    def log_value(
        self,
        key: Key,
        value: Any,
        *,
        reduce: str | None = "mean",
        window: float | None = None,
        ema_coeff: float | None = None,
        clear_on_reduce: bool = False,
        with_throughput: bool = False,
        percentiles: Any = None,
    ) -> None:
        """Logs ``value`` under ``key``. The first call for a key creates its Stats
        with these settings; later calls only push (their settings are ignored).

        ``reduce=None`` with no (or an infinite) window forces ``clear_on_reduce``.
        A Stats value is merged on the time axis. A non-numeric value for a reducing
        key raises TypeError naming the key, an int no float holds (``10**400``)
        ValueError naming the key; either changes nothing.
        """
        try:
            stats = self._flat.get(key)
        except TypeError:  # unhashable key
            stats = None
        if stats is not None:
            cls = value.__class__
            # Floats pay one check; ints two compares more (an int no float holds
            # would break every later reduce: the slow path refuses it).
            if cls is float or (cls is int and -FLOAT_INT_MAX <= value <= FLOAT_INT_MAX):
                stats._append(value)
                if stats._fold and len(stats._values) > stats._fold:
                    stats._fold_buffer()
                return
            if cls is TENSOR_CLASS[0] and not self._tensor_mode:
                # A tensor on a known key: a CPU value is read now, a device one kept
                # (no sync); errors name the key.
                try:
                    stats._push_tensor(value)
                except (TypeError, ValueError) as err:
                    raise type(err)(f"key {key!r}: {err}") from None
                return
        # The settings in Settings.of's order, everywhere below.
        self._log_slow(
            key, value, reduce, window, ema_coeff, clear_on_reduce, percentiles, with_throughput
        )

    def _log_slow(
        self,
        key: Any,
        value: Any,
        reduce: str | None,
        window: float | None,
        ema_coeff: float | None,
        clear_on_reduce: bool,
        percentiles: Any,
        with_throughput: bool,
    ) -> None:
        path = key_path(key)
        with self._lock:
            stats = self._paths.get(path)
            if isinstance(value, Stats):
                if stats is None:
                    self._insert(path, key, value)
                else:
                    check_mergeable(stats, value, key)
                    stats.merge_on_time_axis(value)
                return
            if stats is None:
                stats = _new_stats(
                    key, reduce, window, ema_coeff, clear_on_reduce, percentiles, with_throughput
                )
                self._push_checked(key, stats, value)
                self._insert(path, key, stats)
            else:
                self._flat[key] = stats
                self._push_checked(key, stats, value)
            if self._tensor_mode and is_tensor(value):
                self._tensor_keys.setdefault(path, key)

    @staticmethod
    def _push_checked(key: Any, stats: Stats, value: Any) -> None:
        try:
            stats.push(value)
        except (TypeError, ValueError) as err:
            raise type(err)(f"key {key!r}: {err}") from None

    def _insert(self, path: tuple[str, ...], key: Any, stats: Stats) -> None:
        node = self.stats
        for i, k in enumerate(path[:-1]):
            child = node.get(k)
            if child is None:
                child = node[k] = {}
            elif isinstance(child, Stats):
                raise ValueError(
                    f"key {key!r}: {path[: i + 1]!r} is already a metric, it cannot hold others"
                )
            node = child
        if isinstance(node.get(path[-1]), dict):
            raise ValueError(f"key {key!r} already holds nested metrics")
        node[path[-1]] = stats
        self._paths[path] = stats
        if len(path) > 1:
            self._n_nested += 1
        self._flat[path] = stats
        self._flat[key] = stats
        if len(path) == 1:
            self._flat[path[0]] = stats

    def log_dict(
        self,
        stats_dict: Mapping[str, Any],
        *,
        key: Key | None = None,
        reduce: str | None = "mean",
        window: float | None = None,
        ema_coeff: float | None = None,
        clear_on_reduce: bool = False,
    ) -> None:
        """Logs every leaf of a nested dict (prefixed by ``key``) via :meth:`log_value`."""
        prefix = key_path(key) if key is not None else ()
        for path, value in _leaves(stats_dict):
            self.log_value(
                (*prefix, *path),
                value,
                reduce=reduce,
                window=window,
                ema_coeff=ema_coeff,
                clear_on_reduce=clear_on_reduce,
            )

    def set_value(
        self,
        key: Key,
        value: Any,
        *,
        reduce: str | None = "mean",
        window: float | None = None,
        ema_coeff: float | None = None,
        clear_on_reduce: bool = False,
        with_throughput: bool = False,
    ) -> None:
        """Replaces the values of an existing key with ``[value]``, else logs it."""
        path = key_path(key)
        with self._lock:
            stats = self._paths.get(path)
            if stats is None:
                self.log_value(
                    key,
                    value,
                    reduce=reduce,
                    window=window,
                    ema_coeff=ema_coeff,
                    clear_on_reduce=clear_on_reduce,
                    with_throughput=with_throughput,
                )
                return
            try:
                set_values(stats, [value])  # checked before anything changes
            except (TypeError, ValueError) as err:
                raise type(err)(f"key {key!r}: {err}") from None

    def log_time(
        self,
        key: Key,
        *,
        reduce: str | None = "mean",
        window: float | None = None,
        ema_coeff: float | None = None,
        clear_on_reduce: bool = False,
        key_for_throughput: Key | None = None,
        key_for_unit_count: Key | None = None,
    ) -> Stats:
        """The Stats of ``key``, to use as ``with logger.log_time("t"): ...``.

        Each block pushes its wall time in seconds. With ``key_for_unit_count``, each
        exit also logs ``peek(key_for_unit_count) / seconds`` under
        ``key_for_throughput`` (default ``key + "_throughput_per_s"``).
        """
        path = key_path(key)
        with self._lock:
            stats = self._paths.get(path)
            if stats is None:
                stats = _new_stats(key, reduce, window, ema_coeff, clear_on_reduce, None, False)
                self._insert(path, key, stats)
        if key_for_unit_count is not None:
            unit_key = key_for_unit_count
            thr_key: Key = key_for_throughput or (*path[:-1], path[-1] + "_throughput_per_s")

            def on_exit(seconds: float) -> None:
                self.log_value(
                    thr_key,
                    self.peek(unit_key) / seconds,
                    reduce=reduce,
                    window=window,
                    ema_coeff=ema_coeff,
                    clear_on_reduce=clear_on_reduce,
                )

            set_exit_hook(stats, on_exit)
        return stats

    # ---- reading ----------------------------------------------------------------

    def _node(self, path: tuple[str, ...]) -> Any:
        node: Any = self.stats
        for k in path:
            if not isinstance(node, dict) or k not in node:
                return _MISSING
            node = node[k]
        return node

    def __contains__(self, key: object) -> bool:
        try:
            return self._node(key_path(key)) is not _MISSING
        except TypeError:
            return False

    def _subtree(self, key: Any) -> tuple[Any, list[tuple[tuple[str, ...], Stats]]]:
        """(node at key, its (path, Stats) leaves); node is _MISSING if absent."""
        if key is None or key == ():
            return self.stats, list(self._paths.items())
        path = key_path(key)
        node = self._node(path)
        if node is _MISSING:
            return node, []
        if isinstance(node, Stats):
            return node, [(path, node)]
        return node, list(_leaves(node, path))

    def peek(
        self, key: Key | None = None, *, default: Any = _MISSING, throughput: bool = False
    ) -> Any:
        """The reduced value of ``key`` (a nested dict for a sub-tree), changing nothing.

        A missing key returns ``default`` if given, else raises KeyError. With
        ``throughput``, the value per second of a ``with_throughput`` sum.
        """
        node, leaves = self._subtree(key)
        if node is _MISSING:
            if default is not _MISSING:
                return default
            raise KeyError(f"no metric under key {key!r}")
        stats = [s for _, s in leaves]
        with self._lock:
            snaps = snapshots(stats)
        values = self._reduce_values(leaves, stats, snaps)
        if throughput:
            values = throughputs(stats, values)
        if isinstance(node, Stats):
            return values[0]
        strip = 0 if key is None or key == () else len(key_path(key))
        return _build([(p, v) for (p, _), v in zip(leaves, values, strict=True)], strip)

    @staticmethod
    def _reduce_values(
        leaves: Sequence[tuple[tuple[str, ...], Stats]], stats: list[Stats], snaps: list[list[Any]]
    ) -> list[Any]:
        try:
            return peek_all(stats, snaps)
        except Exception:
            for (path, s), snap in zip(leaves, snaps, strict=True):
                try:
                    peek_all([s], [snap])
                except Exception as err:
                    raise ValueError(f"reducing key {path!r} failed: {err}") from err
            raise

    @staticmethod
    def peek_results(results: Any) -> Any:
        """``results`` with every Stats leaf replaced by its peeked value (one batch)."""
        if isinstance(results, Stats):
            return results.peek()
        if not isinstance(results, Mapping):
            return results
        pairs = list(_leaves(results))
        stats = [v for _, v in pairs if isinstance(v, Stats)]
        values = iter(peek_all(stats))
        return _build([(p, next(values) if isinstance(v, Stats) else v) for p, v in pairs])

    def reduce(self, key: Key | None = None, *, return_stats_obj: bool = True) -> Any:
        """Reduces every Stats (or those under ``key``) in one batch.

        Returns the structure of the logged keys with, at the leaves, Stats holding
        the results (``return_stats_obj=True``; pass these to a downstream
        ``merge_and_log_n_dicts``) or the plain reduced values.
        """
        with self._lock:
            node, leaves = self._subtree(key)
            if node is _MISSING:
                raise KeyError(f"no metric under key {key!r}")
            stats = [s for _, s in leaves]
            # A flat logger: its names, in _paths' order, make the result in one call.
            names = list(node) if node is self.stats and not self._n_nested else None
            try:
                reduced = reduce_all(stats)
            except Exception:
                self._reduce_values(leaves, stats, snapshots(stats))
                raise
        if return_stats_obj:
            out: list[Any] = reduced
        else:
            out = [s.history[0] for s in reduced]
        if isinstance(node, Stats):
            return out[0]
        if names is not None:
            return dict(zip(names, out, strict=True))
        strip = 0 if key is None or key == () else len(key_path(key))
        return _build([(p, v) for (p, _), v in zip(leaves, out, strict=True)], strip)

    def _reduce_leaves(self) -> tuple[list[tuple[str, ...]], list[Stats]]:
        """``reduce()`` as (key paths, reduced Stats), without building the result tree
        (for ``sync_logger``: 1,000 keys, ~0.5 ms saved); its error names the key."""
        with self._lock:
            items = list(self._paths.items())
            stats = [s for _, s in items]
            try:
                reduced = reduce_all(stats)
            except Exception:
                self._reduce_values(items, stats, snapshots(stats))
                raise
        return [p for p, _ in items], reduced

    # ---- merging ----------------------------------------------------------------

    def merge_and_log_n_dicts(
        self,
        stats_dicts: Sequence[Mapping[str, Any]],
        *,
        key: Key | None = None,
        reduce: str | None = "mean",
        window: float | None = None,
        ema_coeff: float | None = None,
        clear_on_reduce: bool = False,
    ) -> None:
        """Merges the results of parallel components (e.g. their ``reduce()``s).

        For every leaf path in any dict: plain values become Stats with these
        settings; the first Stats' values seed a base; lifetime sums (sum, no window,
        no clear_on_reduce) first push ``-peek(previous=True)`` so only what is new
        since their last reduce counts; the rest merge in parallel into the base (all
        paths in one native call); the base is then set under ``key + path``, or
        merged on the time axis into the Stats already there. Inputs are not changed.
        """
        prefix = key_path(key) if key is not None else ()
        common = None
        columns: list[Any] | None = None
        if _same_keys(stats_dicts):
            # The usual case: every component logged the same keys in the same order:
            # transpose in C instead of a lookup per (key, component). Then if every
            # leaf is a Stats of one settings (flat), that is all the checking needed.
            columns = _transposed(stats_dicts)
            common = common_settings(columns)  # None: some leaf is no Stats (or a dict)
        flat = common is not None or not any(
            dict in set(map(type, d.values())) for d in stats_dicts
        )
        # Flat results are used as they are, keyed by str; nested ones become
        # {path tuple: leaf}.
        per_dict: Sequence[Mapping[Any, Any]] = (
            stats_dicts if flat else [dict(_leaves(d)) for d in stats_dicts]
        )
        if flat and columns is not None:
            paths = list(stats_dicts[0]) if stats_dicts else []
        elif not flat and _same_keys(per_dict):
            paths, columns = list(per_dict[0]), _transposed(per_dict)
        else:
            paths = list(dict.fromkeys(chain.from_iterable(per_dict)))
            columns = [[d[p] for d in per_dict if p in d] for p in paths]
        if reduce is None and (window is None or window == math.inf):
            clear_on_reduce = True
        keys = [(*prefix, *(path if not flat else (path,))) for path in paths]
        if not all(type(part) is str for part in chain.from_iterable(keys)):
            keys = [key_path(full) for full in keys]  # raises TypeError naming the key
        merged = merge_columns(columns, keys, (reduce, window, ema_coeff, clear_on_reduce), common)
        with self._lock:
            for full, stats in zip(keys, merged, strict=True):
                existing = self._paths.get(full)
                if existing is None:
                    self._insert(full, full, stats)
                else:
                    check_mergeable(existing, stats, full)
                    existing.merge_on_time_axis(stats)

    def aggregate(self, stats_dicts: Sequence[Mapping[str, Any]], key: Key | None = None) -> None:
        """``merge_and_log_n_dicts`` with the default settings."""
        self.merge_and_log_n_dicts(stats_dicts, key=key)

    # ---- housekeeping -----------------------------------------------------------

    def reset(self) -> None:
        """Forgets every metric."""
        with self._lock:
            self.stats = {}
            self._flat = {}
            self._paths = {}
            self._n_nested = 0
            self._tensor_keys = {}

    def delete(self, *key: str, key_error: bool = True) -> None:
        """Deletes the metric or sub-tree at ``key`` (given as its parts)."""
        path = tuple(key)
        with self._lock:
            parent = self._node(path[:-1]) if path else _MISSING
            if not path or not isinstance(parent, dict) or path[-1] not in parent:
                if key_error:
                    raise KeyError(f"no metric under key {path!r}")
                return
            del parent[path[-1]]
            gone = {p for p in self._paths if p[: len(path)] == path}
            removed = {id(self._paths.pop(p)) for p in gone}
            self._n_nested = sum(len(p) > 1 for p in self._paths)
            self._flat = {k: s for k, s in self._flat.items() if id(s) not in removed}

    def get_state(self) -> dict[str, Any]:
        """Every metric as plain data: JSON-, pickle- and ``torch.load(weights_only=True)``-safe."""
        with self._lock:
            items = list(self._paths.items())
            snaps = snapshots([s for _, s in items])
        flat = tensors_to_host([v for snap in snaps for v in snap])
        states = []
        pos = 0
        for (path, s), snap in zip(items, snaps, strict=True):
            state = s.get_state()
            state["values"] = plain_list(flat[pos : pos + len(snap)])
            pos += len(snap)
            states.append([list(path), state])
        return {"stats": states, "tensor_mode": self._tensor_mode}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restores what :meth:`get_state` saved, replacing everything.

        The whole state is checked first, and only then is everything replaced, at
        once: a state that :meth:`get_state` could not have made raises TypeError or
        ValueError naming the entry at fault (``stats[3] (key ('env', 'steps')):
        'values' must be a list``), and the logger keeps what it held.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"set_state: a state is a dict, got {type(state).__name__}")
        if "stats" not in state:
            raise ValueError("set_state: the state has no 'stats'")
        entries, tensor_mode = state["stats"], state.get("tensor_mode", False)
        if not isinstance(entries, (list, tuple)):
            raise TypeError(
                "set_state: 'stats' must be a list of [key path, Stats state] pairs, got "
                f"{type(entries).__name__}"
            )
        if type(tensor_mode) is not bool:
            raise TypeError(f"set_state: 'tensor_mode' must be True or False, got {tensor_mode!r}")
        fresh = MetricsLogger()
        for i, entry in enumerate(entries):
            if not isinstance(entry, (list, tuple)) or len(entry) != 2:
                raise TypeError(
                    f"set_state: stats[{i}]: expected a [key path, Stats state] pair, got "
                    f"{entry!r:.80}"
                )
            path, stats_state = entry
            if (
                not isinstance(path, (list, tuple))
                or not path
                or not all(isinstance(k, str) for k in path)
            ):
                raise TypeError(
                    f"set_state: stats[{i}]: a key path is a non-empty list of str, "
                    f"got {path!r:.80}"
                )
            p = tuple(path)
            where = f"set_state: stats[{i}] (key {p!r})"
            if p in fresh._paths:
                raise ValueError(f"{where}: the key appears twice")
            try:
                fresh._insert(p, p, Stats.from_state(stats_state))
            except (TypeError, ValueError) as err:
                raise type(err)(f"{where}: {err}") from None
        with self._lock:  # one swap: no reader sees half a state
            self.stats, self._flat, self._paths = fresh.stats, fresh._flat, fresh._paths
            self._n_nested = fresh._n_nested
            self._tensor_keys = {}
            self._tensor_mode = tensor_mode

    # ---- tensor mode --------------------------------------------------------------

    def activate_tensor_mode(self) -> None:
        """Starts tracking the keys that receive tensors (values stay on device)."""
        self._tensor_mode = True

    def deactivate_tensor_mode(self) -> dict[Any, Any]:
        """Stops tensor mode; returns ``{key: peek(key)}`` for keys that received
        tensors while it was active (one batched transfer)."""
        self._tensor_mode = False
        keys = dict(self._tensor_keys)
        self._tensor_keys = {}
        pairs = [(k, self._paths[p]) for p, k in keys.items() if p in self._paths]
        stats = [s for _, s in pairs]
        values = peek_all(stats)
        return {k: v for (k, _), v in zip(pairs, values, strict=True)}

    @property
    def tensor_mode(self) -> bool:
        return self._tensor_mode

    @staticmethod
    def tensors_to_numpy(tensor_metrics: Any) -> Any:
        """A nested structure with every torch tensor replaced by a numpy value
        (one-element tensors moved in one batch per device)."""
        if isinstance(tensor_metrics, Mapping):
            pairs = list(_leaves(tensor_metrics))
            host = tensors_to_host([v for _, v in pairs])
            return _build([(p, _numpy(v)) for (p, _), v in zip(pairs, host, strict=True)])
        return _numpy(tensors_to_host([tensor_metrics])[0])


def _same_keys(dicts: Sequence[Mapping[Any, Any]]) -> bool:
    """Whether every dict has the first one's keys, in its order."""
    first = list(dicts[0]) if dicts else []
    return all(list(d) == first for d in dicts)


def _transposed(dicts: Sequence[Mapping[Any, Any]]) -> list[Any]:
    """The columns (one per key) of dicts with the same keys in the same order."""
    return list(zip(*[list(d.values()) for d in dicts], strict=True))


def _new_stats(
    key: Any,
    reduce: str | None,
    window: float | None,
    ema_coeff: float | None,
    clear_on_reduce: bool,
    percentiles: Any,
    with_throughput: bool,
) -> Stats:
    """The Stats a key's first log call creates: ``reduce=None`` with no (or an
    infinite) window forces ``clear_on_reduce``; bad settings name the key."""
    if reduce is None and (window is None or window == math.inf):
        clear_on_reduce = True
    try:
        settings = Settings.of(
            reduce, window, ema_coeff, clear_on_reduce, percentiles, with_throughput
        )
    except ValueError as err:
        raise ValueError(f"key {key!r}: {err}") from None
    return Stats.assemble(settings, ())


def _numpy(v: Any) -> Any:
    import numpy as np

    if is_tensor(v):
        return v.detach().cpu().numpy()
    if isinstance(v, float):
        return np.float64(v)
    return v
