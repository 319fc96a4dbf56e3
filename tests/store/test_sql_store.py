"""The embedded store on a real database (SQLite file; PostgreSQL when configured)."""

from __future__ import annotations

import math
import sqlite3
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.store.support import PAYLOADS, same_payload, same_value

from fusedstats.store import (
    HttpStatsClient,
    RunNotFoundError,
    SchemaVersionError,
    SqlStatsStore,
    connect,
    schema,
)
from fusedstats.store.engine import database_url

STEPS = st.integers(-(2**63), 2**63 - 1)


def test_runs_epochs_and_statuses_round_trip(store):
    a = store.create_training_run("run-a", "https://wandb.ai/x/a", "first", ["cpu", "ppo"])
    b = store.create_training_run("run-b", "", "", [])
    assert isinstance(a["id"], uuid.UUID) and a["id"] != b["id"]
    assert (a["name"], a["url"], a["description"], a["tags"], a["status"]) == (
        "run-a",
        "https://wandb.ai/x/a",
        "first",
        ["cpu", "ppo"],
        "running",
    )
    first = store.create_epoch(a["id"], 0, 10, {"lr": 3e-4, "nested": {"n": [1, 2]}})
    second = store.create_epoch(a["id"], 10, 20, {})
    assert isinstance(first["id"], uuid.UUID) and first["run_id"] == a["id"]
    assert store.update_training_run_status(a["id"], "completed")["status"] == "completed"
    assert store.update_training_run_status(b["id"], "failed")["status"] == "failed"

    runs = {run["id"]: run for run in store.list_runs()}
    assert set(runs) == {a["id"], b["id"]}
    assert runs[a["id"]]["status"] == "completed"
    assert runs[a["id"]]["created_at"] == a["created_at"]
    assert runs[a["id"]]["updated_at"] >= a["updated_at"]  # ISO strings sort by time
    assert store.get_run(b["id"])["status"] == "failed"
    assert store.epochs(a["id"]) == [first, second]
    assert first["attributes"] == {"lr": 3e-4, "nested": {"n": [1, 2]}}
    assert store.epochs(b["id"]) == []


def test_payloads_round_trip_exactly_nan_and_inf_included(store):
    run = store.create_training_run("r", "", "", [])["id"]
    sent: list[tuple[int, int | None, dict[str, float]]] = []

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(payload=PAYLOADS, step=STEPS, epoch=st.none() | STEPS)
    def record(payload, step, epoch):
        result = store.record_metrics(run, step, payload, epoch=epoch)
        assert result["keys"] == len(payload) and result["duplicate"] is False
        sent.append((step, epoch, payload))

    record()
    stored = store.payloads(run)
    # By step, then by arrival for equal steps (sorted() is stable).
    expected = sorted(sent, key=lambda item: item[0])
    assert [(p["step"], p["epoch"]) for p in stored] == [(s, e) for s, e, _ in expected]
    for got, (_, _, payload) in zip(stored, expected, strict=True):
        assert same_payload(got["payload"], payload), (got["payload"], payload)
    keys = sorted({key for _, _, payload in sent for key in payload})
    assert store.metric_keys(run) == keys
    for key in keys[:10]:
        series = [(s, payload[key]) for s, _, payload in expected if key in payload]
        got_series = store.metric_series(run, key)
        assert [s for s, _ in got_series] == [s for s, _ in series]
        assert all(same_value(g, w) for (_, g), (_, w) in zip(got_series, series, strict=True))


def test_nonfinite_values_are_stored_as_the_schema_says(store):
    run = store.create_training_run("r", "", "", [])["id"]
    store.record_metrics(run, 1, {"nan": math.nan, "inf": math.inf, "-inf": -math.inf})
    with store.engine.connect() as conn:
        stored = dict(
            conn.execute(
                sa.select(schema.metric_keys.c.name, schema.metric_values.c.value).join(
                    schema.metric_values,
                    schema.metric_values.c.key_id == schema.metric_keys.c.id,
                )
            ).all()
        )
    assert stored == {"nan": None, "inf": math.inf, "-inf": -math.inf}  # NULL is NaN


def test_a_repeated_idempotency_key_is_stored_once(store):
    run = store.create_training_run("r", "", "", [])["id"]
    other = store.create_training_run("other", "", "", [])["id"]
    first = store.record_metrics(run, 5, {"a": 1.0}, epoch=1, idempotency_key="k")
    again = store.record_metrics(run, 6, {"a": 2.0, "b": 3.0}, epoch=2, idempotency_key="k")
    assert first["duplicate"] is False
    assert again["duplicate"] is True and (again["step"], again["epoch"]) == (5, 1)
    # Keys are per run; payloads without a key are never duplicates.
    assert store.record_metrics(other, 5, {"a": 1.0}, idempotency_key="k")["duplicate"] is False
    store.record_metrics(run, 7, {"a": 4.0})
    store.record_metrics(run, 7, {"a": 4.0})
    assert [(p["step"], p["payload"]) for p in store.payloads(run)] == [
        (5, {"a": 1.0}),
        (7, {"a": 4.0}),
        (7, {"a": 4.0}),
    ]
    assert store.metric_keys(run) == ["a"]  # b of the duplicate was never stored


def test_client_chosen_ids_make_creation_idempotent(store):
    run_id, epoch_id = uuid.uuid4(), uuid.uuid4()
    run = store.create_training_run("r", "u", "d", ["t"], run_id=run_id)
    assert run["id"] == run_id
    assert store.create_training_run("changed", "", "", [], run_id=run_id) == run
    epoch = store.create_epoch(run_id, 0, 1, {"a": 1}, epoch_id=epoch_id)
    assert store.create_epoch(run_id, 5, 6, {}, epoch_id=epoch_id) == epoch
    assert len(store.list_runs()) == 1 and len(store.epochs(run_id)) == 1


def test_unknown_runs(store):
    missing = uuid.uuid4()
    with pytest.raises(RunNotFoundError, match=str(missing)):
        store.create_epoch(missing, 0, 1, {})
    with pytest.raises(RunNotFoundError, match=str(missing)):
        store.record_metrics(missing, 0, {"a": 1.0})
    assert store.update_training_run_status(missing, "completed") is None
    assert store.get_run(missing) is None
    assert store.epochs(missing) == store.payloads(missing) == store.metric_keys(missing) == []
    assert store.metric_series(missing, "a") == []


@pytest.mark.parametrize(
    ("call", "error", "names"),
    [
        (lambda s, r: s.record_metrics(r, 0, {"loss": "low"}), TypeError, "payload['loss']"),
        (lambda s, r: s.record_metrics(r, 0, {"": 1.0}), ValueError, "payload key ''"),
        (lambda s, r: s.record_metrics(r, 0, {"x" * 513: 1.0}), ValueError, "payload key"),
        (lambda s, r: s.record_metrics(r, 0, {"a\x00b": 1.0}), ValueError, "payload key"),
        (lambda s, r: s.record_metrics(r, 0, {3: 1.0}), ValueError, "payload key 3"),
        (lambda s, r: s.record_metrics(r, 2**63, {}), ValueError, "step"),
        (lambda s, r: s.record_metrics(r, "7", {}), TypeError, "step"),
        (lambda s, r: s.record_metrics(r, 0, {}, epoch=1.5), TypeError, "epoch"),
        (lambda s, r: s.record_metrics(r, 0, {}, idempotency_key=""), ValueError, "idempotency"),
        (lambda s, r: s.record_metrics("nope", 0, {}), ValueError, "run_id"),
        (lambda s, r: s.update_training_run_status(r, "x" * 65), ValueError, "status"),
        (lambda s, r: s.create_epoch(r, 0, None, {}), TypeError, "end_training_epoch"),
        (lambda s, r: s.create_epoch(r, 0, 1, [1]), TypeError, "attributes"),
        (lambda s, r: s.create_training_run("n", "u", "d", "tag"), TypeError, "tags"),
        (lambda s, r: s.create_training_run(None, "u", "d", []), TypeError, "name"),
    ],
)
def test_errors_name_the_field_and_store_nothing(store, call, error, names):
    run = store.create_training_run("r", "", "", [])["id"]
    with pytest.raises(error, match=names.replace("[", r"\[").replace("]", r"\]")):
        call(store, run)
    assert store.payloads(run) == [] and store.epochs(run) == []
    assert len(store.list_runs()) == 1 and store.get_run(run)["status"] == "running"


def test_many_keys_share_one_dictionary_per_run(store):
    run = store.create_training_run("r", "", "", [])["id"]
    keys = [f"env_game/item_{i}" for i in range(1500)]
    for step in range(3):
        store.record_metrics(run, step, {key: step + i / 7 for i, key in enumerate(keys)})
    store.record_metrics(run, 3, {"new": 1.0, keys[0]: 9.0})
    with store.engine.connect() as conn:
        count = conn.execute(sa.select(sa.func.count()).select_from(schema.metric_keys)).scalar()
    assert count == 1501
    assert store.metric_series(run, keys[7]) == [(0, 1.0), (1, 2.0), (2, 3.0)]
    assert store.metric_series(run, keys[0]) == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 9.0)]
    assert store.metric_series(run, "new") == [(3, 1.0)]
    assert store.metric_series(run, "never") == []


def test_reopening_keeps_everything(db_url, open_store):
    first = open_store(db_url)
    run = first.create_training_run("r", "", "", [])["id"]
    first.record_metrics(run, 1, {"a": math.nan})
    first.close()
    again = open_store(db_url)
    assert [r["id"] for r in again.list_runs()] == [run]
    assert again.metric_series(run, "a")[0][0] == 1
    assert math.isnan(again.metric_series(run, "a")[0][1])
    # A key cached by nobody yet is found in the dictionary, not added twice.
    again.record_metrics(run, 2, {"a": 2.0})
    assert again.metric_keys(run) == ["a"]


def test_a_newer_schema_is_refused(db_url, open_store):
    open_store(db_url).close()
    engine = sa.create_engine(database_url(db_url))
    with engine.begin() as conn:
        conn.execute(
            sa.update(schema.meta)
            .where(schema.meta.c.name == "schema_version")
            .values(value=str(schema.SCHEMA_VERSION + 1))
        )
    engine.dispose()
    with pytest.raises(SchemaVersionError, match="schema_version"):
        SqlStatsStore(db_url)


def test_an_older_schema_is_migrated(db_url, open_store, monkeypatch):
    """A database of the current version meets a fusedstats one version newer, whose
    migration adds a column: it runs once, and the version is recorded."""
    open_store(db_url).close()
    ran = []

    def add_column(conn):
        ran.append(conn.dialect.name)
        conn.execute(sa.text("ALTER TABLE fusedstats_runs ADD COLUMN note VARCHAR(20)"))

    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.SCHEMA_VERSION + 1)
    monkeypatch.setitem(schema.MIGRATIONS, schema.SCHEMA_VERSION - 1, add_column)
    store = open_store(db_url)
    open_store(db_url)  # already migrated: nothing runs again
    assert len(ran) == 1
    with store.engine.connect() as conn:
        version = conn.execute(sa.select(schema.meta.c.value)).scalar()
        columns = {c["name"] for c in sa.inspect(conn).get_columns("fusedstats_runs")}
    assert version == str(schema.SCHEMA_VERSION) and "note" in columns


def test_sqlite_file_is_in_wal_mode(tmp_path):
    store = SqlStatsStore(tmp_path)
    store.create_training_run("r", "", "", [])
    store.close()
    with sqlite3.connect(tmp_path / "stats.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_connect_picks_the_store_from_the_target(tmp_path: Path):
    in_dir = connect(tmp_path)
    assert in_dir.url == f"sqlite:///{tmp_path / 'stats.db'}"
    in_dir.close()
    named = connect(tmp_path / "sub" / "mine.sqlite")
    assert named.url.endswith("/sub/mine.sqlite") and (tmp_path / "sub").is_dir()
    named.close()
    by_url = connect(f"sqlite:///{tmp_path / 'url.db'}")
    assert isinstance(by_url, SqlStatsStore)
    by_url.close()
    client = connect("http://127.0.0.1:9", spool_dir=tmp_path / "spool", token="t")
    assert isinstance(client, HttpStatsClient)
    client.close(timeout_s=0)
