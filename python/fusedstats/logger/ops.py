"""What a Stats' settings mean, written once: the reduce kinds, their native op codes,
validation, and :class:`Settings`, the one immutable type every part of the logger
(Stats, the batch kernels, the cross-rank wire format) passes around.

Nothing here imports the rest of the logger, so every module of it can import this one.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Any

REDUCES = (None, "mean", "min", "max", "sum", "percentiles")
DEFAULT_EMA_COEFF = 0.01
DEFAULT_PERCENTILES = (0, 50, 75, 90, 95, 99, 100)
#: A window-less sum/min/max/EMA folds its values once it holds more than this many.
FOLD_AT = 4096
#: The largest window (a deque's maxlen must fit a C ssize_t).
MAX_WINDOW = 2**62

# Op codes of csrc/include/fusedstats/series.h, plus PERCENTILES (reduced separately,
# merged as lists).
MEAN, EMA, MIN, MAX, SUM, NONE, PERCENTILES = 0, 1, 2, 3, 4, 5, 6


def _window_error(window: Any, ema_coeff: Any, clear_on_reduce: Any) -> str | None:
    if window is None:
        return None
    if isinstance(window, bool) or not isinstance(window, (int, float)):
        return f"window must be a positive int or float('inf'), got {window!r:.80}"
    if window != math.inf and not (1 <= window <= MAX_WINDOW and window == int(window)):
        return f"window must be a positive int (at most 2**62) or float('inf'), got {window!r:.80}"
    if ema_coeff is not None:
        return "window and ema_coeff cannot both be set"
    if window == math.inf and not clear_on_reduce:
        return "window=float('inf') needs clear_on_reduce=True (else memory grows forever)"
    return None


def _ema_error(reduce: Any, ema_coeff: Any) -> str | None:
    if ema_coeff is None:
        return None
    if reduce != "mean":
        return f"ema_coeff needs reduce='mean', got reduce={reduce!r}"
    if isinstance(ema_coeff, bool) or not isinstance(ema_coeff, (int, float)):
        return f"ema_coeff must be a float in (0, 1], got {ema_coeff!r:.80}"
    if not 0.0 < ema_coeff <= 1.0:  # compared as is: a huge int has no float
        return f"ema_coeff must be in (0, 1], got {ema_coeff!r:.80}"
    return None


def _percentiles_error(reduce: Any, window: Any, percentiles: Any) -> str | None:
    if reduce != "percentiles":
        return None if percentiles in (None, False) else "percentiles needs reduce='percentiles'"
    if window is None:
        return "reduce='percentiles' needs a window (or window=float('inf') with clear_on_reduce)"
    if percentiles is None or percentiles is True:
        return None
    try:
        qs = [float(q) for q in percentiles]
    except (TypeError, ValueError, OverflowError):
        return f"percentiles must be True or numbers in [0, 100], got {percentiles!r:.80}"
    if not qs or any(not 0.0 <= q <= 100.0 for q in qs):
        return f"percentiles must be numbers in [0, 100], got {percentiles!r:.80}"
    return None


def _throughput_error(
    reduce: Any, window: Any, clear_on_reduce: Any, with_throughput: Any
) -> str | None:
    if not with_throughput:
        return None
    if reduce != "sum":
        return "with_throughput needs reduce='sum'"
    if window is not None and not clear_on_reduce:
        return "with_throughput needs a window-less sum or clear_on_reduce=True"
    return None


def settings_error(
    reduce: Any,
    window: Any,
    ema_coeff: Any,
    clear_on_reduce: Any,
    percentiles: Any,
    with_throughput: Any,
) -> str | None:
    """The reason these settings are invalid, or None (the first problem, in the
    order: reduce, window, EMA coefficient, percentiles, throughput)."""
    if reduce not in REDUCES:
        return f"reduce must be one of {REDUCES}, got {reduce!r}"
    return (
        _window_error(window, ema_coeff, clear_on_reduce)
        or _ema_error(reduce, ema_coeff)
        or _percentiles_error(reduce, window, percentiles)
        or _throughput_error(reduce, window, clear_on_reduce, with_throughput)
    )


@dataclass(frozen=True, eq=False)
class Settings:
    """A Stats' settings, validated and normalized (``reduce="mean"`` with neither
    window nor coefficient is an EMA with 0.01), with what they decide for the native
    kernels worked out once.

    Instances are interned: :meth:`of` returns the same object for the same settings,
    so ``a is b`` is how two Stats are checked to be mergeable (equality is identity).
    Build them with :meth:`of` only.

    Example:
        >>> s = Settings.of("mean")
        >>> s.ema_coeff, s.op == EMA, s is Settings.of(reduce="mean", ema_coeff=0.01)
        (0.01, True, True)
    """

    reduce: str | None
    window: int | float | None  # a positive int, math.inf, or None
    ema_coeff: float | None
    clear_on_reduce: bool
    percentiles: tuple[float, ...] | None
    with_throughput: bool
    #: Native op code (``series.h``; PERCENTILES is reduced on its own).
    op: int = field(init=False)
    #: The op a parallel merge uses: percentiles merge as lists.
    merge_op: int = field(init=False)
    #: The finite window as the native kernels take it; 0: none or infinite.
    window_len: int = field(init=False)
    #: Fold the values once there are more than this many (0: never).
    fold_at: int = field(init=False)
    #: A finite window without clear_on_reduce or throughput: a reduce only records
    #: its result (the values stay as they are).
    keeps_window: bool = field(init=False)
    #: A sum with no window and no clear_on_reduce: a merge adds only what is new since
    #: each input's last reduce.
    lifetime_sum: bool = field(init=False)
    #: Python ints stay python ints in its results (sum, min, max; lists keep anything).
    keeps_ints: bool = field(init=False)
    #: Its values pass through a merge untouched (lists, percentiles).
    passes_values: bool = field(init=False)
    #: ``not keeps_window``: a reduce may change the values (fold, clear, trim).
    reduce_changes_values: bool = field(init=False)
    #: The EMA coefficient as the native reduce takes it (0.0: no EMA).
    ema_weight: float = field(init=False)

    def __post_init__(self) -> None:
        reduce, window = self.reduce, self.window
        if reduce == "mean":
            op = EMA if self.ema_coeff is not None else MEAN
        else:
            op = {"min": MIN, "max": MAX, "sum": SUM, "percentiles": PERCENTILES}.get(
                reduce or "", NONE
            )
        finite = window is not None and window != math.inf
        derived = {
            "op": op,
            "merge_op": NONE if op == PERCENTILES else op,
            "window_len": int(window) if finite else 0,  # type: ignore[arg-type]
            "fold_at": FOLD_AT if window is None and op in (MEAN, EMA, MIN, MAX, SUM) else 0,
            "keeps_window": finite and not self.clear_on_reduce and not self.with_throughput,
            "lifetime_sum": op == SUM and window is None and not self.clear_on_reduce,
            "keeps_ints": op in (MIN, MAX, SUM, NONE, PERCENTILES),
            "passes_values": op in (NONE, PERCENTILES),
            "reduce_changes_values": not (
                finite and not self.clear_on_reduce and not self.with_throughput
            ),
            "ema_weight": self.ema_coeff or 0.0,
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @staticmethod
    def of(
        reduce: str | None = "mean",
        window: float | None = None,
        ema_coeff: float | None = None,
        clear_on_reduce: bool = False,
        percentiles: Any = None,
        with_throughput: bool = False,
    ) -> Settings:
        """The (interned) settings; ValueError says what is wrong with invalid ones."""
        args = (reduce, window, ema_coeff, clear_on_reduce, percentiles, with_throughput)
        # Arguments seen before skip validation; their types are part of the key, so
        # True is never taken for 1 (nor 3.0 for 3).
        key = (*args, type(window), type(ema_coeff), type(clear_on_reduce))
        try:
            found = _INTERNED.get(key)
        except TypeError:  # an unhashable argument (a list of percentiles)
            found = None
        if found is not None:
            return found
        error = settings_error(*args)
        if error:
            raise ValueError(error)
        if reduce == "mean" and window is None and ema_coeff is None:
            ema_coeff = DEFAULT_EMA_COEFF
        if reduce == "percentiles":
            qs = DEFAULT_PERCENTILES if percentiles in (None, True) else percentiles
            pct: tuple[float, ...] | None = tuple(qs)
        else:
            pct = None
        normal = (
            reduce,
            None if window is None else (math.inf if window == math.inf else int(window)),
            None if ema_coeff is None else float(ema_coeff),
            bool(clear_on_reduce),
            pct,
            bool(with_throughput),
        )
        made = _NORMAL.get(normal)
        if made is None:
            made = _NORMAL[normal] = Settings(*normal)
        with contextlib.suppress(TypeError):  # unhashable arguments are not remembered
            _INTERNED[key] = made
        return made

    def describe(self) -> str:
        """The settings as a user wrote them, for error messages."""
        text = (
            f"reduce={self.reduce!r}, window={self.window!r}, ema_coeff={self.ema_coeff!r}, "
            f"clear_on_reduce={self.clear_on_reduce}"
        )
        if self.percentiles is not None:
            text += f", percentiles={list(self.percentiles)}"
        return text + (", with_throughput=True" if self.with_throughput else "")

    def to_json(self) -> list[Any]:
        """Plain JSON data (``window=inf`` as the string "inf"); :meth:`from_json` inverts."""
        window = "inf" if self.window == math.inf else self.window
        pct = None if self.percentiles is None else list(self.percentiles)
        return [
            self.reduce,
            window,
            self.ema_coeff,
            self.clear_on_reduce,
            pct,
            self.with_throughput,
        ]

    @staticmethod
    def from_json(raw: list[Any]) -> Settings:
        reduce, window, ema, clear, pct, throughput = raw
        return Settings.of(
            reduce,
            math.inf if window == "inf" else window,
            ema,
            clear,
            None if pct is None else tuple(pct),
            throughput,
        )

    def __repr__(self) -> str:
        return f"Settings({self.describe()})"

    def __reduce__(self) -> tuple[Any, ...]:  # pickles as a call to of(): stays interned
        return (Settings.from_json, (self.to_json(),))


_NORMAL: dict[tuple[Any, ...], Settings] = {}  # normalized fields -> the one instance
_INTERNED: dict[tuple[Any, ...], Settings] = {}  # arguments already seen -> the instance
