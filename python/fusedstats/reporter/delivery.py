"""The reporter's sinks: which ones a config asks for, all behind one SinkRunner.

Sink I/O runs on the runner's background threads (one per sink), so ``report_epoch``
only queues a payload. The W&B run may be set after construction
(``reporter.wandb_run = run``): each payload goes to the run that was current when it
was *reported* (delivery comes later, by which time the run may have changed), and the
``WandbSink`` of a run is made on the runner's thread, so ``define_metric`` never runs in
the training loop either.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .config import StatsReporterConfig

if TYPE_CHECKING:
    from fusedstats.sinks import Sink, SinkRunner

logger = logging.getLogger("fusedstats.reporter")
_UNBOUND = object()


class CurrentRunWandbSink:
    """A W&B sink whose run is chosen per payload: the run :meth:`bind` recorded for
    that (step, epoch) when it was reported (None: no run then, nothing written), else
    ``current_run()``. A new run gets a new ``WandbSink``, which declares
    ``metric/agent_step`` as the step metric of every key."""

    name = "wandb"

    def __init__(self, current_run: Callable[[], Any], remember: int = 1024) -> None:
        self._current_run = current_run
        # (step, epoch) -> run at report time; bounded, oldest dropped first. Keyed by
        # (step, epoch) rather than queued in order because a retried write comes again.
        self._bound: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self._remember = remember
        self._run: Any = None
        self._sink: Sink | None = None

    def bind(self, run: Any, *, step: int, epoch: int) -> None:
        """Records that the payload of (step, epoch) belongs to ``run`` (the training
        thread calls this before submitting it)."""
        self._bound[(step, epoch)] = run
        while len(self._bound) > self._remember:
            self._bound.popitem(last=False)

    def write(self, payload: Mapping[str, float], *, step: int, epoch: int) -> None:
        # One get(): the training thread may evict the key between two lookups.
        run = self._bound.get((step, epoch), _UNBOUND)
        if run is _UNBOUND:
            run = self._current_run()
        if run is None:
            return
        if run is not self._run or self._sink is None:
            from fusedstats.sinks import WandbSink

            if self._sink is not None:
                self._sink.flush()
            self._sink = WandbSink(run)
            self._run = run
        self._sink.write(payload, step=step, epoch=epoch)

    def flush(self) -> None:
        if self._sink is not None:
            self._sink.flush()

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None
            self._run = None


def build_sinks(
    config: StatsReporterConfig,
    current_run: Callable[[], Any],
    extra_sinks: Sequence[Sink],
    *,
    stats_client: Any = None,
    stats_run_id: UUID | None = None,
) -> list[Sink]:
    """The sinks ``config`` asks for, then ``extra_sinks``. A sink that cannot be made
    (an unwritable JSONL path, a missing ``tensorboard`` package) is left out with a
    logged warning.

    A :class:`~fusedstats.sinks.StatsStoreSink` is added when ``report_to_stats_client``
    and the stats client has ``record_metrics`` (the stores of
    :func:`fusedstats.store.connect`) and its training run was created (``stats_run_id``):
    every payload then goes to the store too, from the sink thread."""
    from fusedstats import sinks

    out: list[Sink] = []
    if config.report_to_wandb:
        out.append(CurrentRunWandbSink(current_run))
    if config.jsonl_path is not None:
        try:
            out.append(sinks.JsonlSink(config.jsonl_path))
        except Exception as e:  # an I/O problem must not stop training
            logger.warning("JSONL sink for %r not created: %r", config.jsonl_path, e)
    if config.report_to_console:
        try:
            if config.console_keys is None:
                out.append(sinks.ConsoleSink())
            else:
                out.append(sinks.ConsoleSink(keys=config.console_keys))
        except Exception as e:
            logger.warning("console sink not created: %r", e)
    if config.tensorboard_dir is not None:
        try:
            out.append(sinks.TensorBoardSink(config.tensorboard_dir))
        except Exception as e:
            logger.warning("TensorBoard sink for %r not created: %r", config.tensorboard_dir, e)
    if (
        config.report_to_stats_client
        and stats_run_id is not None
        and callable(getattr(stats_client, "record_metrics", None))
    ):
        out.append(sinks.StatsStoreSink(stats_client, stats_run_id))
    out.extend(extra_sinks)
    return out


def build_runner(config: StatsReporterConfig, sink_list: list[Sink]) -> SinkRunner:
    """One runner for ``sink_list``, with the config's queues, timeouts and breakers."""
    from fusedstats.sinks import SinkRunner

    return SinkRunner(
        sink_list,
        queue_size=config.sink_queue_size,
        timeout_s=config.sink_timeout_s,
        retries=config.sink_retries,
        backoff_s=config.sink_backoff_s,
        spool_dir=config.spool_dir,
        breaker_failures=config.sink_breaker_failures,
        breaker_cooldown_s=config.sink_breaker_cooldown_s,
    )
