"""Database URLs and engines: SQLite set up for several writing processes, PostgreSQL as is.

SQLite, several processes on one file:

- WAL journal: readers never block the writer, nor the writer them.
- Write transactions start with ``BEGIN IMMEDIATE``: the write lock is taken at the
  start, where SQLite's busy handler waits for it (``busy_timeout``). A deferred
  transaction that upgrades from read to write mid-way fails at once with
  "database is locked" when another process committed meanwhile, with no waiting.
- ``synchronous=NORMAL``: in WAL mode a process crash loses nothing committed; only
  a power loss may lose the last transactions, which is fine for training statistics.
- What still ends in "database is locked" or "busy" (a lock held past the busy
  timeout) is retried with backoff by :func:`write_transaction`, up to a deadline.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

T = TypeVar("T")

#: The file a directory target of :func:`database_url` stands for.
DEFAULT_DB_NAME = "stats.db"
#: Execution option marking a read-only transaction (a plain deferred BEGIN in SQLite).
READ_ONLY = "fusedstats_read_only"
#: Constraint violations retried (a concurrent writer inserted the same row first).
_INTEGRITY_RETRIES = 3


def database_url(target: str | os.PathLike[str]) -> str:
    """The SQLAlchemy URL of a store target: a URL is kept (``postgresql://`` gets the
    psycopg driver); an existing directory, or a path ending in a separator, means
    ``<dir>/stats.db``; any other path is the SQLite file itself (its parent created).

    Example:
        >>> database_url("postgresql://u@127.0.0.1/db")
        'postgresql+psycopg://u@127.0.0.1/db'
        >>> import tempfile; d = tempfile.mkdtemp()
        >>> database_url(d) == f"sqlite:///{d}/stats.db"
        True
    """
    text = os.fspath(target)
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme in ("postgresql", "postgres"):
            return f"postgresql+psycopg://{rest}"
        return text
    path = Path(text).expanduser()
    if path.is_dir() or text.endswith(("/", os.sep)):
        path = path / DEFAULT_DB_NAME
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def make_engine(url: str, *, busy_timeout_s: float) -> sa.Engine:
    """An engine for ``url``; for SQLite, set up as the module doc says."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    in_memory = parsed.database in (None, "", ":memory:")
    if in_memory:  # one connection shared by every thread, or each would see its own db
        engine = sa.create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        engine = sa.create_engine(parsed, connect_args={"timeout": busy_timeout_s})

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver: SQLAlchemy's "begin" event below issues BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _locked(error: sa.exc.OperationalError) -> bool:
    text = str(error.orig).lower()
    return "locked" in text or "busy" in text


class Transactions:
    """Read and write transactions on one engine, with the retries writes need.

    In one process, SQLite writes also take a thread lock first: threads then queue on
    it rather than on SQLite's busy handler, which sleeps in steps of up to 100 ms.
    """

    def __init__(self, engine: sa.Engine, *, busy_timeout_s: float) -> None:
        self.engine = engine
        self.busy_timeout_s = busy_timeout_s
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if is_sqlite(engine) else contextlib.nullcontext()
        )

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read-only transaction (one consistent snapshot)."""
        with self.engine.connect() as plain:
            conn = plain.execution_options(**{READ_ONLY: True})
            with conn.begin():
                yield conn

    def write(self, work: Callable[[sa.Connection], T]) -> T:
        """``work(conn)`` in one write transaction, committed; run again from the start
        when SQLite reports a lock (until ``busy_timeout_s`` has passed) or a unique
        constraint was violated by a concurrent writer (a few times)."""
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.01
        conflicts = 0
        while True:
            try:
                with self._write_lock, self.engine.begin() as conn:
                    return work(conn)
            except sa.exc.OperationalError as error:
                if not _locked(error) or time.monotonic() >= deadline:
                    raise
            except sa.exc.IntegrityError:
                conflicts += 1
                if conflicts > _INTEGRITY_RETRIES:
                    raise
            time.sleep(delay * (0.5 + random.random()))  # jitter: writers do not re-collide
            delay = min(delay * 2, 0.5)
