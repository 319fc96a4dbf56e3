"""StatsStoreSink: the reporter's payloads into a stats store (embedded, or a server)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .base import float_payload

if TYPE_CHECKING:
    from fusedstats.store import StatsStore


def idempotency_key(run_id: UUID, step: int, epoch: int) -> str:
    """The key a payload of ``run_id`` at (step, epoch) is stored under, the same on every
    attempt: a retry, a replay from the runner's spool, a restarted trainer.

    Example:
        >>> from uuid import UUID
        >>> idempotency_key(UUID(int=1), step=640, epoch=10)
        'sink/00000000-0000-0000-0000-000000000001/640/10'
    """
    return f"sink/{run_id}/{int(step)}/{int(epoch)}"


class StatsStoreSink:
    """Writes each payload to a stats store with ``record_metrics``, on the sink thread.

    ``client`` is any store of :func:`fusedstats.store.connect`: an
    :class:`~fusedstats.store.SqlStatsStore` (each write one transaction) or an
    :class:`~fusedstats.store.HttpStatsClient` (which spools while its server is away
    and returns at once). Every payload's idempotency key comes from (run, step,
    epoch), so a payload written twice (a retry after a timeout, a replay of the
    runner's spool) is stored once. Values that are not numbers are left out and
    counted in :attr:`dropped_by_key`. :meth:`flush` and :meth:`close` never wait for a
    server: they only ask the client to try its spool now. The client is the caller's
    to close, unless ``close_client``.

    Example:
        >>> from uuid import uuid4
        >>> from fusedstats.store import SqlStatsStore
        >>> store = SqlStatsStore("sqlite://")
        >>> run = store.create_training_run("demo", "", "", [])
        >>> sink = StatsStoreSink(store, run["id"])
        >>> sink.write({"overview/sps": 1500.0, "note": "text"}, step=64, epoch=1)
        >>> sink.write({"overview/sps": 1500.0}, step=64, epoch=1)  # the same again
        >>> store.metric_series(run["id"], "overview/sps"), dict(sink.dropped_by_key)
        ([(64, 1500.0)], {'note': 1})
        >>> sink.close(); store.close()
    """

    name = "stats_store"

    def __init__(self, client: StatsStore, run_id: UUID, *, close_client: bool = False) -> None:
        self.client = client
        self.run_id = run_id
        self.close_client = close_client
        self.dropped_by_key: Counter[str] = Counter()

    def write(self, payload: Mapping[str, float], *, step: int, epoch: int) -> None:
        floats, dropped = float_payload(payload)
        self.client.record_metrics(
            self.run_id,
            int(step),
            floats,
            epoch=int(epoch),
            idempotency_key=idempotency_key(self.run_id, step, epoch),
        )
        self.dropped_by_key.update(dropped)

    def flush(self) -> None:
        flush: Any = getattr(self.client, "flush", None)
        if callable(flush):
            flush(0.0)

    def close(self) -> None:
        self.flush()
        if self.close_client:
            self.client.close()
