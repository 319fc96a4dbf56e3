"""Fixtures of the store tests: a database of each backend, a real server, stores that
are always closed."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.store.support import ServerProcess

from fusedstats.store import SqlStatsStore

POSTGRES_ENV = "FUSEDSTATS_TEST_POSTGRES_URL"


def reset_postgres(url: str) -> None:
    """Drops the store's tables, as the database has them (reflected: a test may have
    changed them): every PostgreSQL test starts from an empty database."""
    import sqlalchemy as sa

    from fusedstats.store.engine import database_url

    engine = sa.create_engine(database_url(url))
    try:
        found = sa.MetaData()
        found.reflect(engine, only=lambda name, _: name.startswith("fusedstats_"))
        found.drop_all(engine)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: an SQLite file, or the PostgreSQL server of
    ``$FUSEDSTATS_TEST_POSTGRES_URL`` (the test is skipped without it)."""
    if request.param == "sqlite":
        return str(tmp_path / "stats.db")
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL server to test against")
    reset_postgres(url)
    return url


@pytest.fixture
def open_store() -> Iterator[Callable[..., SqlStatsStore]]:
    """``open_store(url)``: an SqlStatsStore closed after the test."""
    opened: list[SqlStatsStore] = []

    def make(url: str, **kwargs: Any) -> SqlStatsStore:
        store = SqlStatsStore(url, **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(db_url: str, open_store: Callable[..., SqlStatsStore]) -> SqlStatsStore:
    return open_store(db_url)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``make_server(db, port=None, **options)``: a server subprocess (not started),
    killed after the test whatever happened."""
    servers: list[ServerProcess] = []

    def make(db: str | os.PathLike[str], **kwargs: Any) -> ServerProcess:
        server = ServerProcess(db, log_dir=tmp_path, **kwargs)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.kill()
