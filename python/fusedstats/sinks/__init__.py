"""Sinks: where the reporter's payloads go (W&B, TensorBoard, JSONL, console), and the runner that
delivers them off the training thread.

``import fusedstats.sinks`` does not import ``wandb``: :class:`WandbSink` takes a run
the caller created. What each sink writes, the runner's retries, breaker and spool, and
``finalize``'s delivery report: docs/reporter.md, "Sinks".
"""

from __future__ import annotations

from .base import Sink
from .console import ConsoleSink
from .jsonl import JsonlSink
from .runner import DeliveryReport, SinkDelivery, SinkRunner
from .spool import ReplayCount, replay_spool
from .stats_store import StatsStoreSink
from .tensorboard_sink import TensorBoardSink
from .wandb_sink import WandbSink

__all__ = [
    "ConsoleSink",
    "DeliveryReport",
    "JsonlSink",
    "ReplayCount",
    "Sink",
    "SinkDelivery",
    "SinkRunner",
    "StatsStoreSink",
    "TensorBoardSink",
    "WandbSink",
    "replay_spool",
]
