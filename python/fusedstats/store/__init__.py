"""The stats store: training runs, epochs, statuses and every reported payload.

Three ways to reach one, with the same methods (:class:`StatsStore`):

- :class:`SqlStatsStore`, embedded (the default): an SQLite file in the run directory,
  or PostgreSQL through a URL;
- a server sharing a store between trainers: ``fusedstats serve --db URL --port N``
  (:mod:`fusedstats.store.server`);
- :class:`HttpStatsClient`, that server's client: timeouts, retries, idempotent writes,
  and a disk spool that keeps writes while the server is away.

:func:`connect` picks one from a target. Importing this package loads neither
SQLAlchemy nor httpx; each is imported when a store that needs it is made. The schema,
the HTTP API and what the client and server promise: docs/store.md.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .protocol import (
    TOKEN_ENV,
    RunNotFoundError,
    SchemaVersionError,
    StatsStore,
    StatsStoreError,
)

if TYPE_CHECKING:
    from .client import HttpStatsClient
    from .sql import SqlStatsStore

__all__ = [
    "TOKEN_ENV",
    "HttpStatsClient",
    "RunNotFoundError",
    "SchemaVersionError",
    "SqlStatsStore",
    "StatsStore",
    "StatsStoreError",
    "connect",
]


def connect(
    target: str | os.PathLike[str],
    *,
    token: str | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    timeout_s: float = 5.0,
    write_behind: bool = True,
) -> StatsStore:
    """The store ``target`` names.

    Args:
        target: ``http://...`` or ``https://...``: a stats server
            (:class:`HttpStatsClient`); an SQLAlchemy URL (``sqlite:///...``,
            ``postgresql+psycopg://...``) or a path: :class:`SqlStatsStore` (a
            directory means ``<dir>/stats.db``).
        token: the server's write token (default: the ``FUSEDSTATS_SERVER_TOKEN``
            environment variable). Servers only.
        spool_dir: where a server client keeps writes while the server is away
            (default: ``FUSEDSTATS_SPOOL_DIR`` or ``~/.cache/fusedstats/spool``).
        timeout_s: a server client's time limit per call; an SQL store's wait for
            another process's lock is ``max(timeout_s, 30)``.
        write_behind: a server client's ``record_metrics`` returns once the payload is
            in its disk spool, which a background thread sends in batches (what lets a
            reporter's sink keep up with 100 payloads/s; see ``bench/bench_store.py``).

    Example:
        >>> import tempfile
        >>> store = connect(tempfile.mkdtemp())
        >>> type(store).__name__, store.url.endswith("/stats.db")
        ('SqlStatsStore', True)
        >>> store.close()
    """
    text = os.fspath(target)
    if text.startswith(("http://", "https://")):
        from .client import HttpStatsClient

        return HttpStatsClient(
            text, token=token, spool_dir=spool_dir, timeout_s=timeout_s, write_behind=write_behind
        )
    from .sql import SqlStatsStore

    return SqlStatsStore(text, busy_timeout_s=max(timeout_s, 30.0))


def __getattr__(name: str) -> Any:
    # The store classes are imported on first use: each pulls in SQLAlchemy or httpx.
    if name == "SqlStatsStore":
        from .sql import SqlStatsStore

        return SqlStatsStore
    if name == "HttpStatsClient":
        from .client import HttpStatsClient

        return HttpStatsClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
