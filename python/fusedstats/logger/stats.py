"""Stats: the values of one logged metric and how they reduce.

Semantics follow RLlib's ``Stats`` (the generation with ``reduce(return_stats_obj=...)``,
RLlib <= 2.40), see ``spec/metrics_logger.md``; reductions run in the compiled core
(``fusedstats.logger.batch``), one call for any number of Stats.

Memory is bounded by construction: a windowed Stats holds at most ``window`` values
(a ``deque``); a window-less sum/min/max/EMA folds its oldest values into one running
value once it holds more than :data:`FOLD_AT` (peek/reduce/merge results unchanged,
except that a parallel merge of a window-less EMA with more than ``FOLD_AT`` values
pending sees the folded part as one value). Lists (``reduce=None``) and
infinite-window means keep every value until they are reduced, as the user asked.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

REDUCES = (None, "mean", "min", "max", "sum", "percentiles")
DEFAULT_EMA_COEFF = 0.01
DEFAULT_PERCENTILES = (0, 50, 75, 90, 95, 99, 100)
#: A window-less sum/min/max/EMA folds its values once it holds more than this many.
FOLD_AT = 4096

_SETTINGS: dict[tuple[Any, ...], tuple[Any, ...]] = {}
# Set once any Stats in the process holds a torch tensor: until then batch calls skip
# looking for tensors.
tensors_seen = [False]

# Held while a Stats folds or reduces its buffer. Appends never take it: list.append
# and deque.append are atomic, and folding/reducing only ever remove a prefix that
# they read, so an append that races with them lands after it and is kept.
_buffer_lock = threading.RLock()


# Op codes of csrc/include/fusedstats/series.h, plus PERCENTILES (reduced separately).
MEAN, EMA, MIN, MAX, SUM, NONE, PERCENTILES = 0, 1, 2, 3, 4, 5, 6


def op_code(reduce: str | None, ema_coeff: float | None) -> int:
    if reduce == "mean":
        return EMA if ema_coeff is not None else MEAN
    return {"min": MIN, "max": MAX, "sum": SUM, "percentiles": PERCENTILES}.get(reduce or "", NONE)


def settings_error(
    reduce: str | None,
    window: float | None,
    ema_coeff: float | None,
    clear_on_reduce: bool,
    percentiles: Any,
    with_throughput: bool,
) -> str | None:
    """The reason these settings are invalid, or None."""
    if reduce not in REDUCES:
        return f"reduce must be one of {REDUCES}, got {reduce!r}"
    if window is not None:
        if isinstance(window, bool) or not isinstance(window, (int, float)):
            return f"window must be a positive int or float('inf'), got {window!r}"
        if window != math.inf and (window < 1 or int(window) != window):
            return f"window must be a positive int or float('inf'), got {window!r}"
        if ema_coeff is not None:
            return "window and ema_coeff cannot both be set"
        if window == math.inf and not clear_on_reduce:
            return "window=float('inf') needs clear_on_reduce=True (else memory grows forever)"
    if ema_coeff is not None:
        if reduce != "mean":
            return f"ema_coeff needs reduce='mean', got reduce={reduce!r}"
        if isinstance(ema_coeff, bool) or not isinstance(ema_coeff, (int, float)):
            return f"ema_coeff must be a float in (0, 1], got {ema_coeff!r}"
        if not 0.0 < float(ema_coeff) <= 1.0:
            return f"ema_coeff must be in (0, 1], got {ema_coeff!r}"
    if reduce == "percentiles":
        if window is None:
            return (
                "reduce='percentiles' needs a window (or window=float('inf') with clear_on_reduce)"
            )
        if percentiles is not None and percentiles is not True:
            try:
                qs = [float(q) for q in percentiles]
            except (TypeError, ValueError):
                return f"percentiles must be True or numbers in [0, 100], got {percentiles!r}"
            if not qs or any(not 0.0 <= q <= 100.0 for q in qs):
                return f"percentiles must be numbers in [0, 100], got {percentiles!r}"
    elif percentiles not in (None, False):
        return "percentiles needs reduce='percentiles'"
    if with_throughput:
        if reduce != "sum":
            return "with_throughput needs reduce='sum'"
        if window is not None and not clear_on_reduce:
            return "with_throughput needs a window-less sum or clear_on_reduce=True"
    return None


class Stats:
    """One metric: its values, its reduction, window or EMA, and its reduce history.

    Args:
        init_value: a first value, a list of values, or None.
        reduce: "mean", "min", "max", "sum", "percentiles" or None (keep a list).
        window: reduce over the last ``window`` values; ``float("inf")`` (with
            ``clear_on_reduce``) keeps all values until reduced.
        ema_coeff: exponential moving average coefficient (``reduce="mean"`` only).
            "mean" with neither window nor ema_coeff is an EMA with 0.01.
        clear_on_reduce: empty the values at every ``reduce()``.
        percentiles: for ``reduce="percentiles"``: the list of percentiles, or True
            for 0, 50, 75, 90, 95, 99, 100.
        with_throughput: for sums: also track value per second between reduces
            (``peek(throughput=True)``).

    Example:
        >>> s = Stats(reduce="sum")
        >>> s.push(1); s.push(2); s.peek()
        3
        >>> Stats(1.0, ema_coeff=0.01).peek() == 1.0
        True
    """

    __slots__ = (
        "_append",
        "_cfg",
        "_clear_on_reduce",
        "_ema_coeff",
        "_fold",
        "_hist",
        "_on_exit",
        "_op",
        "_percentiles",
        "_reduce",
        "_simple",
        "_starts",
        "_tensors",
        "_throughput",
        "_throughput_base",
        "_throughput_since",
        "_values",
        "_window",
    )

    def __init__(
        self,
        init_value: Any = None,
        reduce: str | None = "mean",
        window: float | None = None,
        ema_coeff: float | None = None,
        clear_on_reduce: bool = False,
        percentiles: Any = None,
        with_throughput: bool = False,
    ) -> None:
        error = settings_error(
            reduce, window, ema_coeff, clear_on_reduce, percentiles, with_throughput
        )
        if error:
            raise ValueError(error)
        self._setup(reduce, window, ema_coeff, clear_on_reduce, percentiles, with_throughput)
        if init_value is not None:
            for v in init_value if isinstance(init_value, list) else [init_value]:
                self.push(v)

    def _setup(
        self,
        reduce: str | None,
        window: float | None,
        ema_coeff: float | None,
        clear_on_reduce: bool,
        percentiles: Any,
        with_throughput: bool,
    ) -> None:
        if reduce == "mean" and window is None and ema_coeff is None:
            ema_coeff = DEFAULT_EMA_COEFF
        self._reduce = reduce
        self._window: float | None = (
            None if window is None else (math.inf if window == math.inf else int(window))
        )
        self._ema_coeff = None if ema_coeff is None else float(ema_coeff)
        self._clear_on_reduce = bool(clear_on_reduce)
        if reduce == "percentiles":
            qs = DEFAULT_PERCENTILES if percentiles in (None, True) else percentiles
            self._percentiles: tuple[float, ...] | None = tuple(qs)
        else:
            self._percentiles = None
        self._throughput = bool(with_throughput)
        self._throughput_base: float = 0.0
        self._throughput_since = time.perf_counter()
        values: deque[Any] | list[Any]
        if self._window is not None and self._window != math.inf:
            values = deque(maxlen=int(self._window))
        else:
            values = []
        self._values = values
        self._append = values.append
        # Window-less sum/min/max/EMA fold past FOLD_AT values (0: never fold).
        self._fold = (
            FOLD_AT if self._window is None and reduce in ("mean", "sum", "min", "max") else 0
        )
        self._hist: list[Any] = [0, 0]  # [last reduce result, the one before]
        self._tensors = False  # some value is a torch tensor (converted at reduce)
        self._starts: dict[int, float] | None = None  # `with stats:` start per thread
        self._on_exit: Any = None  # log_time's throughput hook: called with the seconds
        self._op = op_code(reduce, self._ema_coeff)
        # A windowed Stats without clear/throughput: a reduce only records the result.
        self._simple = (
            self._window is not None
            and self._window != math.inf
            and not self._clear_on_reduce
            and not self._throughput
        )
        cfg = (
            self._reduce,
            self._window,
            self._ema_coeff,
            self._clear_on_reduce,
            self._percentiles,
            self._throughput,
        )
        # Interned: Stats with equal settings share one tuple, so a merge checks a
        # group with an identity count instead of tuple comparisons.
        self._cfg = _SETTINGS.setdefault(cfg, cfg)

    # ---- settings ---------------------------------------------------------------

    @property
    def reduce_method(self) -> str | None:
        return self._reduce

    @property
    def window(self) -> float | None:
        return self._window

    @property
    def ema_coeff(self) -> float | None:
        return self._ema_coeff

    @property
    def clear_on_reduce(self) -> bool:
        return self._clear_on_reduce

    @property
    def percentiles(self) -> tuple[float, ...] | None:
        return self._percentiles

    @property
    def with_throughput(self) -> bool:
        return self._throughput

    def settings(self) -> tuple[Any, ...]:
        """The settings two Stats must share to be merged."""
        return self._cfg

    @property
    def values(self) -> list[Any]:
        """The current values (a copy). Between reduces a window-less sum/min/max/EMA
        may hold fewer values than RLlib's (folded); results are the same."""
        return list(self._values)

    def __len__(self) -> int:
        return len(self._values)

    # ---- pushing ----------------------------------------------------------------

    def push(self, value: Any) -> None:
        """Adds a value. Torch tensors are detached and kept on their device."""
        cls = value.__class__
        if cls is not float and cls is not int:
            value = self._accept(value)
        self._append(value)
        if self._fold and len(self._values) > self._fold:
            self._fold_buffer()

    def _accept(self, value: Any) -> Any:
        """Checks and converts a value that is not a plain float/int."""
        from .values import normalize

        value, is_tensor = normalize(value, self._reduce is None)
        if is_tensor:
            self._tensors = True
            tensors_seen[0] = True
        return value

    def _fold_buffer(self) -> None:
        from . import batch
        from .values import fold_on_device

        with _buffer_lock:
            buf = self._values
            n = len(buf)
            if n <= 1:
                return
            assert isinstance(buf, list)
            prefix = buf[:n]
            # Tensors fold on their device: a fold happens inside log_value, which
            # must never wait for the GPU.
            folded = fold_on_device(self._op, self._ema_coeff, prefix) if self._tensors else None
            if folded is None:
                folded = batch.reduce_values([self], [prefix])[0]
            buf[:n] = [folded]

    # ---- reading ----------------------------------------------------------------

    def peek(self, *, previous: bool = False, throughput: bool = False) -> Any:
        """The reduced value, without changing anything.

        Args:
            previous: the result of the reduce before the last one (0 before any).
            throughput: for ``with_throughput`` sums: value per second since the
                last reduce.
        """
        if previous:
            return self._hist[1]
        from . import batch

        value = batch.reduce_values([self], [list(self._values)])[0]
        if throughput:
            return self._throughput_of(value)
        return value

    def _throughput_of(self, value: Any) -> float:
        if not self._throughput:
            raise ValueError("this Stats was not created with with_throughput=True")
        elapsed = time.perf_counter() - self._throughput_since
        if elapsed <= 0.0:
            return math.nan
        base = 0.0 if self._clear_on_reduce else self._throughput_base
        return (float(value) - base) / elapsed

    def reduce(self) -> Stats:
        """Commits the reduction; returns the Stats holding the result (see the spec).

        That is this Stats, except with ``clear_on_reduce``: then this one is emptied
        and a new one holds the reduced values.
        """
        from . import batch

        return batch.reduce_many([self])[0]

    # ---- merging ----------------------------------------------------------------

    def _check_mergeable(self, other: Stats, key: Any = None) -> None:
        if not isinstance(other, Stats):
            raise TypeError(f"cannot merge a {type(other).__name__} into Stats")
        if other._cfg != self._cfg:
            where = f" for key {key!r}" if key is not None else ""
            raise ValueError(
                f"cannot merge Stats with different settings{where}: "
                f"{self._describe()} vs {other._describe()}"
            )

    def _describe(self) -> str:
        return (
            f"reduce={self._reduce!r}, window={self._window!r}, ema_coeff={self._ema_coeff!r}, "
            f"clear_on_reduce={self._clear_on_reduce}"
        )

    def merge_on_time_axis(self, other: Stats) -> None:
        """Appends ``other``'s values after this one's (then keeps the last window)."""
        self._check_mergeable(other)
        self._extend(other._values, other._tensors)

    def _extend(self, values: Iterable[Any], tensors: bool) -> None:
        self._tensors = self._tensors or tensors
        self._values.extend(values)
        if self._fold and len(self._values) > self._fold:
            self._fold_buffer()

    def merge_in_parallel(self, *others: Stats) -> None:
        """Merges Stats of parallel components into this one (spec: index by index
        from the ends, stopping at the window)."""
        for o in others:
            self._check_mergeable(o)
        from . import batch

        batch.merge_parallel_many([[self, *others]])

    @classmethod
    def similar_to(cls, other: Stats, init_value: Any = None) -> Stats:
        """A new Stats with ``other``'s settings and reduce history, and new values."""
        new = cls._blank_like(other)
        new._hist = list(other._hist)
        new._throughput_base = other._throughput_base
        new._throughput_since = other._throughput_since
        if init_value is not None:
            for v in init_value if isinstance(init_value, list) else [init_value]:
                new.push(v)
        return new

    @classmethod
    def _blank_like(cls, other: Stats) -> Stats:
        """An empty Stats with ``other``'s settings (no history). A plain copy of the
        fields: reduce() makes one per key, so this is on the batch hot path."""
        new = cls.__new__(cls)
        new._reduce = other._reduce
        new._window = other._window
        new._ema_coeff = other._ema_coeff
        new._clear_on_reduce = other._clear_on_reduce
        new._percentiles = other._percentiles
        new._throughput = other._throughput
        new._cfg = other._cfg
        new._op = other._op
        new._simple = other._simple
        new._fold = other._fold
        values: deque[Any] | list[Any] = (
            deque(maxlen=other._values.maxlen) if type(other._values) is deque else []
        )
        new._values = values
        new._append = values.append
        new._hist = [0, 0]
        new._tensors = False
        new._throughput_base = other._throughput_base
        new._throughput_since = other._throughput_since
        new._starts = None
        new._on_exit = None
        return new

    # ---- state ------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Settings, values and history as plain data (JSON/pickle/torch.load safe)."""
        from .values import plain, plain_list

        return {
            "reduce": self._reduce,
            "window": self._window,
            "ema_coeff": self._ema_coeff,
            "clear_on_reduce": self._clear_on_reduce,
            "percentiles": None if self._percentiles is None else list(self._percentiles),
            "with_throughput": self._throughput,
            "values": plain_list(list(self._values)),
            "hist": [plain(h) for h in self._hist],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Stats:
        """The Stats saved by :meth:`get_state`."""
        from .values import unplain

        new = cls(
            reduce=state["reduce"],
            window=state["window"],
            ema_coeff=None if state["window"] is not None else state["ema_coeff"],
            clear_on_reduce=state["clear_on_reduce"],
            percentiles=state.get("percentiles"),
            with_throughput=state.get("with_throughput", False),
        )
        new._values.extend(state["values"])
        new._hist = [unplain(h) for h in state["hist"]]
        return new

    def __getstate__(self) -> dict[str, Any]:
        return self.get_state()

    def __setstate__(self, state: dict[str, Any]) -> None:
        restored = Stats.from_state(state)
        for name in Stats.__slots__:
            object.__setattr__(self, name, getattr(restored, name))
        self._append = self._values.append

    # ---- timing -----------------------------------------------------------------

    def __enter__(self) -> Stats:
        if self._starts is None:
            self._starts = {}
        self._starts[threading.get_ident()] = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._starts is not None
        seconds = time.perf_counter() - self._starts.pop(threading.get_ident())
        self.push(seconds)
        if self._on_exit is not None:
            self._on_exit(seconds)

    # ---- numbers: everything acts on peek() ---------------------------------------

    def __float__(self) -> float:
        return float(self.peek())

    def __int__(self) -> int:
        return int(self.peek())

    def __eq__(self, other: object) -> bool:
        return bool(self.peek() == _peeked(other))

    def __ne__(self, other: object) -> bool:
        return bool(self.peek() != _peeked(other))

    def __lt__(self, other: object) -> bool:
        return bool(self.peek() < _peeked(other))

    def __le__(self, other: object) -> bool:
        return bool(self.peek() <= _peeked(other))

    def __gt__(self, other: object) -> bool:
        return bool(self.peek() > _peeked(other))

    def __ge__(self, other: object) -> bool:
        return bool(self.peek() >= _peeked(other))

    def __add__(self, other: object) -> Any:
        return self.peek() + _peeked(other)

    def __radd__(self, other: object) -> Any:
        return _peeked(other) + self.peek()

    def __sub__(self, other: object) -> Any:
        return self.peek() - _peeked(other)

    def __rsub__(self, other: object) -> Any:
        return _peeked(other) - self.peek()

    def __mul__(self, other: object) -> Any:
        return self.peek() * _peeked(other)

    def __rmul__(self, other: object) -> Any:
        return _peeked(other) * self.peek()

    def __format__(self, spec: str) -> str:
        return format(self.peek(), spec)

    __hash__ = None  # type: ignore[assignment]  # compares by value, so unhashable

    def __repr__(self) -> str:
        return f"Stats({self.peek()!r}; len={len(self._values)}; {self._describe()})"


def _peeked(x: object) -> Any:
    return x.peek() if isinstance(x, Stats) else x
