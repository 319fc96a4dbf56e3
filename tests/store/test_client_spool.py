"""The server client's disk spool: writes made while the server is away are delivered
when it is back, in order and exactly once, also by a client started after a crash."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from tests.store.support import TOKEN, free_port

from fusedstats.store import HttpStatsClient
from fusedstats.store.spool import RequestSpool, spool_prefix

TRAINER = Path(__file__).with_name("_spooling_trainer.py")
URL = "http://127.0.0.1:1"


# ---- the spool file ------------------------------------------------------------------


def test_spool_survives_reopening_at_its_offset(tmp_path):
    spool = RequestSpool.claim(tmp_path, URL)
    for n in range(4):
        spool.append({"n": n})
    spool.pop()
    spool.pop()
    spool.close()
    again = RequestSpool.claim(tmp_path, URL)
    assert again.path == spool.path and again.pending == 2
    assert again.peek() == {"n": 2}
    again.pop()
    again.pop()
    assert again.pending == 0 and again.path.stat().st_size == 0  # emptied once delivered
    again.close()


def test_a_line_cut_short_by_a_crash_is_dropped(tmp_path, caplog):
    path = tmp_path / f"{spool_prefix(URL)}-0.jsonl"
    path.write_bytes(b'{"n":0}\nnot json\n{"n":1}\n{"n":')
    with caplog.at_level(logging.WARNING, logger="fusedstats.store"):
        spool = RequestSpool.claim(tmp_path, URL)
        assert spool.pending == 3
        assert spool.peek() == {"n": 0}
        spool.pop()
        assert spool.peek() == {"n": 1}  # the line that is not JSON is skipped
    assert spool.pending == 1
    assert "cut short" in caplog.text and "not a record" in caplog.text
    spool.close()


def test_live_spools_are_never_shared_and_orphans_are_adopted(tmp_path):
    a = RequestSpool.claim(tmp_path, URL)
    b = RequestSpool.claim(tmp_path, URL)
    assert a.path != b.path  # a live process holds each
    other_server = RequestSpool.claim(tmp_path, "http://127.0.0.1:2")
    a.append({"from": "a"})
    b.append({"from": "b"})
    other_server.append({"from": "other"})
    a.close()
    b.close()  # both "crashed" with a record left
    c = RequestSpool.claim(tmp_path, URL)
    assert c.pending == 2
    assert c.peek() == {"from": "a"}
    c.pop()
    assert c.peek() == {"from": "b"}
    c.close()
    assert other_server.pending == 1  # another server's spool is left alone
    other_server.close()


# ---- the client ----------------------------------------------------------------------


def test_writes_while_the_server_is_away_are_delivered_in_order_once(tmp_path, make_server):
    server = make_server(tmp_path / "db", port=free_port())
    client = HttpStatsClient(
        server.url, token=TOKEN, spool_dir=tmp_path / "spool", timeout_s=2, max_backoff_s=0.2
    )
    try:
        started = time.monotonic()
        run = client.create_training_run("away", "", "", ["t"])
        assert run["spooled"] is True and isinstance(run["id"], uuid.UUID)
        epoch = client.create_epoch(run["id"], 0, 10, {"k": 1})
        assert epoch["spooled"] is True
        for step in range(50):
            value = math.nan if step == 7 else step / 8
            result = client.record_metrics(run["id"], step, {"v": value}, epoch=step)
            assert result["spooled"] is True
        assert client.update_training_run_status(run["id"], "completed")["spooled"] is True
        # Only the first write tried the server (refused at once): the rest queued behind it.
        assert time.monotonic() - started < 2.0
        assert client.pending == 53 and client.counters["sent"] == 0

        server.start()
        assert client.flush(timeout_s=30)
        assert client.pending == 0 and client.counters["replayed"] == 53
        stored = client.payloads(run["id"])
        assert [p["step"] for p in stored] == list(range(50))
        assert math.isnan(stored[7]["payload"]["v"]) and stored[8]["payload"]["v"] == 1.0
        assert [e["id"] for e in client.epochs(run["id"])] == [epoch["id"]]
        # The status update came last, after the payloads: the order was kept.
        assert client.get_run(run["id"])["status"] == "completed"
        # Spool empty: writes go straight to the server again.
        assert "spooled" not in client.record_metrics(run["id"], 50, {"v": 0.0})
    finally:
        client.close(timeout_s=0)


def test_a_restarted_trainer_delivers_what_a_killed_one_spooled(tmp_path, make_server):
    server = make_server(tmp_path / "db", port=free_port())
    run = uuid.uuid4()
    with subprocess.Popen(
        [sys.executable, str(TRAINER), server.url, str(tmp_path / "spool"), str(run), "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as trainer:
        try:
            assert trainer.stdout is not None
            line = trainer.stdout.readline()
        finally:
            trainer.kill()  # SIGKILL: no close(), no flush
            _, err = trainer.communicate(timeout=30)
        assert line.strip() == "spooled", err
    server.start()
    with HttpStatsClient(server.url, token=TOKEN, spool_dir=tmp_path / "spool") as restarted:
        assert restarted.pending == 41
        assert restarted.flush(timeout_s=30)
        stored = restarted.payloads(run)
        assert [(p["step"], p["payload"]["value"]) for p in stored] == [
            (step, step / 4) for step in range(40)
        ]
        assert restarted.get_run(run)["name"] == "killed"


def test_a_write_delivered_twice_is_stored_once(tmp_path, make_server):
    """A crash after the server stored a spooled write but before the spool moved past it
    sends it again: the idempotency key makes the server keep one."""
    server = make_server(tmp_path / "db").start()
    spool_dir = tmp_path / "spool"
    with HttpStatsClient(server.url, token=TOKEN, spool_dir=spool_dir) as client:
        run = client.create_training_run("r", "", "", [])["id"]
        client.record_metrics(run, 1, {"a": 1.0}, idempotency_key="once")
    record = {
        "method": "POST",
        "path": f"/runs/{run}/metrics",
        "json": {"step": 1, "epoch": None, "payload": {"a": 1.0}, "idempotency_key": "once"},
        "key": "once",
    }
    spool_file = spool_dir / f"{spool_prefix(server.url)}-0.jsonl"
    spool_file.write_text(json.dumps(record) + "\n")
    with HttpStatsClient(server.url, token=TOKEN, spool_dir=spool_dir) as again:
        assert again.flush(timeout_s=30)
        assert again.counters["replayed"] == 1
        assert [p["step"] for p in again.payloads(run)] == [1]


def test_a_spooled_write_the_server_refuses_is_set_aside_not_retried(tmp_path, make_server, caplog):
    server = make_server(tmp_path / "db", port=free_port())
    client = HttpStatsClient(server.url, token=TOKEN, spool_dir=tmp_path / "spool", timeout_s=2)
    try:
        ghost = uuid.uuid4()  # never created: the server answers 404
        client.record_metrics(ghost, 0, {"a": 1.0})
        run = client.create_training_run("real", "", "", [])["id"]
        client.record_metrics(run, 0, {"a": 2.0})
        server.start()
        with caplog.at_level(logging.WARNING, logger="fusedstats.store"):
            assert client.flush(timeout_s=30)
        assert client.counters["rejected"] == 1 and client.counters["replayed"] == 2
        assert "refused" in caplog.text and str(ghost) in caplog.text
        assert client.metric_series(run, "a") == [(0, 2.0)]
    finally:
        client.close(timeout_s=0)


def test_reads_fail_cleanly_while_the_server_is_away(tmp_path):
    from fusedstats.store import StatsStoreError

    with (
        HttpStatsClient(
            f"http://127.0.0.1:{free_port()}", spool_dir=tmp_path, timeout_s=0.5
        ) as client,
        pytest.raises(StatsStoreError, match="ConnectError"),
    ):
        client.list_runs()


def test_write_behind_sends_payloads_in_batches(tmp_path, make_server, caplog):
    server = make_server(tmp_path / "db").start()
    with HttpStatsClient(
        server.url, token=TOKEN, spool_dir=tmp_path / "spool", write_behind=True
    ) as client:
        run = client.create_training_run("r", "", "", [])["id"]
        assert "spooled" not in client.get_run(run)  # other writes still go straight
        ghost = uuid.uuid4()
        for step in range(200):
            target = ghost if step == 100 else run
            result = client.record_metrics(target, step, {"v": float(step)}, epoch=step)
            assert result["spooled"] is True  # on disk, not waiting for the server
        with caplog.at_level(logging.WARNING, logger="fusedstats.store"):
            assert client.flush(timeout_s=60)
        counters = client.counters
        assert counters["replayed"] == 199 and counters["rejected"] == 1
        assert 1 <= counters["batches"] < 20  # not one request per payload
        assert str(ghost) in caplog.text  # the refused one is named, the rest stored
        series = client.metric_series(run, "v")
        assert series == [(s, float(s)) for s in range(200) if s != 100]
