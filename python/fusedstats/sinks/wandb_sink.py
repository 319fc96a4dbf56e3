"""WandbSink: payloads to a W&B run, stepped by the trainer's agent step."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .base import float_payload

logger = logging.getLogger("fusedstats.sinks")

#: Every metric is plotted against this key (Metta's convention).
STEP_METRIC = "metric/agent_step"


class WandbSink:
    """Logs each payload with ``run.log(payload, step=step)``.

    ``run`` is a ``wandb`` Run (or anything with its ``log``/``define_metric``); this
    module never imports ``wandb`` itself. With ``define_metrics`` the constructor
    declares :data:`STEP_METRIC` and makes it the x-axis of every metric (``"*"``); a
    run that refuses either declaration is logged at WARNING and used as it is.
    Values are sent as floats (NaN and Inf included, W&B takes them); values that are
    not numbers are left out and counted in :attr:`dropped_by_key`.

    The run belongs to the caller: :meth:`close` does not finish it, and :meth:`flush`
    has nothing to do (W&B streams what ``log`` hands it from its own process).
    """

    name = "wandb"

    def __init__(self, run: Any, *, define_metrics: bool = True) -> None:
        self.run = run
        self.dropped_by_key: dict[str, int] = {}
        if define_metrics:
            self._define(STEP_METRIC)
            self._define("*", step_metric=STEP_METRIC)

    def _define(self, name: str, **options: Any) -> None:
        try:
            self.run.define_metric(name, **options)
        except Exception:
            logger.warning("wandb: define_metric(%r, %r) failed", name, options, exc_info=True)

    def write(self, payload: Mapping[str, float], *, step: int, epoch: int) -> None:
        floats, dropped = float_payload(payload)
        for key in dropped:
            self.dropped_by_key[key] = self.dropped_by_key.get(key, 0) + 1
        self.run.log(floats, step=int(step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
