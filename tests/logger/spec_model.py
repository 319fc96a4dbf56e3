"""A slow, plain-list model of docs/logger.md, to check fusedstats against.

Every rule is written the way that page states it, with no bounded-memory tricks: a Stats
keeps every value it was given until a reduce says otherwise, and each peek reduces the
list from scratch. Tests compare only observable results (peek, reduce, merge) with
fusedstats, so the model is free to be this wasteful.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

INF = float("inf")
NAN = float("nan")
REDUCE_METHODS = (None, "mean", "min", "max", "sum", "percentiles")
DEFAULT_EMA_COEFF = 0.01
DEFAULT_PERCENTILES = (0, 50, 75, 90, 95, 99, 100)


def is_nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def all_python_ints(values: list[Any]) -> bool:
    return all(type(v) is int for v in values)


def nan_ignoring(method: str, values: list[Any]) -> Any:
    """mean/min/max/sum over the non-NaN values; NaN when all are NaN, but 0.0 for a
    sum (numpy's nansum, which RLlib 2.40 uses).

    Python ints in give a python int out for sum/min/max (docs/logger.md, "Reductions"); everything
    else is a python float.
    """
    kept = [v for v in values if not is_nan(v)]
    if not kept:
        return 0.0 if method == "sum" else NAN
    if method == "mean":
        return math.fsum(kept) / len(kept)
    result = {"sum": sum, "min": min, "max": max}[method](kept)
    return int(result) if all_python_ints(values) else float(result)


def nan_mean(values: list[Any]) -> float:
    return float(nan_ignoring("mean", values))


def percentile(values: list[Any], q: float) -> float:
    """The q-th percentile of the non-NaN values, interpolating linearly between the two
    nearest ranks (numpy's default); NaN when there are none."""
    ranked = sorted(float(v) for v in values if not is_nan(v))
    if not ranked:
        return NAN
    position = q / 100.0 * (len(ranked) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ranked) - 1)
    return ranked[below] + (ranked[above] - ranked[below]) * (position - below)


class Stats:
    """The model's Stats: settings, a plain list of values, and the last two reduce results."""

    def __init__(
        self,
        init_value: Any = None,
        reduce: str | None = "mean",
        window: float | None = None,
        ema_coeff: float | None = None,
        clear_on_reduce: bool = False,
        percentiles: Any = None,
    ) -> None:
        if reduce not in REDUCE_METHODS:
            raise ValueError(f"reduce must be one of {REDUCE_METHODS}, got {reduce!r}")
        if window is not None and ema_coeff is not None:
            raise ValueError("only one of window and ema_coeff may be given")
        if ema_coeff is not None and reduce != "mean":
            raise ValueError("ema_coeff needs reduce='mean'")
        if window == INF and not clear_on_reduce:
            raise ValueError("window=inf needs clear_on_reduce=True")
        if reduce == "percentiles" and window is None:
            raise ValueError("reduce='percentiles' needs a window")
        if reduce == "mean" and window is None and ema_coeff is None:
            ema_coeff = DEFAULT_EMA_COEFF
        if reduce == "percentiles":
            percentiles = DEFAULT_PERCENTILES if percentiles in (None, True) else percentiles
            self.percentiles: tuple[float, ...] | None = tuple(percentiles)
        else:
            self.percentiles = None
        self.reduce_method = reduce
        self.window = window
        self.ema_coeff = ema_coeff
        self.clear_on_reduce = clear_on_reduce
        # [result of the last reduce, result of the one before]; 0 before any.
        self.history: list[Any] = [0, 0]
        if init_value is None:
            self.values: list[Any] = []
        elif isinstance(init_value, list):  # a list seeds the values (RLlib: force_list)
            self.values = list(init_value)
        else:
            self.values = [init_value]

    # ---- settings -------------------------------------------------------------------

    @property
    def infinite_window(self) -> bool:
        return self.window is None or self.window == INF

    def settings(self) -> tuple[Any, ...]:
        return (self.reduce_method, self.window, self.ema_coeff, self.percentiles)

    def _check_same_settings(self, other: Stats) -> None:
        if other.settings() != self.settings():
            raise ValueError(f"cannot merge Stats {other.settings()} into {self.settings()}")

    @staticmethod
    def similar_to(other: Stats, init_value: Any = None) -> Stats:
        stats = Stats(
            init_value,
            reduce=other.reduce_method,
            window=other.window,
            ema_coeff=other.ema_coeff,
            clear_on_reduce=other.clear_on_reduce,
            percentiles=other.percentiles,
        )
        stats.history = list(other.history)
        return stats

    # ---- values ---------------------------------------------------------------------

    def push(self, value: Any) -> None:
        self.values.append(value)

    def _windowed(self, values: list[Any]) -> list[Any]:
        return list(values) if self.infinite_window else list(values[-int(self.window) :])

    def _reduced(self) -> tuple[Any, list[Any]]:
        """(the reduced value, the values a reduce would leave behind)."""
        values = self._windowed(self.values)
        if self.reduce_method is None:
            return list(values), list(values)
        if self.percentiles is not None:
            return {q: percentile(values, q) for q in self.percentiles}, values
        if not values:
            return (0 if self.reduce_method == "sum" else NAN), []
        if self.ema_coeff is not None:
            c = self.ema_coeff
            ema = values[0]
            for v in values[1:]:
                ema = c * v + (1.0 - c) * ema
            return ema, ([ema] if self.infinite_window else values)
        reduced = nan_ignoring(self.reduce_method, values)
        if self.infinite_window and self.reduce_method != "mean":
            return reduced, [reduced]
        return reduced, values

    def peek(self, *, previous: bool = False) -> Any:
        if previous:
            return self.history[1]
        return self._reduced()[0]

    def reduce(self) -> Stats:
        """Commits the reduction. Returns the Stats that holds the result: `self`, or with
        clear_on_reduce a new one, while `self` is emptied (keeping its history)."""
        reduced, values = self._reduced()
        self.history = [reduced, self.history[0]]
        if not self.clear_on_reduce:
            self.values = values
            return self
        result = Stats.similar_to(self, values)
        self.values = []
        return result

    # ---- merging --------------------------------------------------------------------

    def merge_on_time_axis(self, other: Stats) -> None:
        self._check_same_settings(other)
        self.values = self._windowed(self.values + list(other.values))

    def merge_in_parallel(self, *others: Stats) -> None:
        for other in others:
            self._check_same_settings(other)
        lists = [self.values] + [list(o.values) for o in others]
        stop_at = INF if self.window is None else self.window
        merged: list[Any] = []
        for i in range(1, max(len(x) for x in lists) + 1):
            at_i = [x[-i] for x in lists if len(x) >= i]
            if self.ema_coeff is not None:
                merged += [nan_mean(at_i)] * len(at_i)
            elif self.reduce_method in (None, "sum", "percentiles"):
                merged += at_i
            else:
                merged += [nan_ignoring(self.reduce_method, at_i)] * len(at_i)
            if len(merged) >= stop_at:
                break
        self.values = merged[::-1]


# ---- the logger -----------------------------------------------------------------------


def as_path(key: str | tuple[str, ...]) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


def leaves(tree: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, leaf) for every non-dict leaf of a nested dict."""
    if isinstance(tree, dict):
        for name, sub in tree.items():
            yield from leaves(sub, (*prefix, name))
    else:
        yield prefix, tree


def map_leaves(tree: Any, fn: Any) -> Any:
    if isinstance(tree, dict):
        return {name: map_leaves(sub, fn) for name, sub in tree.items()}
    return fn(tree)


def peek_results(results: Any) -> Any:
    return map_leaves(results, lambda s: s.peek() if isinstance(s, Stats) else s)


def _settings_kwargs(
    reduce: str | None, window: float | None, ema_coeff: float | None, clear_on_reduce: bool
) -> dict[str, Any]:
    # reduce=None with no (or an infinite) window would grow forever: always cleared.
    if reduce is None and (window is None or window == INF):
        clear_on_reduce = True
    return {
        "reduce": reduce,
        "window": window,
        "ema_coeff": ema_coeff,
        "clear_on_reduce": clear_on_reduce,
    }


class MetricsLogger:
    """The model's MetricsLogger over model Stats, in a nested dict."""

    def __init__(self) -> None:
        self.stats: dict[str, Any] = {}

    # ---- keys -----------------------------------------------------------------------

    def _find(self, key: str | tuple[str, ...], tree: Any = None) -> Any:
        node = self.stats if tree is None else tree
        for name in as_path(key):
            if not isinstance(node, dict) or name not in node:
                raise KeyError(key)
            node = node[name]
        return node

    def __contains__(self, key: str | tuple[str, ...]) -> bool:
        try:
            self._find(key)
        except KeyError:
            return False
        return True

    def _set(self, key: str | tuple[str, ...], stats: Stats) -> None:
        *parents, last = as_path(key)
        node = self.stats
        for name in parents:
            node = node.setdefault(name, {})
        node[last] = stats

    # ---- logging --------------------------------------------------------------------

    def log_value(
        self,
        key: str | tuple[str, ...],
        value: Any,
        *,
        reduce: str | None = "mean",
        window: float | None = None,
        ema_coeff: float | None = None,
        clear_on_reduce: bool = False,
        percentiles: Any = None,
    ) -> None:
        if key not in self:
            if isinstance(value, Stats):
                self._set(key, Stats.similar_to(value, value.values))
            else:
                settings = _settings_kwargs(reduce, window, ema_coeff, clear_on_reduce)
                self._set(key, Stats(value, **settings, percentiles=percentiles))
        elif isinstance(value, Stats):
            self._find(key).merge_on_time_axis(value)
        else:
            self._find(key).push(value)

    def log_dict(self, d: dict[str, Any], *, key: Any = None, **settings: Any) -> None:
        prefix = () if key is None else as_path(key)
        for path, leaf in leaves(d):
            self.log_value(prefix + path, leaf, **settings)

    def merge_and_log_n_dicts(
        self,
        dicts: list[dict[str, Any]],
        *,
        key: str | tuple[str, ...] | None = None,
        reduce: str | None = "mean",
        window: float | None = None,
        ema_coeff: float | None = None,
        clear_on_reduce: bool = False,
    ) -> None:
        prefix = () if key is None else as_path(key)
        settings = _settings_kwargs(reduce, window, ema_coeff, clear_on_reduce)
        paths = list(dict.fromkeys(path for d in dicts for path, _ in leaves(d)))
        for path in paths:
            incoming = []
            for d in dicts:
                try:
                    leaf = self._find(path, tree=d)
                except KeyError:
                    continue
                # Copies: merging must not change the caller's results.
                incoming.append(copy.deepcopy(leaf) if isinstance(leaf, Stats) else leaf)
            incoming = [s if isinstance(s, Stats) else Stats(s, **settings) for s in incoming]
            base = Stats.similar_to(incoming[0], incoming[0].values)
            others = incoming[1:]
            lifetime_sum = (
                base.reduce_method == "sum" and base.infinite_window and not base.clear_on_reduce
            )
            if lifetime_sum:
                # Only what is new since each component's last reduce counts.
                for s in [base, *others]:
                    s.push(-s.peek(previous=True))
            if others:
                base.merge_in_parallel(*others)
            target = prefix + path
            if target in self:
                self._find(target).merge_on_time_axis(base)
            else:
                self._set(target, base)

    aggregate = merge_and_log_n_dicts
    peek_results = staticmethod(peek_results)

    # ---- reading --------------------------------------------------------------------

    def peek(self, key: str | tuple[str, ...], *, default: Any = None) -> Any:
        if key not in self and default is not None:
            return default
        return peek_results(self._find(key))

    def reduce(self, key: Any = None, *, return_stats_obj: bool = True) -> Any:
        def reduce_tree(node: Any) -> Any:
            if isinstance(node, dict):
                return {name: reduce_tree(sub) for name, sub in node.items()}
            return copy.deepcopy(node.reduce())

        results = reduce_tree(self.stats if key is None else self._find(key))
        return results if return_stats_obj else peek_results(results)

    # ---- housekeeping ---------------------------------------------------------------

    def set_value(self, key: str | tuple[str, ...], value: Any, **settings: Any) -> None:
        if key in self:
            self._find(key).values = [value]
        else:
            self.log_value(key, value, **settings)

    def delete(self, *key: str, key_error: bool = True) -> None:
        *parents, last = key
        try:
            node = self._find(tuple(parents)) if parents else self.stats
            del node[last]
        except KeyError:
            if key_error:
                raise

    def reset(self) -> None:
        self.stats = {}
