"""Issue 17, items 4-7: no record can jam the client's spool (poison records are set
aside after bounded retries, corrupted lines never end the drain thread), the server's
limits are applied before spooling, and spool slots scale with the number of clients."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest
from tests.store.support import TOKEN, free_port

from fusedstats.store import HttpStatsClient
from fusedstats.store.client import POISON_ATTEMPTS
from fusedstats.store.spool import spool_prefix
from fusedstats.store.values import MAX_TEXT_LENGTH

FAULTY = Path(__file__).with_name("_faulty_server.py")


def deep(levels: int) -> dict:
    nested: dict = {}
    for _ in range(levels):
        nested = {"cfg": nested}
    return nested


def dead_letters(spool_dir: Path, url: str) -> list[dict]:
    path = spool_dir / f"{spool_prefix(url)}.dead.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def client_for(url: str, spool_dir: Path, **kwargs) -> HttpStatsClient:
    kwargs.setdefault("timeout_s", 5)
    kwargs.setdefault("max_backoff_s", 0.1)
    kwargs.setdefault("backoff_s", 0.01)
    return HttpStatsClient(url, token=TOKEN, spool_dir=spool_dir, **kwargs)


def test_the_issues_deep_epoch_attributes_are_refused_at_the_call(tmp_path, make_server):
    server = make_server(tmp_path / "db").start()
    with client_for(server.url, tmp_path / "spool") as client:
        run = client.create_training_run("deep", "", "", [])["id"]
        with pytest.raises(ValueError, match="attributes: nested deeper than 64"):
            client.create_epoch(run, 1, 1, deep(500))
        for step in range(50):
            client.record_metrics(run, step, {"v": float(step)})
        assert client.flush(timeout_s=30)  # before: False, and 0 of 50 stored
        assert [s for s, _ in client.metric_series(run, "v")] == list(range(50))


@pytest.mark.parametrize("write_behind", [False, True], ids=["direct", "write_behind"])
def test_a_record_the_server_keeps_failing_on_is_set_aside(
    tmp_path, make_server, caplog, write_behind
):
    server = make_server(tmp_path / "db", script=FAULTY).start()
    spool = tmp_path / "spool"
    with client_for(server.url, spool, write_behind=write_behind) as client:
        run = client.create_training_run("poison", "", "", [])["id"]
        with caplog.at_level(logging.WARNING, logger="fusedstats.store"):
            for step in range(50):
                payload = {"POISON": 1.0} if step in (10, 30) else {"v": float(step)}
                client.record_metrics(run, step, payload)
            assert client.flush(timeout_s=60)  # before: never, the 500 held the head
        counters = client.counters
        assert counters["dead_lettered"] == 2
        series = client.metric_series(run, "v")
        assert [s for s, _ in series] == [s for s in range(50) if s not in (10, 30)]
    letters = dead_letters(spool, server.url)
    assert [letter["record"]["json"]["step"] for letter in letters] == [10, 30]
    assert all(f"failed {POISON_ATTEMPTS} times" in letter["reason"] for letter in letters)
    gave_up = [r for r in caplog.records if "gave up on" in r.getMessage()]
    assert len(gave_up) == 1  # logged once (the second at DEBUG)


def test_corrupted_spool_lines_never_end_the_drain_thread(tmp_path, make_server):
    server = make_server(tmp_path / "db").start()
    spool = tmp_path / "spool"
    with client_for(server.url, spool) as setup:
        run = setup.create_training_run("corrupted", "", "", [])["id"]
    lines = []
    for step in range(60):
        lines.append(
            json.dumps(
                {
                    "method": "POST",
                    "path": f"/runs/{run}/metrics",
                    "json": {"step": step, "epoch": None, "payload": {"v": float(step)}},
                    "key": f"k{step}",
                }
            ).encode()
        )
        if step == 0:
            lines.append(b"[" * 100_000)  # RecursionError in json.loads
        if step == 20:  # httpx.InvalidURL
            lines.append(json.dumps({"method": "POST", "path": "/runs/\x00", "json": {}}).encode())
        if step == 40:
            lines.append(b"\xff\xfe\x00 not utf-8")
    spool.mkdir(exist_ok=True)
    (spool / f"{spool_prefix(server.url)}-0.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    with client_for(server.url, spool) as client:
        assert client.flush(timeout_s=60)  # before: 0 (or 41) of 60 delivered, thread dead
        assert client._drainer is not None and client._drainer.is_alive()
        assert [s for s, _ in client.metric_series(run, "v")] == list(range(60))
        assert client.counters["dead_lettered"] == 3
    reasons = [letter["reason"] for letter in dead_letters(spool, server.url)]
    assert reasons[0] == reasons[2] == "not a record"
    assert reasons[1].startswith(f"failed {POISON_ATTEMPTS} times: InvalidURL")


def test_a_run_created_while_the_server_is_away_with_long_notes_keeps_its_payloads(
    tmp_path, make_server
):
    server = make_server(tmp_path / "db", port=free_port())
    notes = "n" * (MAX_TEXT_LENGTH + 5_000)  # W&B notes go to the description
    with client_for(server.url, tmp_path / "spool") as client:
        run = client.create_training_run("long", "u" * 20_000, notes, ["t" * 20_000])
        assert run["spooled"] is True
        for step in range(50):
            client.record_metrics(run["id"], step, {"v": float(step)})
        server.start()
        assert client.flush(timeout_s=60)
        assert len(client.metric_series(run["id"], "v")) == 50  # before: 0 of 50
        stored = client.get_run(run["id"])
        assert len(stored["description"]) == MAX_TEXT_LENGTH
        assert stored["description"].endswith("characters cut by fusedstats]")
        assert stored["description"].startswith("n" * 9_000)
        assert len(stored["url"]) == len(stored["tags"][0]) == MAX_TEXT_LENGTH
        with pytest.raises(ValueError, match="name: NUL characters"):
            client.create_training_run("a\x00b", "", "", [])


def test_a_spooled_run_the_server_refuses_is_created_minimal_and_keeps_its_payloads(
    tmp_path, make_server
):
    """A spool left by an older client: its run creation is refused (422) now."""
    server = make_server(tmp_path / "db").start()
    spool = tmp_path / "spool"
    run = uuid.uuid4()
    body = {"id": str(run), "name": "old", "url": "", "description": "d" * 20_000, "tags": []}
    records = [{"method": "POST", "path": "/runs", "json": body, "key": str(run)}]
    for step in range(20):
        records.append(
            {
                "method": "POST",
                "path": f"/runs/{run}/metrics",
                "json": {"step": step, "epoch": None, "payload": {"v": 1.0}},
                "key": f"k{step}",
                "run_id": str(run),
            }
        )
    spool.mkdir()
    (spool / f"{spool_prefix(server.url)}-0.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records)
    )
    with client_for(server.url, spool) as client:
        assert client.flush(timeout_s=60)
        assert client.counters["rejected"] == 1 and client.counters["replayed"] == 20
        assert len(client.metric_series(run, "v")) == 20
        assert "refused this run's creation" in client.get_run(run)["description"]
    (letter,) = dead_letters(spool, server.url)
    assert letter["record"]["json"]["description"] == "d" * 20_000  # kept, not lost


def test_many_clients_on_one_spool_dir_each_get_a_slot_and_leave_no_files(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    spool = tmp_path / "spool"
    clients = [HttpStatsClient(url, spool_dir=spool, timeout_s=0.5) for _ in range(80)]
    try:
        paths = {client._spool.path for client in clients}
        assert len(paths) == 80  # before: the 65th failed, "all 64 spool slots are held"
        assert len(list(spool.iterdir())) <= 2 * 80  # before: 128 files per client
    finally:
        for client in clients:
            client.close(timeout_s=0)
    assert list(spool.iterdir()) == []  # nothing pending: every slot removed its files
