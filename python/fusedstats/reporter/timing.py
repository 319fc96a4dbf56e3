"""Named timers with laps, and the timing keys of an epoch payload.

A trainer wraps its phases in named timers (``with stopwatch("_rollout"):``); at every
epoch the reporter calls :func:`compute_timing_stats`, which takes a lap of all timers
and turns the lap and the running totals into ``timing_per_epoch/...``,
``timing_cumulative/...`` and the steps-per-second figures of ``overview/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

Clock = Callable[[], float]


@runtime_checkable
class Timer(Protocol):
    """Anything that times a named block: ``with timer("_train"): ...``."""

    def __call__(self, name: str) -> AbstractContextManager[Any]: ...


class _Entry:
    """One named timer: closed intervals summed, the open one's start, and lap marks."""

    __slots__ = ("depth", "lap_mark", "last_lap", "started", "total")

    def __init__(self) -> None:
        self.total = 0.0  # seconds of closed intervals
        self.started: float | None = None  # clock value when the open interval began
        self.depth = 0  # nesting of the same name: only the outermost block counts
        self.lap_mark = 0.0  # elapsed seconds at the last lap
        self.last_lap = 0.0  # seconds spent in the last lap


class _Block:
    """The context manager of ``stopwatch(name)``: a class, not a generator, because a
    trainer enters it several times per step and this is ~3x cheaper."""

    __slots__ = ("_name", "_watch")

    def __init__(self, watch: Stopwatch, name: str) -> None:
        self._watch = watch
        self._name = name

    def __enter__(self) -> None:
        self._watch.start(self._name)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._watch.stop(self._name)


class Stopwatch:
    """Named timers, a global timer running since construction, and laps.

    ``stopwatch(name)`` and ``stopwatch.time(name)`` time a block; a block nested inside
    one of the same name counts once (the outer one). :meth:`lap_all` checkpoints every
    timer and returns what each spent since the previous lap, and remembers how many
    agent steps the lap covered. After a resume, :meth:`set_resume_baseline` (or
    :meth:`load_state_dict`) makes steps per second count only steps and seconds since
    the resume, so restored totals do not inflate or deflate it.

    Args:
        clock: seconds as a float, monotonic (``time.perf_counter``; tests pass a fake).

    Example:
        >>> now = [0.0]
        >>> sw = Stopwatch(clock=lambda: now[0])
        >>> with sw("_rollout"):
        ...     now[0] = 3.0
        >>> now[0] = 4.0
        >>> sw.lap_all(400)
        {'global': 4.0, '_rollout': 3.0}
        >>> sw.lap_steps(), sw.rate(400)
        (400, 100.0)
    """

    GLOBAL = "global"

    def __init__(self, clock: Clock = time.perf_counter) -> None:
        self._clock = clock
        self._timers: dict[str, _Entry] = {}
        self._lap_step = 0  # agent step at the last lap (or at the resume baseline)
        self._lap_steps = 0  # steps covered by the last lap
        self._base_step = 0  # resume baseline: agent step ...
        self._base_elapsed = 0.0  # ... and global seconds at that point
        self.reset()

    # ---- timing blocks ---------------------------------------------------------------

    def __call__(self, name: str) -> AbstractContextManager[None]:
        return _Block(self, name)

    def time(self, name: str) -> AbstractContextManager[None]:
        """``with stopwatch.time("_train"):`` — the same as ``stopwatch("_train")``."""
        return _Block(self, name)

    def start(self, name: str) -> None:
        """Starts ``name`` (created on first use); a start while running only nests."""
        entry = self._timers.get(name)
        if entry is None:
            entry = self._timers[name] = _Entry()
        if entry.depth == 0:
            entry.started = self._clock()
        entry.depth += 1

    def stop(self, name: str) -> float:
        """Stops ``name``; returns the seconds of the interval it closed (0 when an inner
        nested block ends, since the outer one is still running).

        Raises:
            ValueError: ``name`` is not running.
        """
        entry = self._timers.get(name)
        if entry is None or entry.depth == 0:
            raise ValueError(f"timer {name!r} is not running")
        entry.depth -= 1
        if entry.depth > 0 or entry.started is None:
            return 0.0
        seconds = self._clock() - entry.started
        entry.total += seconds
        entry.started = None
        return seconds

    def is_running(self, name: str) -> bool:
        entry = self._timers.get(name)
        return entry is not None and entry.depth > 0

    # ---- queries -------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every timer ever started, the global one first."""
        return list(self._timers)

    def elapsed(self, name: str | None = None) -> float:
        """Total seconds of ``name`` (the global timer when None), the open interval
        included; 0 for a timer never started."""
        entry = self._timers.get(self.GLOBAL if name is None else name)
        if entry is None:
            return 0.0
        return self._elapsed(entry, self._clock())

    @staticmethod
    def _elapsed(entry: _Entry, now: float) -> float:
        if entry.started is None:
            return entry.total
        return entry.total + (now - entry.started)

    def all_elapsed(self, include_global: bool = False) -> dict[str, float]:
        """{name: total seconds} of every timer (the global one only if asked)."""
        now = self._clock()
        return {
            name: self._elapsed(entry, now)
            for name, entry in self._timers.items()
            if include_global or name != self.GLOBAL
        }

    def lap_all(self, step: int) -> dict[str, float]:
        """Checkpoints every timer at agent step ``step``; returns {name: seconds spent
        since the previous lap} for all timers, the global one under ``"global"``."""
        now = self._clock()
        laps: dict[str, float] = {}
        for name, entry in self._timers.items():
            total = self._elapsed(entry, now)
            entry.last_lap = total - entry.lap_mark
            entry.lap_mark = total
            laps[name] = entry.last_lap
        self._lap_steps = step - self._lap_step
        self._lap_step = step
        return laps

    def last_lap(self, name: str | None = None) -> float:
        """Seconds ``name`` (global when None) spent in the most recent lap."""
        entry = self._timers.get(self.GLOBAL if name is None else name)
        return 0.0 if entry is None else entry.last_lap

    def lap_steps(self) -> int:
        """Agent steps covered by the most recent lap."""
        return self._lap_steps

    def rate(self, step: int) -> float:
        """Steps per second since the resume baseline (the start, without one); 0 when
        no time has passed."""
        seconds = self.elapsed() - self._base_elapsed
        return (step - self._base_step) / seconds if seconds > 0 else 0.0

    # ---- resume ----------------------------------------------------------------------

    def set_resume_baseline(self, step: int) -> None:
        """Marks now and agent step ``step`` as the point training resumed from: rates
        and the next lap count steps and seconds from here (time before it, such as
        start-up, is in no lap)."""
        now = self._clock()
        for entry in self._timers.values():
            entry.lap_mark = self._elapsed(entry, now)
        self._base_step = step
        self._base_elapsed = self._timers[self.GLOBAL].lap_mark
        self._lap_step = step

    def state_dict(self) -> dict[str, Any]:
        """Plain data to checkpoint: every timer's total seconds and the last lap step."""
        return {"elapsed": self.all_elapsed(include_global=True), "step": self._lap_step}

    def load_state_dict(self, state: Mapping[str, Any], *, resume_step: int | None = None) -> None:
        """Restores totals from :meth:`state_dict` (running timers keep running, on top
        of the restored totals) and sets the resume baseline at ``resume_step`` (the
        checkpoint's step when None)."""
        now = self._clock()
        for name, seconds in dict(state.get("elapsed", {})).items():
            entry = self._timers.get(name)
            if entry is None:
                entry = self._timers[name] = _Entry()
            entry.total = float(seconds)
            if entry.started is not None:
                entry.started = now
            entry.last_lap = 0.0
        step = int(state.get("step", 0)) if resume_step is None else resume_step
        self.set_resume_baseline(step)

    def reset(self) -> None:
        """Forgets every timer, lap and baseline, and restarts the global timer."""
        self._timers.clear()
        self._lap_step = self._lap_steps = self._base_step = 0
        self._base_elapsed = 0.0
        self.start(self.GLOBAL)


@dataclass(frozen=True)
class TimingInfo:
    """What :func:`compute_timing_stats` measured at one epoch."""

    wall_time: float  # global seconds, restored totals included -> metric/total_time
    train_time: float  # _rollout + _train seconds -> metric/train_time
    epoch_steps: int  # agent steps in this lap
    epoch_steps_per_second: float  # -> overview/sps, overview/epoch_steps_per_second
    steps_per_second: float  # since the resume baseline -> overview/steps_per_second
    timing_stats: dict[str, float] = field(default_factory=dict)  # timing_* keys


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def compute_timing_stats(timer: Stopwatch, agent_step: int) -> TimingInfo:
    """Laps ``timer`` at ``agent_step`` and returns the epoch's timing figures.

    Keys (every ratio is 0 when its denominator is <= 0):
    ``timing_per_epoch/frac/<op>`` (lap seconds / lap wall seconds),
    ``timing_per_epoch/msec/<op>``, ``timing_per_epoch/sps`` (lap steps / lap wall),
    ``timing_cumulative/frac/<op>`` (total seconds / wall), ``timing_cumulative/sps``
    (steps per second since the resume baseline). ``<op>`` is every timer but the
    global one.

    Example:
        >>> now = [0.0]
        >>> sw = Stopwatch(clock=lambda: now[0])
        >>> with sw("_train"):
        ...     now[0] = 1.5
        >>> now[0] = 2.0
        >>> info = compute_timing_stats(sw, agent_step=1000)
        >>> info.epoch_steps_per_second, info.timing_stats["timing_per_epoch/frac/_train"]
        (500.0, 0.75)
    """
    laps = timer.lap_all(agent_step)
    lap_wall = laps.pop(Stopwatch.GLOBAL, 0.0)
    totals = timer.all_elapsed()
    wall = timer.elapsed()
    epoch_steps = timer.lap_steps()
    epoch_sps = _ratio(epoch_steps, lap_wall)
    sps = timer.rate(agent_step)
    stats: dict[str, float] = {}
    for op, seconds in laps.items():
        stats[f"timing_per_epoch/frac/{op}"] = _ratio(seconds, lap_wall)
    for op, seconds in laps.items():
        stats[f"timing_per_epoch/msec/{op}"] = seconds * 1000.0
    stats["timing_per_epoch/sps"] = epoch_sps
    for op, seconds in totals.items():
        stats[f"timing_cumulative/frac/{op}"] = _ratio(seconds, wall)
    stats["timing_cumulative/sps"] = sps
    return TimingInfo(
        wall_time=wall,
        train_time=totals.get("_rollout", 0.0) + totals.get("_train", 0.0),
        epoch_steps=epoch_steps,
        epoch_steps_per_second=epoch_sps,
        steps_per_second=sps,
        timing_stats=stats,
    )
