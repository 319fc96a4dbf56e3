"""The pieces a sink's worker is made of: a lane that runs its calls, and a circuit breaker.

A lane is a sink's own daemon thread that runs one call at a time, so that the sink's
worker can stop waiting for a call that hangs (Python cannot interrupt it) and go on
spooling the payloads behind it. A lane decides nothing: it runs a call and reports
its outcome, to whoever waits, or to ``on_late`` if the waiter gave up on it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("fusedstats.sinks")


class Call:
    """One sink call on a lane. The waiter may abandon it; a call that ends after being
    abandoned reports its outcome to ``on_late`` instead."""

    def __init__(
        self,
        fn: Callable[[], object],
        on_late: Callable[[BaseException | None], None] | None,
        wake: Callable[[], None],
    ) -> None:
        self.fn = fn
        self.on_late = on_late
        self.error: BaseException | None = None
        self._wake = wake
        self._done = False
        self._lock = threading.Lock()
        self._abandoned = False

    @property
    def done(self) -> bool:
        return self._done

    def invoke(self) -> BaseException | None:
        try:
            self.fn()
        except BaseException as error:  # a sink may raise anything; the lane must live on
            return error
        return None

    def finish(self, error: BaseException | None, lane_idle: threading.Event) -> None:
        """Records the outcome and frees the lane: before waking the waiter (who may
        start the next call at once), or, for an abandoned call, after ``on_late``
        counted it (so that no next call of the sink overtakes its late outcome)."""
        with self._lock:
            self.error = error
            late = self._abandoned
            if not late:
                self._done = True
                lane_idle.set()
        if late:
            try:
                if self.on_late is not None:
                    self.on_late(error)
            except BaseException:
                logger.exception("the late outcome of a sink call could not be handled")
            finally:
                self._done = True
                lane_idle.set()
        self._wake()

    def abandon(self) -> bool:
        """Gives up waiting: True if the call still runs (its outcome will go to
        ``on_late``), False if it ended meanwhile (read :attr:`error`)."""
        with self._lock:
            if self._done:
                return False
            self._abandoned = True
            return True


class Lane:
    """A sink's own daemon thread; ``wake`` is called after each call ends."""

    def __init__(self, name: str, wake: Callable[[], None]) -> None:
        self._calls: queue.SimpleQueue[Call | None] = queue.SimpleQueue()
        self._idle = threading.Event()
        self._idle.set()
        self._wake = wake
        threading.Thread(target=self._serve, name=f"fusedstats-lane-{name}", daemon=True).start()

    @property
    def idle(self) -> bool:
        return self._idle.is_set()

    def call(
        self,
        fn: Callable[[], object],
        on_late: Callable[[BaseException | None], None] | None = None,
    ) -> Call | None:
        """Starts ``fn``; None while an earlier call still runs. One caller only."""
        if not self._idle.is_set():
            return None
        self._idle.clear()
        call = Call(fn, on_late, self._wake)
        self._calls.put(call)
        return call

    def stop(self) -> None:
        self._calls.put(None)

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            call.finish(call.invoke(), self._idle)


class Breaker:
    """A circuit breaker: after ``failures`` failed payloads in a row it opens for
    ``cooldown_s`` (doubled each time it opens again, up to ``max_cooldown_s``); while
    open, the sink is not called. Then one payload is tried (half-open): success closes
    it, failure opens it again at once.

    Example:
        >>> breaker = Breaker(failures=2, cooldown_s=10.0, max_cooldown_s=60.0)
        >>> breaker.failure(now=0.0), breaker.failure(now=1.0), breaker.allows(now=5.0)
        (False, True, False)
        >>> breaker.allows(now=11.0), breaker.half_open(now=11.0)
        (True, True)
        >>> breaker.failure(now=11.0), breaker.allows(now=25.0), breaker.allows(now=31.0)
        (True, False, True)
        >>> breaker.success(); breaker.half_open(now=31.0)
        False
    """

    def __init__(self, failures: int, cooldown_s: float, max_cooldown_s: float) -> None:
        self.threshold = failures
        self.base_cooldown_s = cooldown_s
        self.max_cooldown_s = max(max_cooldown_s, cooldown_s)
        self.cooldown_s = cooldown_s
        self.in_a_row = 0
        self.open_until = 0.0

    def allows(self, now: float | None = None) -> bool:
        """True when the sink may be called (closed, or half-open)."""
        return (time.monotonic() if now is None else now) >= self.open_until

    def half_open(self, now: float | None = None) -> bool:
        """True when the next call is the trial after a cool-down."""
        return self.in_a_row >= self.threshold and self.allows(now)

    def success(self) -> None:
        self.in_a_row = 0
        self.cooldown_s = self.base_cooldown_s
        self.open_until = 0.0

    def failure(self, now: float | None = None) -> bool:
        """Counts a failed payload; True if the breaker opens now."""
        self.in_a_row += 1
        if self.in_a_row < self.threshold:
            return False
        now = time.monotonic() if now is None else now
        self.open_until = now + self.cooldown_s
        self.cooldown_s = min(self.cooldown_s * 2, self.max_cooldown_s)
        return True
