"""The store's tables (SQLAlchemy Core), and the one function that creates or migrates them.

Layout, and why:

- ``fusedstats_metric_keys`` is a per-run key dictionary: a payload's 1,500 keys are
  stored once per run, and each value row carries a small integer instead of its name.
- ``fusedstats_metric_values`` is keyed ``(payload_id, key_id)`` and, in SQLite, has no
  rowid: a payload's values are one contiguous append at the right edge of one B-tree
  (about 6 pages of 4 KiB for 1,500 keys). A table clustered by key instead would
  touch one leaf page per key, 1,500 pages per commit, each written whole to the WAL.
- ``metric_series`` is still an indexed query: ``payloads (run_id, step)`` gives the
  run's payloads in step order, and each value is one primary-key probe.
- ``fusedstats_payloads`` has ``UNIQUE (run_id, idempotency_key)``: a write repeated
  with its key is stored once (NULL keys never collide, in SQLite and PostgreSQL).
- Ids of runs and epochs are UUIDs (the client may choose them, so that a client can
  spool a run it created while the server was away); payload and key ids are integers.
- A NaN value is NULL (see :mod:`fusedstats.store.values`); times are float seconds.

Tables are prefixed ``fusedstats_`` so that a shared PostgreSQL database can hold them
beside others. ``fusedstats_meta`` records the schema version.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from .protocol import MAX_STATUS_LENGTH, SchemaVersionError
from .values import MAX_IDEMPOTENCY_KEY_LENGTH, MAX_KEY_LENGTH

#: The schema this fusedstats writes; older databases are migrated up to it on open.
SCHEMA_VERSION = 1
#: PostgreSQL advisory-lock id held while the schema is created or migrated.
_PG_SCHEMA_LOCK = 0x66757365  # "fuse"

# SQLite's rowid alias must be declared INTEGER, not BIGINT, to autoincrement.
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

meta = sa.Table(
    "fusedstats_meta",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

runs = sa.Table(
    "fusedstats_runs",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("tags", sa.JSON(), nullable=False),
    sa.Column("status", sa.String(MAX_STATUS_LENGTH), nullable=False),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Column("updated_at", sa.Double(), nullable=False),
    sa.Index("fusedstats_runs_created", "created_at"),
)

epochs = sa.Table(
    "fusedstats_epochs",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("run_id", sa.Uuid(), sa.ForeignKey(runs.c.id), nullable=False),
    sa.Column("start_training_epoch", sa.BigInteger(), nullable=False),
    sa.Column("end_training_epoch", sa.BigInteger(), nullable=False),
    sa.Column("attributes", sa.JSON(), nullable=False),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Index("fusedstats_epochs_run", "run_id", "start_training_epoch"),
)

metric_keys = sa.Table(
    "fusedstats_metric_keys",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Uuid(), sa.ForeignKey(runs.c.id), nullable=False),
    sa.Column("name", sa.String(MAX_KEY_LENGTH), nullable=False),
    sa.UniqueConstraint("run_id", "name", name="fusedstats_metric_keys_run_name"),
)

payloads = sa.Table(
    "fusedstats_payloads",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Uuid(), sa.ForeignKey(runs.c.id), nullable=False),
    sa.Column("step", sa.BigInteger(), nullable=False),
    sa.Column("epoch", sa.BigInteger(), nullable=True),
    sa.Column("idempotency_key", sa.String(MAX_IDEMPOTENCY_KEY_LENGTH), nullable=True),
    sa.Column("created_at", sa.Double(), nullable=False),
    sa.Index("fusedstats_payloads_run_step", "run_id", "step"),
    sa.UniqueConstraint("run_id", "idempotency_key", name="fusedstats_payloads_idempotency"),
)

metric_values = sa.Table(
    "fusedstats_metric_values",
    metadata,
    # No foreign keys here: the store writes a payload's row and its values in one
    # transaction, with ids from the run's key dictionary. In PostgreSQL the two
    # checks per value (3,000 trigger calls a payload) halved the payloads per second.
    sa.Column("payload_id", _Id, primary_key=True),
    sa.Column("key_id", _Id, primary_key=True),
    sa.Column("value", sa.Double(), nullable=True),  # NULL is NaN
    sqlite_with_rowid=False,
)

#: ``MIGRATIONS[v]`` turns a version-``v`` database into version ``v + 1`` (none yet:
#: version 1 is the first). Each runs inside the transaction that holds the schema lock.
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {}


def ensure_schema(conn: sa.Connection) -> int:
    """Creates the tables in an empty database, or migrates an older one; returns the
    version found (0: none). Call inside a write transaction: in SQLite it holds the
    write lock, in PostgreSQL an advisory lock is taken here, so processes opening the
    same new database at once create it once.

    Raises:
        SchemaVersionError: the database is newer than this fusedstats.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK)))
    if not sa.inspect(conn).has_table(meta.name):
        metadata.create_all(conn)
        conn.execute(sa.insert(meta).values(name="schema_version", value=str(SCHEMA_VERSION)))
        return 0
    found = conn.execute(
        sa.select(meta.c.value).where(meta.c.name == "schema_version")
    ).scalar_one_or_none()
    version = int(found) if found is not None else 0
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"schema_version {version} of this database is newer than this fusedstats "
            f"understands ({SCHEMA_VERSION}); upgrade fusedstats"
        )
    for step in range(version, SCHEMA_VERSION):
        MIGRATIONS[step](conn)
    if version < SCHEMA_VERSION:
        metadata.create_all(conn)  # tables a migration did not create itself
        conn.execute(sa.delete(meta).where(meta.c.name == "schema_version"))
        conn.execute(sa.insert(meta).values(name="schema_version", value=str(SCHEMA_VERSION)))
    return version
