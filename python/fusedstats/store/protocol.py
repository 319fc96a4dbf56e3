"""What every stats store offers (the embedded SQL store and the HTTP client alike), and
the errors they raise. Light: importing it loads no database or HTTP library."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

#: Environment variable with the server's write token (server and client both read it).
TOKEN_ENV = "FUSEDSTATS_SERVER_TOKEN"
#: Environment variable naming a file whose first line is that token.
TOKEN_FILE_ENV = "FUSEDSTATS_SERVER_TOKEN_FILE"
#: Environment variable with the server's read-only token (and one naming its file).
READ_TOKEN_ENV = "FUSEDSTATS_SERVER_READ_TOKEN"
READ_TOKEN_FILE_ENV = "FUSEDSTATS_SERVER_READ_TOKEN_FILE"
#: The status a new training run has.
RUNNING = "running"
#: Longest status string (characters).
MAX_STATUS_LENGTH = 64


class StatsStoreError(RuntimeError):
    """A store refused or failed a request (the message says which and why)."""


class RunNotFoundError(StatsStoreError, LookupError):
    """The training run named in a request does not exist."""

    def __init__(self, run_id: UUID | str) -> None:
        super().__init__(f"run_id {run_id}: no such training run")
        self.run_id = run_id


class SchemaVersionError(StatsStoreError):
    """The database was written by a newer fusedstats than this one."""


@runtime_checkable
class StatsStore(Protocol):
    """A stats store: training runs, their epochs and statuses, and every reported payload.

    Results are plain dicts: a run has ``id`` (UUID), ``name``, ``url``, ``description``,
    ``tags``, ``status``, ``created_at`` and ``updated_at`` (ISO 8601, UTC); an epoch
    ``id`` (UUID), ``run_id``, ``start_training_epoch``, ``end_training_epoch``,
    ``attributes`` and ``created_at``. NaN and +-Inf payload values come back as stored.
    """

    def create_training_run(
        self,
        name: str,
        url: str,
        description: str,
        tags: list[str],
        *,
        run_id: UUID | None = None,
    ) -> dict[str, Any]: ...

    def create_epoch(
        self,
        run_id: UUID,
        start_training_epoch: int,
        end_training_epoch: int,
        attributes: dict[str, Any],
        *,
        epoch_id: UUID | None = None,
    ) -> dict[str, Any]: ...

    def update_training_run_status(self, run_id: UUID, status: str) -> dict[str, Any] | None: ...

    def record_metrics(
        self,
        run_id: UUID,
        step: int,
        payload: Mapping[str, float],
        *,
        epoch: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any] | None: ...

    def list_runs(self) -> list[dict[str, Any]]: ...

    def get_run(self, run_id: UUID) -> dict[str, Any] | None: ...

    def epochs(self, run_id: UUID) -> list[dict[str, Any]]: ...

    def metric_keys(self, run_id: UUID) -> list[str]: ...

    def metric_series(self, run_id: UUID, key: str) -> list[tuple[int, float]]: ...

    def payloads(self, run_id: UUID) -> list[dict[str, Any]]: ...

    def flush(self, timeout_s: float | None = None) -> bool: ...

    def close(self) -> None: ...
