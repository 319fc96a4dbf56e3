"""Stats: the values of one logged metric and how they reduce.

Semantics follow RLlib's ``Stats`` (the generation with ``reduce(return_stats_obj=...)``,
RLlib <= 2.40), as ``docs/logger.md`` describes; reductions run in the compiled core
(``fusedstats.logger.batch``), one call for any number of Stats.

Memory is bounded by construction: a windowed Stats holds at most ``window`` values
(a ``deque``); a window-less sum/min/max/EMA folds its oldest values into one running
value once it holds more than :data:`FOLD_AT` (peek/reduce/merge results unchanged,
except that a parallel merge of a window-less EMA with more than ``FOLD_AT`` values
pending sees the folded part as one value). Lists (``reduce=None``) and
infinite-window means keep every value until they are reduced, as the user asked.

The rest of the package uses Stats only through this module's interface: the members
``settings()``, ``history``, ``holds_tensors`` and :meth:`Stats.assemble`; the batch
functions below the class (:func:`peek_all`, :func:`reduce_all`, :func:`merge_groups`,
:func:`merge_columns` with :func:`common_settings`, :func:`assemble_many`, and the
accessors :func:`snapshots`, :func:`settings_of`, :func:`histories`,
:func:`tensor_holders`, :func:`flatten_values`, :func:`set_values`,
:func:`set_exit_hook`, :func:`throughputs`, :func:`check_mergeable`); and the five
members of ``MetricsLogger.log_value``'s fast path named in :class:`Stats`' docstring.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate, chain, compress
from operator import attrgetter
from typing import Any

from .. import _native
from . import batch
from .ops import DEFAULT_EMA_COEFF, DEFAULT_PERCENTILES, FOLD_AT, NONE, PERCENTILES, Settings
from .values import (
    FLOAT_INT_MAX,
    fold_on_device,
    is_tensor,
    normalize,
    plain,
    plain_list,
    unplain,
)

__all__ = ["DEFAULT_EMA_COEFF", "DEFAULT_PERCENTILES", "FOLD_AT", "Stats"]

# Set once any Stats in the process holds a torch tensor: until then batch calls skip
# looking for tensors.
_tensors_seen = [False]

# Held while a Stats folds or reduces its buffer. Appends never take it: list.append
# and deque.append are atomic, and folding/reducing only ever remove a prefix that
# they read, so an append that races with them lands after it and is kept.
_buffer_lock = threading.RLock()

_NO_HISTORY = (0, 0)  # RLlib: the previous results are 0 before any reduce


class _Extras:
    """What few Stats need: timing (``with stats:``, log_time's hook) and throughput."""

    __slots__ = ("on_exit", "starts", "throughput_base", "throughput_since")

    def __init__(self) -> None:
        self.starts: dict[int, float] = {}  # `with stats:` start time per thread
        self.on_exit: Any = None  # log_time's throughput hook: called with the seconds
        self.throughput_base = 0.0  # the sum at the last reduce
        self.throughput_since = time.perf_counter()


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

    ``MetricsLogger.log_value``'s fast path (a dict lookup and an append) uses five
    members directly: ``_append`` (the value buffer's append), ``_values`` (the buffer),
    ``_fold`` (fold past this many values; 0: never), ``_fold_buffer()`` and
    ``_push_tensor()``.

    Example:
        >>> s = Stats(reduce="sum")
        >>> s.push(1); s.push(2); s.peek()
        3
        >>> Stats(1.0, ema_coeff=0.01).peek() == 1.0
        True
    """

    __slots__ = ("_append", "_extras", "_fold", "_hist", "_settings", "_tensors", "_values")

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
        self._init(
            Settings.of(reduce, window, ema_coeff, clear_on_reduce, percentiles, with_throughput)
        )
        if init_value is not None:
            for v in init_value if isinstance(init_value, list) else [init_value]:
                self.push(v)

    def _init(self, settings: Settings) -> None:
        self._settings = settings
        values: deque[Any] | list[Any] = (
            deque(maxlen=settings.window_len) if settings.window_len else []
        )
        self._values = values
        self._append = values.append
        self._fold = settings.fold_at
        self._hist: tuple[Any, Any] = _NO_HISTORY
        self._tensors = False  # some value is a torch tensor (converted at reduce)
        self._extras: _Extras | None = _Extras() if settings.with_throughput else None

    # ---- settings ---------------------------------------------------------------

    @property
    def reduce_method(self) -> str | None:
        return self._settings.reduce

    @property
    def window(self) -> float | None:
        return self._settings.window

    @property
    def ema_coeff(self) -> float | None:
        return self._settings.ema_coeff

    @property
    def clear_on_reduce(self) -> bool:
        return self._settings.clear_on_reduce

    @property
    def percentiles(self) -> tuple[float, ...] | None:
        return self._settings.percentiles

    @property
    def with_throughput(self) -> bool:
        return self._settings.with_throughput

    def settings(self) -> Settings:
        """The settings two Stats must share to be merged (interned: compare with ``is``)."""
        return self._settings

    @property
    def values(self) -> list[Any]:
        """The current values (a copy). Between reduces a window-less sum/min/max/EMA
        may hold fewer values than RLlib's (folded); results are the same."""
        return list(self._values)

    def __len__(self) -> int:
        return len(self._values)

    # ---- pushing ----------------------------------------------------------------

    def push(self, value: Any) -> None:
        """Adds a value. Torch tensors are detached and kept on their device.

        Raises:
            TypeError: a value this Stats cannot reduce (not a number).
            ValueError: an int no float can hold, for a Stats that reduces.
        """
        cls = value.__class__
        if cls is not float and (cls is not int or not -FLOAT_INT_MAX <= value <= FLOAT_INT_MAX):
            value = self._accept(value)
        self._append(value)
        if self._fold and len(self._values) > self._fold:
            self._fold_buffer()

    def _push_tensor(self, value: Any) -> None:
        """``push`` of a ``torch.Tensor``, fast for the common case: a one-element CPU
        tensor into a Stats that reduces is read now (torch's checked ``item()``) and
        stored as a float; anything else goes through :meth:`push`."""
        if value.is_cpu and self._settings.op != NONE:
            try:
                x = value.item()
            except Exception:
                x = None  # push says why (several elements, no data)
            if type(x) is float or type(x) is int or type(x) is bool:
                self._append(float(x))
                if self._fold and len(self._values) > self._fold:
                    self._fold_buffer()
                return
        self.push(value)

    def _accept(self, value: Any) -> Any:
        """Checks and converts a value that is not a plain float/int."""
        value, is_tensor = normalize(value, self._settings.reduce is None)
        if is_tensor:
            self._tensors = True
            _tensors_seen[0] = True
        return value

    def _fold_buffer(self) -> None:
        with _buffer_lock:
            buf = self._values
            n = len(buf)
            if n <= 1:
                return
            assert isinstance(buf, list)
            prefix = buf[:n]
            st = self._settings
            # Tensors fold on their device: a fold happens inside log_value, which
            # must never wait for the GPU.
            folded = fold_on_device(st.op, st.ema_coeff, prefix) if self._tensors else None
            if folded is None:
                host = batch.host_series([prefix], [0] if self._tensors else [])
                folded = batch.reduce_series([st], host)[0]
            buf[:n] = [folded]

    def _extend(self, values: Iterable[Any], tensors: bool) -> None:
        self._tensors = self._tensors or tensors
        self._values.extend(values)
        if self._fold and len(self._values) > self._fold:
            self._fold_buffer()

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
        value = peek_all([self])[0]
        if throughput:
            return self._throughput_of(value)
        return value

    def _throughput_of(self, value: Any) -> float:
        extras = self._extras
        if not self._settings.with_throughput or extras is None:
            raise ValueError("this Stats was not created with with_throughput=True")
        elapsed = time.perf_counter() - extras.throughput_since
        if elapsed <= 0.0:
            return math.nan
        base = 0.0 if self._settings.clear_on_reduce else extras.throughput_base
        return (float(value) - base) / elapsed

    def reduce(self) -> Stats:
        """Commits the reduction; returns the Stats holding the result (docs/logger.md,
        "reduce() and previous results").

        That is this Stats, except with ``clear_on_reduce``: then this one is emptied
        and a new one holds the reduced values.
        """
        return reduce_all([self])[0]

    # ---- merging ----------------------------------------------------------------

    def _check_mergeable(self, other: Stats, key: Any = None) -> None:
        if not isinstance(other, Stats):
            raise TypeError(f"cannot merge a {type(other).__name__} into Stats")
        if other._settings is not self._settings:
            where = f" for key {key!r}" if key is not None else ""
            raise ValueError(
                f"cannot merge Stats with different settings{where}: "
                f"{self._settings.describe()} vs {other._settings.describe()}"
            )

    def merge_on_time_axis(self, other: Stats) -> None:
        """Appends ``other``'s values after this one's (then keeps the last window)."""
        self._check_mergeable(other)
        self._extend(other._values, other._tensors)

    def merge_in_parallel(self, *others: Stats) -> None:
        """Merges Stats of parallel components into this one (docs/logger.md, "Merging":
        index by index from the ends, stopping at the window)."""
        for o in others:
            self._check_mergeable(o)
        merge_groups([[self, *others]])

    @classmethod
    def similar_to(cls, other: Stats, init_value: Any = None) -> Stats:
        """A new Stats with ``other``'s settings and reduce history, and new values."""
        new = _blank(other._settings)
        new._hist = other._hist
        if other._extras is not None:
            new._extras = _Extras()
            new._extras.throughput_base = other._extras.throughput_base
            new._extras.throughput_since = other._extras.throughput_since
        if init_value is not None:
            for v in init_value if isinstance(init_value, list) else [init_value]:
                new.push(v)
        return new

    # ---- state ------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Settings, values and history as plain data (JSON/pickle/torch.load safe)."""
        st = self._settings
        return {
            "reduce": st.reduce,
            "window": st.window,
            "ema_coeff": st.ema_coeff,
            "clear_on_reduce": st.clear_on_reduce,
            "percentiles": None if st.percentiles is None else list(st.percentiles),
            "with_throughput": st.with_throughput,
            "values": plain_list(list(self._values)),
            "hist": [plain(h) for h in self._hist],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Stats:
        """The Stats saved by :meth:`get_state`, checked whole first.

        Raises:
            TypeError, ValueError: ``state`` is not one :meth:`get_state` could have
                made; the message names the field at fault.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"a Stats state is a dict, got {type(state).__name__}")
        missing = sorted(_STATE_FIELDS - set(state))
        if missing:
            raise ValueError(f"a Stats state needs the fields {missing}")
        unknown = sorted(map(repr, set(state) - _STATE_FIELDS - _STATE_OPTIONAL))
        if unknown:
            raise ValueError(f"unknown fields in a Stats state: {', '.join(unknown)}")
        for name in ("clear_on_reduce", "with_throughput"):
            flag = state.get(name, False)
            if type(flag) is not bool:
                raise TypeError(f"{name!r} must be True or False, got {flag!r}")
        try:
            settings = Settings.of(
                state["reduce"],
                state["window"],
                state["ema_coeff"],
                state["clear_on_reduce"],
                state.get("percentiles"),
                state.get("with_throughput", False),
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"settings: {err}") from None
        values, hist = state["values"], state["hist"]
        if not isinstance(values, (list, tuple)):
            raise TypeError(f"'values' must be a list, got {type(values).__name__}")
        if not isinstance(hist, (list, tuple)) or len(hist) != 2:
            raise TypeError(f"'hist' must be a list of the last two results, got {hist!r:.80}")
        new = _blank(settings)
        for i, v in enumerate(values):
            try:
                new.push(v)
            except (TypeError, ValueError) as err:
                raise type(err)(f"values[{i}]: {err}") from None
        new._hist = (_checked_result(settings, hist[0], 0), _checked_result(settings, hist[1], 1))
        if new._extras is not None:
            base = new._hist[0]
            new._extras.throughput_base = 0.0 if settings.clear_on_reduce else float(base)
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
        if self._extras is None:
            self._extras = _Extras()
        self._extras.starts[threading.get_ident()] = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._extras is not None
        seconds = time.perf_counter() - self._extras.starts.pop(threading.get_ident())
        self.push(seconds)
        if self._extras.on_exit is not None:
            self._extras.on_exit(seconds)

    def _set_on_exit(self, hook: Any) -> None:
        """``log_time``'s hook: called with the seconds of every ``with`` block."""
        if self._extras is None:
            self._extras = _Extras()
        self._extras.on_exit = hook

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
        return f"Stats({self.peek()!r}; len={len(self._values)}; {self._settings.describe()})"

    # ---- the interface for the rest of the package --------------------------------

    @property
    def history(self) -> tuple[Any, Any]:
        """(the last reduce's result, the one before); 0 before any reduce."""
        return self._hist

    @property
    def holds_tensors(self) -> bool:
        """Whether some value may be a torch tensor (moved to the host when read)."""
        return self._tensors

    @classmethod
    def assemble(
        cls,
        settings: Settings,
        values: Iterable[Any],
        history: tuple[Any, Any] = _NO_HISTORY,
        *,
        throughput_base: float | None = None,
    ) -> Stats:
        """A Stats from its parts: ``values`` are taken as they are (plain numbers, or
        what a list keeps). A ``with_throughput`` sum's clock starts now, from
        ``throughput_base`` (default: the previous result)."""
        new = _blank(settings)
        new._extend(values, False)
        new._hist = history
        if new._extras is not None:
            base = history[0] if throughput_base is None else throughput_base
            new._extras.throughput_base = 0.0 if settings.clear_on_reduce else float(base)
        return new


def assemble_many(
    settings: Sequence[Settings],
    values: Sequence[list[Any]],
    previous: Sequence[Any],
    before_previous: Sequence[Any],
) -> list[Stats]:
    """``Stats.assemble`` of many Stats at once (sync_logger makes one per key): takes
    over the given value lists (the caller must not use them afterwards)."""
    out = []
    new = Stats.__new__
    for st, vals, p, p2 in zip(settings, values, previous, before_previous, strict=True):
        s = new(Stats)
        buf: deque[Any] | list[Any] = deque(vals, maxlen=st.window_len) if st.window_len else vals
        s._settings = st
        s._values = buf
        s._append = buf.append
        s._fold = st.fold_at
        s._hist = (p, p2)
        s._tensors = False
        s._extras = None
        if st.with_throughput:
            s._extras = _Extras()
            s._extras.throughput_base = 0.0 if st.clear_on_reduce else float(p)
        if st.fold_at and len(buf) > st.fold_at:
            s._fold_buffer()
        out.append(s)
    return out


_STATE_FIELDS = {"reduce", "window", "ema_coeff", "clear_on_reduce", "values", "hist"}
_STATE_OPTIONAL = {"percentiles", "with_throughput"}


def _checked_result(settings: Settings, saved: Any, i: int) -> Any:
    """A saved reduce result (``hist[i]``), if it is one this Stats could have made."""
    result = unplain(saved)
    if settings.op == NONE:
        ok = isinstance(result, list) or (type(result) is int and result == 0)
    elif settings.op == PERCENTILES:
        ok = (type(result) is int and result == 0) or (
            isinstance(result, dict)
            and all(_is_number(k) and _is_number(v) for k, v in result.items())
        )
    else:
        ok = _is_number(result)
    if not ok:
        raise TypeError(f"hist[{i}] must be a result of {settings.describe()}, got {saved!r:.80}")
    return result


def _is_number(x: Any) -> bool:
    """A python float, or an int that converts to one."""
    return type(x) is float or (type(x) is int and -FLOAT_INT_MAX <= x <= FLOAT_INT_MAX)


def _peeked(x: object) -> Any:
    return x.peek() if isinstance(x, Stats) else x


def _blank(settings: Settings) -> Stats:
    """An empty Stats with these settings and no history. A plain copy of the fields:
    reduce() and merges make one per key, so this is on their hot path."""
    new = Stats.__new__(Stats)
    values: deque[Any] | list[Any] = (
        deque(maxlen=settings.window_len) if settings.window_len else []
    )
    new._settings = settings
    new._values = values
    new._append = values.append
    new._fold = settings.fold_at
    new._hist = _NO_HISTORY
    new._tensors = False
    new._extras = _Extras() if settings.with_throughput else None
    return new


# ---- batch operations over many Stats ----------------------------------------------

_SETTINGS = attrgetter("_settings")
_VALUES = attrgetter("_values")
_HIST = attrgetter("_hist")
_TENSORS = attrgetter("_tensors")
_CHANGES = attrgetter("reduce_changes_values")


def settings_of(stats: Sequence[Stats]) -> list[Settings]:
    """Each Stats' :meth:`Stats.settings` (in one C loop)."""
    return list(map(_SETTINGS, stats))


def histories(stats: Sequence[Stats]) -> list[tuple[Any, Any]]:
    """Each Stats' :attr:`Stats.history` (in one C loop)."""
    return list(map(_HIST, stats))


def tensor_holders(stats: Sequence[Stats]) -> list[int]:
    """The indices of the Stats that may hold torch tensors (none, at no cost, until a
    tensor is logged anywhere)."""
    if not _tensors_seen[0]:
        return []
    return list(compress(range(len(stats)), map(_TENSORS, stats)))


def flatten_values(stats: Sequence[Stats]) -> tuple[bytes, list[int], bytes]:
    """Every Stats' values as float64 in one native pass over the live buffers (the
    GIL is held throughout: no value is added or removed meanwhile): (the float64
    bytes, each Stats' count, the kinds each holds: 1 floats, 2 ints of at most 2**53,
    4 anything else, written as 0.0)."""
    flat: tuple[bytes, list[int], bytes] = _native.core.series_flatten(list(map(_VALUES, stats)))
    return flat


def snapshots(stats: Sequence[Stats]) -> list[list[Any]]:
    """A consistent copy of each Stats' values (others may log meanwhile)."""
    with _buffer_lock:
        return list(map(list, map(_VALUES, stats)))


def _on_host(stats: Sequence[Stats], snaps: list[list[Any]]) -> list[list[Any]]:
    return batch.host_series(snaps, tensor_holders(stats))


def peek_all(stats: Sequence[Stats], snaps: list[list[Any]] | None = None) -> list[Any]:
    """Each Stats' reduced value (over ``snaps`` if given), changing nothing; all tensors
    move to the host in one batch per device."""
    if snaps is None:
        snaps = snapshots(stats)
    return batch.reduce_series(list(map(_SETTINGS, stats)), _on_host(stats, snaps))


def reduce_all(stats: Sequence[Stats]) -> list[Stats]:
    """Commits ``reduce()`` on every Stats; returns the Stats holding each result.

    As in RLlib, that is the Stats itself, except with ``clear_on_reduce``: then the
    Stats is emptied and a new one holds the reduced values.
    """
    with _buffer_lock:
        settings = list(map(_SETTINGS, stats))
        # A window that keeps its values is read in place (the native reduce holds the
        # GIL: no value is added meanwhile); the rest are copied first, since the
        # commit below removes what was read.
        raw: list[Any] = list(map(_VALUES, stats))
        for i in compress(range(len(raw)), map(_CHANGES, settings)):
            raw[i] = list(raw[i])
        snaps = _on_host(stats, raw)
        results = batch.reduce_series(settings, snaps)
        now = time.perf_counter()
        out = list(stats)  # the Stats themselves, except where clear_on_reduce
        for i, (s, st, vals, res) in enumerate(zip(stats, settings, snaps, results, strict=True)):
            s._hist = (res, s._hist[0])
            if st.keeps_window:
                continue  # a window: its values stay as they are
            extras = s._extras
            if extras is not None and st.with_throughput:
                extras.throughput_base = float(res)
                extras.throughput_since = now
            post = batch.kept_after_reduce(st, vals, res)
            if st.clear_on_reduce:
                reduced = Stats.assemble(st, post, s._hist)
                if reduced._extras is not None and extras is not None:
                    reduced._extras.throughput_base = extras.throughput_base
                    reduced._extras.throughput_since = extras.throughput_since
                _remove_prefix(s._values, len(raw[i]))
                if not s._values:
                    s._tensors = False
                out[i] = reduced
            elif post is not vals:  # a window-less list keeps [result]
                assert isinstance(s._values, list)
                s._values[: len(raw[i])] = post
                s._tensors = s._tensors and any(map(is_tensor, s._values))
        return out


def _remove_prefix(buf: Any, n: int) -> None:
    if isinstance(buf, list):
        del buf[:n]
    else:
        for _ in range(n):
            buf.popleft()


def merge_groups(groups: Sequence[Sequence[Stats]]) -> None:
    """``groups[g][0].merge_in_parallel(*groups[g][1:])`` for every group, in one native
    call. Settings must already be the same within each group. The core reads the live
    value buffers (under the GIL); groups holding tensors are snapshot on the host first."""
    if not groups:
        return
    series: list[Any]
    first = [0]
    if not _tensors_seen[0]:
        series = list(map(_VALUES, chain.from_iterable(groups)))
        first.extend(accumulate(map(len, groups)))
    else:
        series = []
        for group in groups:
            if any(s._tensors for s in group):
                series += _on_host(group, snapshots(group))
            else:
                series += map(_VALUES, group)
            first.append(len(series))
    merged = batch.merge_series([g[0]._settings for g in groups], series, first)
    for group, values in zip(groups, merged, strict=True):
        base = group[0]
        base._values.clear()
        base._tensors = False
        base._extend(values, False)


def common_settings(columns: Sequence[Sequence[Any]]) -> Settings | None:
    """The one settings every leaf of ``columns`` has, or None (a leaf that is no Stats,
    or two settings). Two C loops: interned settings compare by identity."""
    try:
        every = list(map(_SETTINGS, chain.from_iterable(columns)))
    except AttributeError:
        return None
    if not every or every.count(every[0]) != len(every):
        return None
    first: Settings = every[0]
    return first


def merge_columns(
    columns: Sequence[Sequence[Any]],
    keys: Sequence[Any],
    plain: tuple[Any, ...],
    common: Settings | None = None,
) -> list[Stats]:
    """``merge_and_log_n_dicts``' merge: per key, the Stats merged from its column (the
    leaves of every result that has it). Plain values become Stats with the settings
    ``plain`` (reduce, window, ema_coeff, clear_on_reduce); the first leaf's history
    seeds a base; lifetime sums first push ``-peek(previous=True)`` (on copies) so only
    what is new since their last reduce counts; the rest merge in parallel, all keys in
    one native call. The inputs are not changed. A column with different settings
    raises ValueError naming its key. ``common``: the settings of every leaf, when the
    caller knows it (:func:`common_settings`).
    """
    if common is None:
        common = common_settings(columns)
    if (
        common is not None
        and not common.lifetime_sum
        and not common.with_throughput
        and not (_tensors_seen[0] and any(map(_TENSORS, chain.from_iterable(columns))))
    ):
        return _merge_uniform(columns, common)
    uniform = common is not None
    groups: list[list[Stats]] = []
    out: list[Stats] = []
    for key, column in zip(keys, columns, strict=True):
        group: Sequence[Stats] = column
        if not uniform:
            group = _as_stats_group(column, key, plain)
        head = group[0]
        st = head._settings
        base = Stats.similar_to(head)
        if st.lifetime_sum:
            # Count only what is new since each input's last reduce (on copies).
            members = [base, *(Stats.similar_to(s) for s in group[1:])]
            for m, s in zip(members, group, strict=True):
                m._extend(s._values, s._tensors)
                m.push(-m._hist[1])
            groups.append(members)
        elif len(group) == 1:
            base._extend(head._values, head._tensors)
        else:
            # The base starts empty and every input merges into it: an empty series
            # adds nothing at any index, so this is the merge of the inputs, without
            # copying the first one's values first.
            groups.append([base, *group])
        out.append(base)
    merge_groups(groups)
    return out


def _merge_uniform(columns: Sequence[Sequence[Stats]], st: Settings) -> list[Stats]:
    """``merge_columns`` of Stats that all have the settings ``st`` (no lifetime sum, no
    throughput, no tensors): the inputs' value buffers go to one native merge as they
    are (no base copied first: an empty base adds nothing), and each key's Stats is made
    from its merged list and its first input's history. A key only one input has takes
    that input's values as they are (a merge would turn a single int into a float)."""
    multi = [i for i, column in enumerate(columns) if len(column) > 1]
    many = [columns[i] for i in multi] if len(multi) < len(columns) else columns
    merged = batch.merge_series(
        [st] * len(many),
        list(map(_VALUES, chain.from_iterable(many))),
        [0, *accumulate(map(len, many))],
    )
    if len(multi) < len(columns):
        values: list[list[Any]] = [list(column[0]._values) for column in columns]
        for i, vals in zip(multi, merged, strict=True):
            values[i] = vals
    else:
        values = merged
    hists = [column[0]._hist for column in columns]
    return assemble_many([st] * len(columns), values, [h[0] for h in hists], [h[1] for h in hists])


def set_values(stats: Stats, values: Sequence[Any]) -> None:
    """Replaces a Stats' values by ``values`` (``set_value``); checked first, so a bad
    value changes nothing."""
    probe = _blank(stats._settings)
    for v in values:
        probe.push(v)
    with _buffer_lock:
        stats._values.clear()
        stats._tensors = False
        stats._extend(probe._values, probe._tensors)


def set_exit_hook(stats: Stats, hook: Any) -> None:
    """``log_time``'s hook: called with the seconds of every ``with stats:`` block."""
    stats._set_on_exit(hook)


def throughputs(stats: Sequence[Stats], values: Sequence[Any]) -> list[float]:
    """Value per second since the last reduce of ``with_throughput`` sums, given their
    current values."""
    return [s._throughput_of(v) for s, v in zip(stats, values, strict=True)]


def check_mergeable(into: Stats, other: Stats, key: Any) -> None:
    """ValueError naming ``key`` unless ``other`` can merge into ``into``."""
    into._check_mergeable(other, key)


def _as_stats_group(column: Sequence[Any], key: Any, plain: tuple[Any, ...]) -> list[Stats]:
    """Plain values become Stats with the merge's settings; all must share settings."""
    out: list[Stats] = []
    for leaf in column:
        stats = leaf
        if not isinstance(leaf, Stats):
            try:
                stats = _blank(Settings.of(*plain))
                for v in leaf if isinstance(leaf, list) else [leaf]:
                    stats.push(v)
            except (TypeError, ValueError) as err:
                raise type(err)(f"key {key!r}: {err}") from None
        if out:
            out[0]._check_mergeable(stats, key)
        out.append(stats)
    return out
