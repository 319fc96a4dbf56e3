"""The stats-server client a reporter may talk to, and guarded calls to it.

A stats client is optional and remote: whatever it raises becomes a logged warning
(never a Python warning, never an exception in the training loop).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from uuid import UUID

logger = logging.getLogger("fusedstats.reporter")


class StatsClient(Protocol):
    """What the reporter calls on a stats store or server; responses carry an ``id``
    (an attribute or a mapping key; a UUID or its string)."""

    def create_training_run(
        self, name: str, url: str, description: str, tags: list[str]
    ) -> Any: ...

    def create_epoch(
        self,
        run_id: UUID,
        start_training_epoch: int,
        end_training_epoch: int,
        attributes: dict[str, Any],
    ) -> Any: ...

    def update_training_run_status(self, run_id: UUID, status: str) -> Any: ...


def guarded(what: str, call: Callable[..., Any], /, **kwargs: Any) -> Any:
    """``call(**kwargs)``, or None with a logged warning naming ``what`` if it raises."""
    try:
        return call(**kwargs)
    except Exception as e:  # a remote store may fail in any way; training goes on
        logger.warning("stats client: %s failed: %r", what, e)
        return None


def response_id(what: str, response: Any) -> UUID | None:
    """The UUID in a client's response (``.id`` or ``["id"]``), or None (warned) when
    there is none or it is not a UUID."""
    if response is None:
        return None
    raw = response.get("id") if isinstance(response, Mapping) else getattr(response, "id", None)
    if isinstance(raw, UUID):
        return raw
    try:
        return UUID(str(raw))
    except ValueError:
        logger.warning("stats client: %s returned no usable id: %r", what, response)
        return None
