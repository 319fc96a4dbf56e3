"""SinkRunner: sink I/O off the training thread, each sink served on its own.

Threads, and the trade-offs behind them:

- ``submit`` copies the payload once and hands it to every sink's *worker*: a bounded
  queue and a daemon thread per sink, with its own retries, backoff and circuit
  breaker. A sink that fails or hangs only ever delays itself: the others keep up
  with the reporter (before, one thread served the sinks in turn, and a sink that
  raised on every call held a healthy one to ~6 payloads/s).
- Each sink's calls run on its own *lane* thread (:mod:`._lane`), one at a time. The
  worker waits for a call at most ``timeout_s``; a call that takes longer is counted
  ``timed_out`` and left to finish on its lane (its late outcome is counted when it
  comes), and while it runs the worker spools that sink's payloads instead of
  queueing them behind it. Python cannot interrupt a call, so this costs a second
  thread per sink.
- A sink whose payloads keep failing trips its *circuit breaker*: for a cool-down
  its payloads go straight to its spool without calling it, then one is tried.
- :meth:`SinkRunner.close` gives delivery until a little before its deadline, then
  every worker spools what is left, so that when it returns every payload of every
  sink was delivered or is in that sink's spool file, and its
  :class:`DeliveryReport` says which.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ._lane import Breaker, Call, Lane
from .base import Sink
from .spool import Spool

logger = logging.getLogger("fusedstats.sinks")

COUNTER_NAMES = (
    "delivered",
    "failed",
    "retried",
    "spooled",
    "timed_out",
    "skipped",
    "lost",
    "circuit_opened",
)
#: A full queue spills at most this many times its size into memory, for the spool.
_SPILL_FACTOR = 4
#: After a sink's first problem (logged at WARNING), a count at most this often.
_SUMMARY_EVERY_S = 60.0
#: close(timeout_s) stops delivering this share of its time before the deadline (at
#: most _MAX_RESERVE_S), to spool what is left and close the sinks in time.
_RESERVE_SHARE = 0.2
_MAX_RESERVE_S = 1.0

_Item = tuple[Mapping[str, Any], int, int]  # (read-only payload copy, step, epoch)


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


@dataclass(frozen=True)
class SinkDelivery:
    """What became of the payloads one sink was given.

    Attributes:
        delivered: payloads the sink's ``write`` took.
        spooled: payloads appended to the sink's spool file instead.
        lost: payloads neither delivered nor spooled (no ``spool_dir``, a spool that
            could not be written, or more waiting for the spool than memory allows).
        pending: payloads still being handled (a ``close`` that ran out of time before
            the sink's worker could spool them, because the disk hung).
        spool_path: the sink's spool file (None without ``spool_dir``).
    """

    delivered: int
    spooled: int
    lost: int
    pending: int
    spool_path: str | None


@dataclass(frozen=True)
class DeliveryReport:
    """Per sink, what became of its payloads (:class:`SinkDelivery`).

    Example:
        >>> report = DeliveryReport({"jsonl": SinkDelivery(3, 0, 0, 0, None)})
        >>> report.complete, report.all_delivered, str(report)
        (True, True, 'jsonl: 3 delivered')
    """

    sinks: Mapping[str, SinkDelivery]

    @property
    def complete(self) -> bool:
        """True when every payload of every sink was delivered or is in its spool."""
        return all(d.lost == 0 and d.pending == 0 for d in self.sinks.values())

    @property
    def all_delivered(self) -> bool:
        """True when every payload of every sink was delivered."""
        return all(d.spooled == d.lost == d.pending == 0 for d in self.sinks.values())

    def __str__(self) -> str:
        parts = []
        for name, d in self.sinks.items():
            text = f"{name}: {d.delivered} delivered"
            if d.spooled:
                text += f", {d.spooled} spooled to {d.spool_path}"
            if d.lost:
                text += f", {d.lost} LOST"
            if d.pending:
                text += f", {d.pending} still pending"
            parts.append(text)
        return "; ".join(parts) if parts else "no sinks"


@dataclass(frozen=True)
class _Settings:
    queue_size: int
    timeout_s: float
    retries: int
    backoff_s: float
    breaker_failures: int
    breaker_cooldown_s: float
    breaker_max_cooldown_s: float
    spool: Spool | None


class _Worker:
    """One sink's queue, thread, lane, retries and breaker (see the module doc)."""

    def __init__(self, key: str, sink: Sink, settings: _Settings) -> None:
        self.key = key
        self.sink = sink
        self.settings = settings
        self.cond = threading.Condition()
        self.queue: deque[_Item | _Flush] = deque()
        self.queued = 0  # payloads (not flush markers) in the queue
        self.overflow: deque[_Item] = deque()  # refused by a full queue: to spool
        self.counts = dict.fromkeys(COUNTER_NAMES, 0)
        self.accepted = 0
        # The payload of the write being waited for, or of one that timed out and still
        # runs: its late outcome is counted (and, if it failed, spooled) when it comes.
        self.in_flight: _Item | None = None
        self.breaker = Breaker(
            settings.breaker_failures, settings.breaker_cooldown_s, settings.breaker_max_cooldown_s
        )
        self.closing = False
        self.shut_down = False
        self.deliver_until: float | None = None  # close(): spool instead of delivering after
        self.close_by: float | None = None  # close(): the sink's close() waited for until
        self.problems = 0
        self.last_summary = 0.0
        self.lane = Lane(key, self._wake)
        self.thread = threading.Thread(target=self._run, name=f"fusedstats-sink-{key}", daemon=True)
        self.thread.start()

    # -- the submitting side ------------------------------------------------------------

    def offer(self, item: _Item) -> str:
        """Queues ``item``: "queued", "spilled" (queue full, to be spooled) or "lost"."""
        with self.cond:
            self.accepted += 1
            if self.queued < self.settings.queue_size:
                self.queue.append(item)
                self.queued += 1
                self.cond.notify_all()
                return "queued"
            spill_limit = _SPILL_FACTOR * self.settings.queue_size
            if self.settings.spool is not None and len(self.overflow) < spill_limit:
                self.overflow.append(item)
                self.cond.notify_all()
                return "spilled"
            self.counts["skipped"] += 1
            self.counts["lost"] += 1
            return "lost"

    def add_marker(self, marker: _Flush) -> None:
        with self.cond:
            self.queue.append(marker)
            self.cond.notify_all()

    def begin_close(self, deliver_until: float | None, close_by: float | None) -> None:
        with self.cond:
            self.closing = True
            self.deliver_until = deliver_until
            self.close_by = close_by
            self.cond.notify_all()

    def delivery(self) -> SinkDelivery:
        spool = self.settings.spool
        with self.cond:
            done = self.counts["delivered"] + self.counts["spooled"] + self.counts["lost"]
            return SinkDelivery(
                delivered=self.counts["delivered"],
                spooled=self.counts["spooled"],
                lost=self.counts["lost"],
                pending=max(0, self.accepted - done),
                spool_path=None if spool is None else str(spool.path(self.key)),
            )

    def _wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    # -- the worker thread --------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                entry = self._next()
                if entry is None:
                    break
                if isinstance(entry, _Flush):
                    if not self._out_of_time():
                        self._call_quietly("flush", time.monotonic() + self.settings.timeout_s)
                    entry.done.set()
                else:
                    self._handle(entry)
            except BaseException:  # nothing above raises; if it does, the worker goes on
                logger.exception("sink %r: the sink's worker failed on a payload", self.key)
        try:
            self._shutdown()
        except BaseException:
            logger.exception("sink %r: the sink's worker failed while closing", self.key)

    def _next(self) -> _Item | _Flush | None:
        """The next queued entry (spooling spilled payloads first); None once closed and
        empty."""
        while True:
            with self.cond:
                while not self.queue and not self.overflow and not self.closing:
                    self.cond.wait()
                if not self.overflow:
                    if not self.queue:
                        return None
                    entry = self.queue.popleft()
                    if not isinstance(entry, _Flush):
                        self.queued -= 1
                    return entry
            self._spool_overflow()

    def _handle(self, item: _Item) -> None:
        if self._out_of_time():
            self._skip(item)
            return
        if not self.breaker.allows():
            self._skip(item)
            return
        if not self.lane.idle:
            self._count("failed")
            self._problem("still busy with a write that timed out", None)
            self._spool(item)
            return
        self._deliver(item)

    def _deliver(self, item: _Item) -> None:
        payload, step, epoch = item
        attempts = 1 if self.breaker.half_open() else self.settings.retries + 1
        error: BaseException | None = None
        for attempt in range(attempts):
            call = self.lane.call(
                lambda: self.sink.write(payload, step=step, epoch=epoch),
                on_late=lambda late_error: self._late_write(item, late_error),
            )
            if call is None:  # cannot happen: only this thread starts calls
                self._give_up(item, "the sink's lane was busy", None)
                return
            with self.cond:  # set before waiting: a late outcome may come at any moment
                self.in_flight = item
            if not self._wait_for_call(call, self.settings.timeout_s) and call.abandon():
                if self._out_of_time():  # close() ran out of time: _shutdown spools it
                    self._problem("a write still ran when close() ran out of time", None)
                    return
                with self.cond:
                    self.counts["timed_out"] += 1
                self._failure(f"write timed out after {self.settings.timeout_s:g} s", None)
                return
            with self.cond:
                self.in_flight = None
            if call.error is None:
                self._count("delivered")
                self.breaker.success()
                return
            error = call.error
            if attempt + 1 < attempts:
                self._count("retried")
                self._wait(lambda: False, self.settings.backoff_s * 2**attempt)
                if self._out_of_time():
                    break
        self._count("failed")
        self._failure(f"write failed {attempts} time(s)", error)
        self._spool(item)

    def _failure(self, what: str, error: BaseException | None) -> None:
        self._problem(what, error)
        if self.breaker.failure():
            self._count("circuit_opened")
            self._problem(
                f"circuit opened after {self.breaker.in_a_row} failed payloads in a row: "
                f"its payloads are spooled without calling it for "
                f"{self.breaker.open_until - time.monotonic():.3g} s, then one is tried",
                None,
            )

    def _late_write(self, item: _Item, error: BaseException | None) -> None:
        """Runs on the lane when a timed-out write ends at last."""
        with self.cond:
            if self.shut_down or self.in_flight is not item:
                return  # close() spooled it already
            self.in_flight = None
            if error is None:
                self.counts["delivered"] += 1
                return
            self.counts["failed"] += 1
        self._problem("a write that had timed out failed", error)
        self._spool(item)

    def _give_up(self, item: _Item, what: str, error: BaseException | None) -> None:
        self._count("failed")
        self._problem(what, error)
        self._spool(item)

    def _wait(self, done: Callable[[], bool], seconds: float) -> bool:
        """Waits until ``done()`` or ``seconds`` passed (or close()'s delivery time ran
        out), spooling spilled payloads meanwhile; returns ``done()``."""
        until = time.monotonic() + seconds
        while True:
            with self.cond:
                while not done() and not self.overflow:
                    limit = until if self.deliver_until is None else min(until, self.deliver_until)
                    left = limit - time.monotonic()
                    if left <= 0:
                        return done()
                    self.cond.wait(left)
                if done():
                    return True
            self._spool_overflow()

    def _wait_for_call(self, call: Call, seconds: float) -> bool:
        return self._wait(lambda: call.done, seconds)

    def _out_of_time(self) -> bool:
        deliver_until = self.deliver_until
        return deliver_until is not None and time.monotonic() >= deliver_until

    def _call_quietly(self, method: str, until: float) -> None:
        """flush() or close() of the sink, waited for until ``until``; never raises."""
        if not self.lane.idle:
            self._problem(f"{method}() skipped: a timed-out write still runs", None)
            return

        def late(error: BaseException | None) -> None:
            if error is not None:
                self._problem(f"{method}() failed after timing out", error)

        call = self.lane.call(getattr(self.sink, method), on_late=late)
        if call is None:
            return
        left = max(0.0, until - time.monotonic())
        if not self._wait_for_call(call, left) and call.abandon():
            self._problem(f"{method}() timed out after {left:.3g} s", None)
        elif call.error is not None:
            self._problem(f"{method}() failed", call.error)

    def _shutdown(self) -> None:
        # A timed-out write still running gets until the delivery deadline (at most
        # timeout_s) to end; then its payload is spooled, before the sink's close().
        settings = self.settings
        wait_s = settings.timeout_s
        if self.deliver_until is not None:
            wait_s = min(wait_s, self.deliver_until - time.monotonic())
        if not self.lane.idle:
            self._wait(lambda: self.lane.idle, max(0.0, wait_s))
        with self.cond:
            self.shut_down = True
            item, self.in_flight = self.in_flight, None
            if item is not None:
                self.counts["failed"] += 1
        if item is not None:
            self._spool(item)
        self._spool_overflow()
        close_by = time.monotonic() + settings.timeout_s
        if self.close_by is not None:
            close_by = min(close_by, self.close_by)
        self._call_quietly("close", close_by)
        self.lane.stop()

    # -- spooling and counting ------------------------------------------------------------

    def _skip(self, item: _Item) -> None:
        self._count("skipped")
        self._spool(item)

    def _spool_overflow(self) -> None:
        with self.cond:
            items = list(self.overflow)
            self.overflow.clear()
        for item in items:
            self._skip(item)

    def _spool(self, item: _Item) -> None:
        spool = self.settings.spool
        if spool is None:
            self._count("lost")
            return
        payload, step, epoch = item
        try:
            spool.append(self.key, payload, step=step, epoch=epoch)
        except Exception as error:
            self._count("lost")
            self._problem(f"could not spool to {spool.path(self.key)}", error)
            return
        self._count("spooled")

    def _count(self, name: str) -> None:
        with self.cond:
            self.counts[name] += 1

    def _problem(self, what: str, error: BaseException | None) -> None:
        """Logs a problem of the sink: the first at WARNING, then DEBUG and a periodic count."""
        now = time.monotonic()
        with self.cond:
            self.problems += 1
            first = self.problems == 1
            summary = not first and now - self.last_summary >= _SUMMARY_EVERY_S
            if first or summary:
                self.last_summary = now
            problems, counts = self.problems, dict(self.counts)
        if first:
            logger.warning(
                "sink %r: %s (later problems of this sink are logged at DEBUG, "
                "with a count at most every %g s)",
                self.key,
                what,
                _SUMMARY_EVERY_S,
                exc_info=error,
            )
        else:
            logger.debug("sink %r: %s", self.key, what, exc_info=error)
            if summary:
                logger.warning(
                    "sink %r: %d problems so far, counters %s", self.key, problems, counts
                )


class SinkRunner:
    """Delivers payloads to sinks off the caller's thread, each sink on its own worker.

    ``submit`` never raises and never blocks. Each sink has its own queue of
    ``queue_size`` payloads and its own thread (see the module doc). Each sink call
    has ``timeout_s``; a write that raises is retried ``retries`` times, waiting
    ``backoff_s``, then twice that, and so on. After ``breaker_failures`` payloads in a
    row that a sink did not take, its circuit breaker opens: for ``breaker_cooldown_s``
    (doubled at each reopening, up to ``breaker_max_cooldown_s``) its payloads are
    spooled without calling it, then one is tried. A payload a sink did not take is
    appended to ``<spool_dir>/<sink name>.jsonl`` (when ``spool_dir`` is set) for
    :func:`~fusedstats.sinks.replay_spool`. Problems are logged to the
    ``fusedstats.sinks`` logger: a sink's first at WARNING with its exception, later
    ones at DEBUG, with a WARNING count at most every minute. Sinks with the same
    ``name`` are told apart as ``name-2``, ``name-3``, ... in counters and spool files.

    Args:
        sinks: Where payloads go.
        queue_size: Payloads waiting for delivery per sink at most; beyond it that
            sink's payloads are spooled.
        timeout_s: How long one sink call may take before it is abandoned.
        retries: Further attempts after a write raised.
        backoff_s: Wait before the first retry, doubled for each next one.
        spool_dir: Where undelivered payloads are kept; None keeps nothing.
        breaker_failures: Failed payloads in a row that open a sink's circuit breaker.
        breaker_cooldown_s: How long the breaker stays open the first time.
        breaker_max_cooldown_s: The longest it stays open.

    Example:
        >>> import io
        >>> from fusedstats.sinks import ConsoleSink
        >>> out = io.StringIO()
        >>> runner = SinkRunner([ConsoleSink(stream=out)])
        >>> runner.submit({"overview/sps": 1500.0}, step=100, epoch=1)
        True
        >>> print(runner.close())
        console: 1 delivered
        >>> out.getvalue(), runner.counters["console"]["delivered"]
        ('epoch 1 | step 100 | sps 1500\\n', 1)
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        queue_size: int = 64,
        timeout_s: float = 10.0,
        retries: int = 2,
        backoff_s: float = 0.05,
        spool_dir: str | os.PathLike[str] | None = None,
        breaker_failures: int = 3,
        breaker_cooldown_s: float = 5.0,
        breaker_max_cooldown_s: float = 60.0,
    ) -> None:
        if queue_size < 1 or timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise ValueError(
                "SinkRunner needs queue_size >= 1, timeout_s > 0, retries >= 0 and "
                f"backoff_s >= 0, got {queue_size}, {timeout_s}, {retries}, {backoff_s}"
            )
        if breaker_failures < 1 or breaker_cooldown_s < 0 or breaker_max_cooldown_s < 0:
            raise ValueError(
                "SinkRunner needs breaker_failures >= 1, breaker_cooldown_s >= 0 and "
                f"breaker_max_cooldown_s >= 0, got {breaker_failures}, {breaker_cooldown_s}, "
                f"{breaker_max_cooldown_s}"
            )
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.spool = Spool(spool_dir) if spool_dir is not None else None
        settings = _Settings(
            queue_size=int(queue_size),
            timeout_s=self.timeout_s,
            retries=self.retries,
            backoff_s=self.backoff_s,
            breaker_failures=int(breaker_failures),
            breaker_cooldown_s=float(breaker_cooldown_s),
            breaker_max_cooldown_s=float(breaker_max_cooldown_s),
            spool=self.spool,
        )
        self._workers = [
            _Worker(key, sink, settings) for key, sink in zip(_keys(sinks), sinks, strict=True)
        ]
        self._lock = threading.Lock()  # the runner's counters and refusal log
        self._runner_counts = {"submitted": 0, "dropped_queue_full": 0}
        self._refusals_logged: set[str] = set()
        self._closing = False
        self._close_lock = threading.Lock()
        self._closed = False

    # -- the caller's side ------------------------------------------------------------

    def submit(self, payload: Mapping[str, float], *, step: int, epoch: int) -> bool:
        """Queues a copy of ``payload`` for every sink; False if not queued for all.

        False when a sink's queue is full (that sink's worker then spools the payload,
        if there is a ``spool_dir``), after :meth:`close`, or for a payload that cannot
        be copied or a step/epoch that is not an integer; each of these counts as
        ``dropped_queue_full``. Values are not checked here: each sink keeps what
        ``float()`` accepts and drops the rest.
        """
        try:
            return self._submit(payload, step, epoch)
        except Exception:  # nothing above should raise; if it does, training goes on
            logger.debug("SinkRunner.submit failed", exc_info=True)
            return False

    def _submit(self, payload: Mapping[str, float], step: int, epoch: int) -> bool:
        with self._lock:
            self._runner_counts["submitted"] += 1
        try:
            item: _Item = (MappingProxyType(dict(payload)), int(step), int(epoch))
        except Exception as error:
            return self._refuse("unusable payload, step or epoch", error)
        if self._closing:
            return self._refuse("the runner is closed")
        outcomes = {worker.offer(item) for worker in self._workers}
        if "lost" in outcomes:
            return self._refuse("a sink's queue is full and cannot be spooled, payload lost")
        if "spilled" in outcomes:
            return self._refuse("a sink's queue is full, payload spooled for it")
        return True

    def flush(self, timeout_s: float | None = None) -> bool:
        """Waits until everything submitted so far was delivered, failed or spooled, and
        the sinks were flushed. True if that happened within ``timeout_s`` (None: no limit)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        markers = []
        for worker in self._workers:
            if worker.thread.is_alive():
                marker = _Flush()
                worker.add_marker(marker)
                markers.append((worker, marker))
        for worker, marker in markers:
            while not marker.done.wait(_slice(deadline)):
                if not worker.thread.is_alive():
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        return all(not w.queue and not w.overflow for w in self._workers)

    def close(self, timeout_s: float | None = None) -> DeliveryReport:
        """Delivers what is queued, closes every sink and stops the threads; returns what
        became of every sink's payloads. Idempotent.

        With ``timeout_s``, delivery stops a little before it (a fifth of it, at most
        1 s, is kept to spool and close), what is left is spooled, and each sink's
        ``close()`` is waited for until the deadline: when this returns, every payload
        of every sink was delivered or is in that sink's spool file (unless the spool
        itself failed or hung: the report then counts them ``lost`` or ``pending``).
        Without it, everything is delivered or spooled, each call bounded by the
        runner's ``timeout_s``.
        """
        with self._close_lock:
            if self._closed:
                return self.report()
            self._closed = True
        started = time.monotonic()
        deadline = deliver_until = None
        if timeout_s is not None:
            deadline = started + max(0.0, timeout_s)
            deliver_until = deadline - min(_RESERVE_SHARE * max(0.0, timeout_s), _MAX_RESERVE_S)
        self._closing = True
        for worker in self._workers:
            worker.begin_close(deliver_until, deadline)
        for worker in self._workers:
            worker.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self.report()

    def report(self) -> DeliveryReport:
        """What became of each sink's payloads so far (:class:`DeliveryReport`)."""
        return DeliveryReport({worker.key: worker.delivery() for worker in self._workers})

    @property
    def counters(self) -> dict[str, dict[str, int]]:
        """A copy of the counts, per sink and for ``"runner"``.

        Per sink: ``delivered``, writes that returned (late ones included);
        ``failed``, payloads handed to the sink that it did not take (every attempt
        raised, it was still busy with a timed-out write, or that write still ran at
        close); ``retried``, attempts after a first; ``spooled``, payloads appended to
        its spool file; ``timed_out``, writes that ran past ``timeout_s``;
        ``skipped``, payloads not handed to it (its circuit breaker was open, its queue
        was full, or close ran out of time); ``lost``, payloads neither delivered nor
        spooled; ``circuit_opened``, times its breaker opened. Runner: ``submitted``
        calls and ``dropped_queue_full``, those that returned False.
        """
        counts = {}
        for worker in self._workers:
            with worker.cond:
                counts[worker.key] = dict(worker.counts)
        with self._lock:
            counts["runner"] = dict(self._runner_counts)
        return counts

    def _refuse(self, reason: str, error: Exception | None = None) -> bool:
        """Counts a refused submit and logs it: the first of its kind at WARNING, then DEBUG."""
        with self._lock:
            self._runner_counts["dropped_queue_full"] += 1
            level = logging.DEBUG if reason in self._refusals_logged else logging.WARNING
            self._refusals_logged.add(reason)
        logger.log(level, "SinkRunner.submit: %s%s", reason, f" ({error!r})" if error else "")
        return False


def _keys(sinks: Sequence[Sink]) -> list[str]:
    """Each sink's name, made unique (``"runner"`` is taken by the runner's counters)."""
    taken = {"runner"}
    keys = []
    for sink in sinks:
        try:
            base = str(sink.name) or type(sink).__name__
        except Exception:
            base = type(sink).__name__
        key, n = base, 2
        while key in taken:
            key, n = f"{base}-{n}", n + 1
        taken.add(key)
        keys.append(key)
    return keys


def _slice(deadline: float | None) -> float:
    """How long to wait before checking again: at most 0.5 s, never past ``deadline``."""
    if deadline is None:
        return 0.5
    return max(0.0, min(0.5, deadline - time.monotonic()))
