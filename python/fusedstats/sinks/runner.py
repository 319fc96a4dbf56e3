"""SinkRunner: sink I/O off the training thread, with a bounded queue, timeouts and retries.

Threads, and the trade-off behind them. The house rule is *one background thread* for
sink I/O. Python cannot interrupt a call, though: a sink stuck in a network write
would hold that thread, and every other sink behind it, for as long as it hangs. So:

- one *delivery thread* owns the queue, the order of payloads, retries, backoff and
  timeouts, and counts and spools what happens;
- each sink's calls run on that sink's own daemon *lane* thread, one call at a time;
  a lane decides nothing, it only reports the outcome of a call that ended too late.
  The delivery thread waits for a call at most ``timeout_s``. A call that takes longer
  is counted ``timed_out`` and left to finish on its lane (its late outcome is counted
  when it comes); until it does, that sink's payloads are not handed to it but
  spooled (counted ``failed``), so a stuck sink costs the others one ``timeout_s``,
  not one per payload, and never blocks ``submit``.

The cost is one idle thread per sink. Sinks are called in order, one at a time, so a
slow-but-not-stuck sink (under ``timeout_s`` per call) or a failing one (retries with
backoff) does delay the next sinks by that much; the queue absorbs it, and a full
queue makes ``submit`` return False and spool rather than wait.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from .base import Sink
from .spool import Spool

logger = logging.getLogger("fusedstats.sinks")

COUNTER_NAMES = ("delivered", "failed", "retried", "spooled", "timed_out")
#: An idle delivery thread wakes this often to spool spilled payloads and notice close().
_POLL_S = 0.5
#: A full queue spills at most this many times its size into memory, for the spool.
_SPILL_FACTOR = 4
#: After a sink's first problem (logged at WARNING), a count at most this often.
_SUMMARY_EVERY_S = 60.0

_Item = tuple[Mapping[str, Any], int, int]  # (read-only payload copy, step, epoch)


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class _Call:
    """One sink call on a lane. Whoever waits for it may abandon it; a call that ends
    after being abandoned reports its outcome to ``on_late`` instead."""

    def __init__(
        self, fn: Callable[[], object], on_late: Callable[[BaseException | None], None] | None
    ) -> None:
        self.fn = fn
        self.on_late = on_late
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._abandoned = False

    def invoke(self) -> BaseException | None:
        try:
            self.fn()
        except BaseException as error:  # a sink may raise anything; the lane must live on
            return error
        return None

    def finish(self, error: BaseException | None, lane_idle: threading.Event) -> None:
        """Records the outcome and frees the lane: before signalling a waiter (who may
        start the next call at once), or, for an abandoned call, after ``on_late``
        counted it (so that no next call of the sink overtakes its late outcome)."""
        with self._lock:
            self.error = error
            late = self._abandoned
            if not late:
                lane_idle.set()
                self._done.set()
        if not late:
            return
        try:
            if self.on_late is not None:
                self.on_late(error)
        except BaseException:
            logger.exception("the late outcome of a sink call could not be handled")
        finally:
            self._done.set()
            lane_idle.set()

    def wait(self, timeout_s: float) -> bool:
        """True if the call ended within ``timeout_s``; else it is abandoned."""
        if self._done.wait(timeout_s):
            return True
        with self._lock:
            self._abandoned = not self._done.is_set()
            return not self._abandoned


class _Lane:
    """A sink's own daemon thread, so that the delivery thread can stop waiting for it."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()
        threading.Thread(target=self._serve, name=f"fusedstats-sink-{name}", daemon=True).start()

    def call(
        self,
        fn: Callable[[], object],
        on_late: Callable[[BaseException | None], None] | None = None,
    ) -> _Call | None:
        """Starts ``fn``; None while an earlier call still runs. One caller only."""
        if not self._idle.is_set():
            return None
        self._idle.clear()
        call = _Call(fn, on_late)
        self._calls.put(call)
        return call

    def wait_idle(self, timeout_s: float) -> bool:
        return self._idle.wait(timeout_s)

    def stop(self) -> None:
        self._calls.put(None)

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            call.finish(call.invoke(), self._idle)


class _SinkState:
    def __init__(self, key: str, sink: Sink) -> None:
        self.key = key
        self.sink = sink
        self.lane = _Lane(key)
        self.counts = dict.fromkeys(COUNTER_NAMES, 0)
        # The payload of the write being waited for, or of one that timed out and still
        # runs: its late outcome is counted (and, if it failed, spooled) when it comes.
        self.in_flight: _Item | None = None
        self.problems = 0
        self.last_summary = 0.0


class SinkRunner:
    """Delivers payloads to sinks on ONE background delivery thread (see the module doc).

    ``submit`` never raises and never blocks. Each sink call has ``timeout_s``; a call
    that raises is retried ``retries`` times, waiting ``backoff_s``, then twice that,
    and so on; a payload a sink did not take is appended to
    ``<spool_dir>/<sink name>.jsonl`` (when ``spool_dir`` is set) for
    :func:`~fusedstats.sinks.replay_spool`. Problems are logged to the
    ``fusedstats.sinks`` logger: a sink's first at WARNING with its exception, later ones
    at DEBUG, with a WARNING count at most every minute. Sinks with the same ``name`` are
    told apart as ``name-2``, ``name-3``, ... in counters and spool files.

    Args:
        sinks: Where payloads go, in the order they are called.
        queue_size: Payloads waiting for delivery at most; beyond it ``submit`` spools.
        timeout_s: How long one sink call may take before it is abandoned.
        retries: Further attempts after a write raised.
        backoff_s: Wait before the first retry, doubled for each next one.
        spool_dir: Where undelivered payloads are kept; None keeps nothing.

    Example:
        >>> import io
        >>> from fusedstats.sinks import ConsoleSink
        >>> out = io.StringIO()
        >>> runner = SinkRunner([ConsoleSink(stream=out)])
        >>> runner.submit({"overview/sps": 1500.0}, step=100, epoch=1)
        True
        >>> runner.close()
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
    ) -> None:
        if queue_size < 1 or timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise ValueError(
                "SinkRunner needs queue_size >= 1, timeout_s > 0, retries >= 0 and "
                f"backoff_s >= 0, got {queue_size}, {timeout_s}, {retries}, {backoff_s}"
            )
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.spool = Spool(spool_dir) if spool_dir is not None else None
        self._states = [
            _SinkState(key, sink) for key, sink in zip(_keys(sinks), sinks, strict=True)
        ]
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        # Payloads refused by a full queue, spooled by the delivery thread (file I/O never
        # runs on the caller's thread). Bounded too: past it they are lost.
        self._spilled: deque[_Item] = deque()
        self._spill_limit = _SPILL_FACTOR * queue_size
        self._lock = threading.Lock()  # counters and the shut-down flag, never held for I/O
        self._runner_counts = {"submitted": 0, "dropped_queue_full": 0}
        self._refusals_logged: set[str] = set()
        self._closing = threading.Event()  # submit refuses
        self._stopping = threading.Event()  # the delivery thread ends once the queue is empty
        self._abort = threading.Event()  # close() ran out of time: spool, do not deliver
        self._close_lock = threading.Lock()
        self._closed = False
        self._shut_down = False
        self._thread = threading.Thread(target=self._run, name="fusedstats-sinks", daemon=True)
        self._thread.start()

    # -- the caller's side ------------------------------------------------------------

    def submit(self, payload: Mapping[str, float], *, step: int, epoch: int) -> bool:
        """Queues a copy of ``payload``; False if it was not queued.

        False when the queue is full (the delivery thread then spools the payload for
        every sink, if there is a ``spool_dir``), after :meth:`close`, or for a payload
        that cannot be copied or a step/epoch that is not an integer; each of these
        counts as ``dropped_queue_full``. Values are not checked here: each sink keeps
        what ``float()`` accepts and drops the rest.
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
        if self._closing.is_set():
            return self._refuse("the runner is closed")
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            pass
        if self.spool is not None and len(self._spilled) < self._spill_limit:
            self._spilled.append(item)
            return self._refuse("the queue is full, payload spooled")
        return self._refuse("the queue is full and cannot be spooled, payload lost")

    def flush(self, timeout_s: float | None = None) -> bool:
        """Waits until everything submitted so far was delivered, failed or spooled, and
        the sinks were flushed. True if that happened within ``timeout_s`` (None: no limit)."""
        if not self._thread.is_alive():
            return self._queue.empty() and not self._spilled
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        marker = _Flush()
        try:
            self._queue.put(marker, timeout=_remaining(deadline))
        except queue.Full:
            return False
        while self._thread.is_alive():
            left = _remaining(deadline)
            if marker.done.wait(_POLL_S if left is None else min(left, _POLL_S)):
                return True
            if left is not None and left <= 0:
                return False
        return marker.done.is_set()

    def close(self, timeout_s: float | None = None) -> None:
        """Flushes, closes every sink (each call isolated and bounded by ``timeout_s`` of
        the runner) and stops the threads. Idempotent. Out of time, the payloads still
        queued are spooled rather than delivered, in the background."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        self._closing.set()
        if not self.flush(_remaining(deadline)):
            self._abort.set()
        with contextlib.suppress(queue.Full):  # if full, the thread stops once it is empty
            self._queue.put_nowait(_STOP)
        self._stopping.set()  # after the put: the thread must not stop before taking _STOP
        self._thread.join(_remaining(deadline))

    @property
    def counters(self) -> dict[str, dict[str, int]]:
        """A copy of the counts, per sink and for ``"runner"``.

        Per sink: ``delivered``, writes that returned (late ones included);
        ``failed``, payloads handed to the sink that it did not take (every attempt
        raised, it was still busy with a timed-out write, or that write still ran at
        close); ``retried``, attempts after a first; ``spooled``, payloads appended to
        its spool file (its failures, and payloads no sink got: a full queue, or close
        out of time); ``timed_out``, writes that ran past ``timeout_s``. Runner:
        ``submitted`` calls and ``dropped_queue_full``, those that returned False.
        """
        with self._lock:
            counts = {state.key: dict(state.counts) for state in self._states}
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

    # -- the delivery thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._spool_spilled()
                try:
                    item = self._queue.get(timeout=_POLL_S)
                except queue.Empty:
                    if self._stopping.is_set():
                        break
                    continue
                if item is _STOP:
                    break
                if isinstance(item, _Flush):
                    self._spool_spilled()
                    if not self._abort.is_set():
                        for state in self._states:
                            self._call_quietly(state, "flush")
                    item.done.set()
                elif isinstance(item, tuple):
                    self._handle(item)
            self._shutdown()
        except BaseException:  # a thread's exception would only reach stderr
            logger.exception("the sink delivery thread failed; payloads are no longer delivered")

    def _handle(self, item: _Item) -> None:
        for state in self._states:
            if self._abort.is_set():
                self._spool_item(state, item)
            else:
                self._deliver(state, item)

    def _deliver(self, state: _SinkState, item: _Item) -> None:
        payload, step, epoch = item
        error: BaseException | None = None
        for attempt in range(self.retries + 1):
            call = state.lane.call(
                lambda: state.sink.write(payload, step=step, epoch=epoch),
                on_late=lambda late_error: self._late_write(state, item, late_error),
            )
            if call is None:
                self._give_up(state, item, "still busy with a write that timed out", None)
                return
            with self._lock:  # set before waiting: a late outcome may come at any moment
                state.in_flight = item
            finished = call.wait(self.timeout_s)
            with self._lock:
                if finished:
                    state.in_flight = None
                else:
                    state.counts["timed_out"] += 1
            if not finished:
                self._problem(state, f"write timed out after {self.timeout_s:g} s", None)
                return
            if call.error is None:
                self._count(state, "delivered")
                return
            error = call.error
            if attempt < self.retries:
                self._count(state, "retried")
                time.sleep(self.backoff_s * 2**attempt)
        self._give_up(state, item, f"write failed {self.retries + 1} time(s)", error)

    def _late_write(self, state: _SinkState, item: _Item, error: BaseException | None) -> None:
        """Runs on the lane when a timed-out write ends at last."""
        with self._lock:
            if self._shut_down or state.in_flight is not item:
                return  # close() spooled it already
            state.in_flight = None
            if error is None:
                state.counts["delivered"] += 1
                return
        self._give_up(state, item, "a write that had timed out failed", error)

    def _give_up(
        self, state: _SinkState, item: _Item, what: str, error: BaseException | None
    ) -> None:
        self._count(state, "failed")
        self._problem(state, what, error)
        self._spool_item(state, item)

    def _call_quietly(self, state: _SinkState, method: str) -> None:
        """flush() or close() of one sink, waited for at most timeout_s; never raises.

        A sink still busy with a timed-out write is skipped by flush() at once, while
        close() gives that write up to timeout_s more to end."""
        if not state.lane.wait_idle(self.timeout_s if method == "close" else 0.0):
            self._problem(state, f"{method}() skipped: a timed-out write still runs", None)
            return

        def late(error: BaseException | None) -> None:
            if error is not None:
                self._problem(state, f"{method}() failed after timing out", error)

        call = state.lane.call(getattr(state.sink, method), on_late=late)
        if call is None:
            return
        if not call.wait(self.timeout_s):
            self._problem(state, f"{method}() timed out after {self.timeout_s:g} s", None)
        elif call.error is not None:
            self._problem(state, f"{method}() failed", call.error)

    def _shutdown(self) -> None:
        self._spool_spilled()
        for state in self._states:
            self._call_quietly(state, "close")
        with self._lock:
            self._shut_down = True
            running = [(state, state.in_flight) for state in self._states if state.in_flight]
            for state, _ in running:
                state.in_flight = None
                state.counts["failed"] += 1
        for state, item in running:
            if item is not None:
                self._spool_item(state, item)
        for state in self._states:
            state.lane.stop()

    def _spool_spilled(self) -> None:
        while self._spilled:
            item = self._spilled.popleft()
            for state in self._states:
                self._spool_item(state, item)

    def _spool_item(self, state: _SinkState, item: _Item) -> None:
        if self.spool is None:
            return
        payload, step, epoch = item
        try:
            self.spool.append(state.key, payload, step=step, epoch=epoch)
        except Exception as error:
            self._problem(state, f"could not spool to {self.spool.path(state.key)}", error)
            return
        self._count(state, "spooled")

    def _count(self, state: _SinkState, name: str) -> None:
        with self._lock:
            state.counts[name] += 1

    def _problem(self, state: _SinkState, what: str, error: BaseException | None) -> None:
        """Logs a sink's problem: the first at WARNING, then DEBUG and a periodic count."""
        now = time.monotonic()
        with self._lock:
            state.problems += 1
            first = state.problems == 1
            summary = not first and now - state.last_summary >= _SUMMARY_EVERY_S
            if first or summary:
                state.last_summary = now
            problems, counts = state.problems, dict(state.counts)
        if first:
            logger.warning(
                "sink %r: %s (later problems of this sink are logged at DEBUG, "
                "with a count at most every %g s)",
                state.key,
                what,
                _SUMMARY_EVERY_S,
                exc_info=error,
            )
        else:
            logger.debug("sink %r: %s", state.key, what, exc_info=error)
            if summary:
                logger.warning(
                    "sink %r: %d problems so far, counters %s", state.key, problems, counts
                )


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


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
