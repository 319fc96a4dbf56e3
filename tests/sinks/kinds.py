"""Small real sinks that misbehave on purpose, for the runner tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any


class RecordingSink:
    """Keeps every payload it is given, with the time it arrived."""

    def __init__(self, name: str = "recording") -> None:
        self.name = name
        self.received: list[tuple[dict[str, Any], int, int]] = []
        self.times: list[float] = []
        self.closed = False

    def write(self, payload: Mapping[str, float], *, step: int, epoch: int) -> None:
        self.times.append(time.monotonic())
        self.received.append((dict(payload), step, epoch))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class RaisingSink(RecordingSink):
    """Raises on every write (after recording the attempt), or on the first ``fail_first``."""

    def __init__(self, name: str = "raising", fail_first: int | None = None) -> None:
        super().__init__(name)
        self.fail_first = fail_first
        self.attempts = 0

    def write(self, payload: Mapping[str, float], *, step: int, epoch: int) -> None:
        self.attempts += 1
        self.times.append(time.monotonic())
        if self.fail_first is None or self.attempts <= self.fail_first:
            raise ConnectionError(f"sink down (attempt {self.attempts})")
        self.received.append((dict(payload), step, epoch))


class SleepingSink(RecordingSink):
    """Each write (or close) sleeps ``seconds`` before recording; ``release()`` ends the
    sleeps early so that a test leaves no thread sleeping behind it."""

    def __init__(self, seconds: float, name: str = "sleeping", *, on: str = "write") -> None:
        super().__init__(name)
        self.seconds = seconds
        self.on = on
        self.entered = threading.Event()
        self._release = threading.Event()

    def release(self) -> None:
        self._release.set()

    def _sleep(self) -> None:
        self.entered.set()
        self._release.wait(self.seconds)

    def write(self, payload: Mapping[str, float], *, step: int, epoch: int) -> None:
        if self.on == "write":
            self._sleep()
        super().write(payload, step=step, epoch=epoch)

    def close(self) -> None:
        if self.on == "close":
            self._sleep()
        super().close()


class FailsOnCall(RecordingSink):
    """Raises on its ``n``-th write only."""

    def __init__(self, n: int, name: str = "fails-once") -> None:
        super().__init__(name)
        self.n = n
        self.calls = 0

    def write(self, payload: Mapping[str, float], *, step: int, epoch: int) -> None:
        self.calls += 1
        if self.calls == self.n:
            raise OSError("disk full")
        super().write(payload, step=step, epoch=epoch)
