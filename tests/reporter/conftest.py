"""Fixtures of the reporter tests: a clock the test moves, and reporters that are always
finalized (so no sink thread outlives its test)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fusedstats.reporter import StatsReporter, StatsReporterConfig, Stopwatch


class FakeClock:
    """A clock that only moves when told: ``clock.now = 6.0`` or ``clock.advance(2)``."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stopwatch(clock: FakeClock) -> Stopwatch:
    return Stopwatch(clock=clock)


@pytest.fixture
def make_reporter() -> Iterator[Callable[..., StatsReporter]]:
    """``make_reporter(**config fields, stats_client=, wandb_run=, extra_sinks=)``; quiet
    by default (no W&B, no console)."""
    made: list[StatsReporter] = []

    def make(
        stats_client: Any = None,
        wandb_run: Any = None,
        extra_sinks: tuple[Any, ...] = (),
        **fields: Any,
    ) -> StatsReporter:
        fields.setdefault("report_to_wandb", False)
        fields.setdefault("report_to_console", False)
        reporter = StatsReporter(
            StatsReporterConfig(**fields),
            stats_client=stats_client,
            wandb_run=wandb_run,
            extra_sinks=extra_sinks,
        )
        made.append(reporter)
        return reporter

    yield make
    for reporter in made:
        reporter.finalize()
