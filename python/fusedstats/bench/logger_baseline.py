"""A plain-Python metrics logger: the baseline ``fusedstats bench`` and ``bench_logger.py`` race.

This is the logger a user would write by hand: a dict from key to a list of values,
reduced in a Python loop. It follows the reductions of ``docs/logger.md``: windowed
mean/min/max/sum, EMA (first value as is, then ``m = c*v + (1-c)*m``), NaN-ignoring
reductions, the index-interleaving parallel merge and the lifetime-sum compensation
of ``merge_and_log_n_dicts``. It is deliberately not optimized: the lists grow until
``reduce()`` trims them, as in RLlib.

Keys are flat (a ``str`` or a tuple used as one dict key); there is no nesting, no
tensor mode, no timing, no thread safety.

It lives in the package (not in the repository's ``bench/``) so that the installed
``fusedstats bench`` can race it; ``bench/bench_logger.py`` imports it from here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

_REDUCE_METHODS = (None, "mean", "min", "max", "sum")


def _not_nan(v: Any) -> bool:
    return not (isinstance(v, float) and math.isnan(v))


class Series:
    """The values of one key and how they are reduced."""

    __slots__ = ("clear_on_reduce", "ema_coeff", "history", "reduce_method", "values", "window")

    def __init__(
        self,
        values: Iterable[Any] = (),
        *,
        reduce: str | None = "mean",
        window: float | None = None,
        ema_coeff: float | None = None,
        clear_on_reduce: bool = False,
    ) -> None:
        if reduce not in _REDUCE_METHODS:
            raise ValueError(f"reduce must be one of {_REDUCE_METHODS}, got {reduce!r}")
        if window is not None and ema_coeff is not None:
            raise ValueError("only one of window and ema_coeff may be given")
        if ema_coeff is not None and reduce != "mean":
            raise ValueError("ema_coeff needs reduce='mean'")
        if window == math.inf and not clear_on_reduce:
            raise ValueError("an infinite window needs clear_on_reduce=True")
        if reduce == "mean" and window is None and ema_coeff is None:
            ema_coeff = 0.01
        self.values = list(values)
        self.reduce_method = reduce
        self.window = window
        self.ema_coeff = ema_coeff
        self.clear_on_reduce = clear_on_reduce
        self.history: tuple[Any, Any] = (0, 0)  # (last reduced, the one before)

    def similar(self, values: Iterable[Any] = ()) -> Series:
        """A new Series with the same settings and history."""
        out = Series(
            values,
            reduce=self.reduce_method,
            window=self.window,
            ema_coeff=self.ema_coeff,
            clear_on_reduce=self.clear_on_reduce,
        )
        out.history = self.history
        return out

    def same_settings(self, other: Series) -> bool:
        return (
            self.reduce_method == other.reduce_method
            and self.window == other.window
            and self.ema_coeff == other.ema_coeff
        )

    def _reduced(self, values: list[Any], window: float | None) -> tuple[Any, list[Any]]:
        """(reduced value, values to keep), without changing anything."""
        infinite = window is None or window == math.inf
        if not infinite:
            values = values[-int(window) :]  # type: ignore[arg-type]
        if self.reduce_method is None:
            return values, values
        if not values:
            return (0 if self.reduce_method == "sum" else math.nan), []
        if self.ema_coeff is not None:
            c = self.ema_coeff
            m = values[0]
            for v in values[1:]:
                m = c * v + (1.0 - c) * m
            return m, ([m] if infinite else values)
        present = [v for v in values if _not_nan(v)]
        all_ints = all(isinstance(v, int) for v in values)
        if not present:  # all NaN: NaN, but a sum of nothing is 0.0 (as numpy's nansum)
            reduced: Any = 0.0 if self.reduce_method == "sum" else math.nan
        elif self.reduce_method == "mean":
            reduced = float(sum(present) / len(present))
        elif self.reduce_method == "sum":
            reduced = sum(present) if all_ints else float(sum(present))
        elif self.reduce_method == "min":
            reduced = min(present) if all_ints else float(min(present))
        else:
            reduced = max(present) if all_ints else float(max(present))
        if infinite and self.reduce_method != "mean":
            return reduced, [reduced]
        return reduced, values

    def peek(self, *, previous: bool = False) -> Any:
        if previous:
            return self.history[1]
        return self._reduced(self.values, self.window)[0]

    def reduce(self) -> Series:
        """Commits the reduction; returns the reduced Series (a copy if it clears)."""
        reduced, self.values = self._reduced(self.values, self.window)
        self.history = (reduced, self.history[0])
        if self.clear_on_reduce:
            out = self.similar(self.values)
            self.values = []
            return out
        return self

    def merge_on_time_axis(self, other: Series) -> None:
        self.values.extend(other.values)
        if self.window is not None and self.window != math.inf:
            self.values = self.values[-int(self.window) :]

    def merge_in_parallel(self, *others: Series) -> None:
        window = self.window or math.inf
        everyone = [self, *others]
        new_values: list[Any] = []
        for i in range(1, max(len(s.values) for s in everyone) + 1):
            at_i = [s.values[-i] for s in everyone if len(s.values) >= i]
            if self.ema_coeff is not None:
                present = [v for v in at_i if _not_nan(v)]
                m = sum(present) / len(present) if present else math.nan
                new_values.extend([m] * len(at_i))
            elif self.reduce_method in (None, "sum"):
                new_values.extend(at_i)
            else:
                new_values.extend([self._reduced(at_i, math.inf)[0]] * len(at_i))
            if len(new_values) >= window:
                break
        self.values = new_values[::-1]


class PlainLogger:
    """``log_value``/``reduce``/``merge_and_log_n_dicts``/``peek`` over a dict of lists."""

    def __init__(self) -> None:
        self.stats: dict[Any, Series] = {}

    def __contains__(self, key: Any) -> bool:
        return key in self.stats

    def log_value(
        self,
        key: Any,
        value: Any,
        *,
        reduce: str | None = "mean",
        window: float | None = None,
        ema_coeff: float | None = None,
        clear_on_reduce: bool = False,
    ) -> None:
        if reduce is None and (window is None or window == math.inf):
            clear_on_reduce = True
        series = self.stats.get(key)
        if series is None:
            self.stats[key] = Series(
                [value],
                reduce=reduce,
                window=window,
                ema_coeff=ema_coeff,
                clear_on_reduce=clear_on_reduce,
            )
        else:
            series.values.append(value)

    def peek(self, key: Any, *, default: Any = None) -> Any:
        series = self.stats.get(key)
        if series is None:
            if default is not None:
                return default
            raise KeyError(key)
        return series.peek()

    def reduce(self, *, return_stats_obj: bool = True) -> dict[Any, Any]:
        """Reduces every key; returns {key: reduced Series} (or plain values)."""
        out: dict[Any, Any] = {}
        for key, series in list(self.stats.items()):
            reduced = series.reduce()
            if series.clear_on_reduce:
                self.stats[key] = series.similar()
            out[key] = reduced
        if return_stats_obj:
            return out
        return {key: s.peek() for key, s in out.items()}

    def merge_and_log_n_dicts(
        self,
        dicts: list[Mapping[Any, Any]],
        *,
        reduce: str | None = "mean",
        window: float | None = None,
        ema_coeff: float | None = None,
        clear_on_reduce: bool = False,
    ) -> None:
        """Merges reduced results of parallel components (``reduce()`` outputs)."""
        keys: dict[Any, None] = {}
        for d in dicts:
            keys.update(dict.fromkeys(d))
        for key in keys:
            found = []
            for d in dicts:
                if key not in d:
                    continue
                item = d[key]
                if not isinstance(item, Series):
                    item = Series(
                        [item],
                        reduce=reduce,
                        window=window,
                        ema_coeff=ema_coeff,
                        clear_on_reduce=clear_on_reduce,
                    )
                found.append(item)
            base = found[0].similar(found[0].values)
            more = found[1:]
            for other in more:
                if not base.same_settings(other):
                    raise ValueError(f"different settings under key {key!r}")
            lifetime_sum = (
                base.reduce_method == "sum" and base.window is None and not base.clear_on_reduce
            )
            if lifetime_sum:
                for s in [base, *more]:
                    s.values.append(-s.peek(previous=True))
            if more:
                base.merge_in_parallel(*more)
            existing = self.stats.get(key)
            if existing is None:
                self.stats[key] = base
            else:
                existing.merge_on_time_axis(base)
