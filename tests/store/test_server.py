"""The stats server, started for real on 127.0.0.1, and its client."""

from __future__ import annotations

import json
import math
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.store.support import TOKEN, ServerProcess, same_payload

from fusedstats.store import HttpStatsClient, RunNotFoundError, StatsStoreError

MAX_BODY = 200_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("server")
    process = ServerProcess(root / "db", log_dir=root, max_body_bytes=MAX_BODY)
    try:
        yield process.start()
    finally:
        process.kill()


@pytest.fixture
def client(server: ServerProcess, tmp_path: Path) -> Iterator[HttpStatsClient]:
    made = HttpStatsClient(server.url, token=TOKEN, spool_dir=tmp_path / "spool", timeout_s=10)
    yield made
    made.close()


@pytest.fixture
def run_id(client: HttpStatsClient) -> uuid.UUID:
    return client.create_training_run("fixture", "", "", [])["id"]


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_client_and_server_round_trip(client):
    run = client.create_training_run("run-a", "https://wandb.ai/x", "notes", ["a", "b"])
    assert isinstance(run["id"], uuid.UUID) and "spooled" not in run
    epoch = client.create_epoch(run["id"], 0, 10, {"lr": 1e-3, "bad": math.inf})
    assert isinstance(epoch["id"], uuid.UUID) and epoch["run_id"] == run["id"]
    payloads = [
        {"overview/sps": 1500.0, "grad/norm": math.nan, "up": math.inf, "down": -math.inf},
        {"overview/sps": 1600.0, "losses/value_loss": 0.25},
    ]
    for step, payload in zip((64, 128), payloads, strict=True):
        result = client.record_metrics(run["id"], step, payload, epoch=step // 64)
        assert result == {
            "run_id": run["id"],
            "step": step,
            "epoch": step // 64,
            "keys": len(payload),
            "duplicate": False,
        }
    done = client.update_training_run_status(run["id"], "completed")
    assert done["status"] == "completed" and done["id"] == run["id"]

    assert client.get_run(run["id"]) == {
        **run,
        "status": "completed",
        "updated_at": done["updated_at"],
    }
    assert run["id"] in {r["id"] for r in client.list_runs()}
    assert client.epochs(run["id"]) == [epoch]
    assert epoch["attributes"] == {"lr": 1e-3, "bad": "inf"}
    stored = client.payloads(run["id"])
    assert [(p["step"], p["epoch"]) for p in stored] == [(64, 1), (128, 2)]
    assert all(same_payload(p["payload"], want) for p, want in zip(stored, payloads, strict=True))
    assert client.metric_keys(run["id"]) == sorted({k for p in payloads for k in p})
    series = client.metric_series(run["id"], "grad/norm")
    assert len(series) == 1 and series[0][0] == 64 and math.isnan(series[0][1])
    assert client.metric_series(run["id"], "overview/sps") == [(64, 1500.0), (128, 1600.0)]
    assert client.counters["sent"] == 5 and client.counters["spooled"] == 0


def test_a_write_repeated_with_its_key_is_stored_once(client, run_id):
    first = client.record_metrics(run_id, 1, {"a": 1.0}, idempotency_key="same")
    again = client.record_metrics(run_id, 2, {"a": 2.0}, idempotency_key="same")
    assert first["duplicate"] is False and again["duplicate"] is True
    assert [p["step"] for p in client.payloads(run_id)] == [1]


def test_unknown_runs(client):
    missing = uuid.uuid4()
    assert client.get_run(missing) is None
    assert client.update_training_run_status(missing, "failed") is None
    with pytest.raises(RunNotFoundError):
        client.record_metrics(missing, 0, {"a": 1.0})
    with pytest.raises(RunNotFoundError):
        client.create_epoch(missing, 0, 1, {})
    assert client.counters["spooled"] == 0  # refused writes are not kept for later


WRITES = [
    ("POST", "/runs", {"name": "x"}),
    ("PUT", "/runs/{run}/status", {"status": "failed"}),
    ("POST", "/runs/{run}/epochs", {"start_training_epoch": 0, "end_training_epoch": 1}),
    ("POST", "/runs/{run}/metrics", {"step": 1, "payload": {"a": 1.0}}),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
@pytest.mark.parametrize("headers", [{}, auth("wrong"), {"Authorization": TOKEN}])
def test_writes_without_the_token_get_401(server, run_id, method, path, body, headers):
    before = httpx.get(f"{server.url}/runs/{run_id}/metrics", headers=auth()).json()
    response = httpx.request(
        method, server.url + path.format(run=run_id), json=body, headers=headers
    )
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{server.url}/runs/{run_id}", headers=auth()).json()["status"] == "running"
    assert httpx.get(f"{server.url}/runs/{run_id}/metrics", headers=auth()).json() == before
    assert httpx.get(f"{server.url}/runs/{run_id}/epochs", headers=auth()).json() == []


def test_a_client_with_the_wrong_token_is_told_so(server, tmp_path):
    with HttpStatsClient(server.url, token="wrong", spool_dir=tmp_path) as client:
        with pytest.raises(StatsStoreError, match="401"):
            client.create_training_run("x", "", "", [])
        assert client.pending == 0


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/runs/{run}/metrics", {"step": "1", "payload": {}}, ["body", "step"]),
        ("/runs/{run}/metrics", {"step": 1.5, "payload": {}}, ["body", "step"]),
        ("/runs/{run}/metrics", {"step": 2**63, "payload": {}}, ["body", "step"]),
        ("/runs/{run}/metrics", {"payload": {}}, ["body", "step"]),
        ("/runs/{run}/metrics", {"step": 1, "payload": {"k": "high"}}, ["body", "payload", "k"]),
        ("/runs/{run}/metrics", {"step": 1, "payload": {"k": None}}, ["body", "payload", "k"]),
        ("/runs/{run}/metrics", {"step": 1, "payload": {"k": True}}, ["body", "payload", "k"]),
        ("/runs/{run}/metrics", {"step": 1, "payload": [1.0]}, ["body", "payload"]),
        ("/runs/{run}/metrics", {"step": 1, "payload": {}, "extra": 1}, ["body", "extra"]),
        ("/runs/{run}/metrics", {"step": 1, "payload": {"": 1.0}}, ["body", "payload", ""]),
        ("/runs/not-a-uuid/metrics", {"step": 1, "payload": {}}, ["path", "run_id"]),
        ("/runs", {"name": 5}, ["body", "name"]),
        ("/runs", {"name": "x", "tags": "a"}, ["body", "tags"]),
        ("/runs", {"name": "x", "id": "nope"}, ["body", "id"]),
        ("/runs/{run}/epochs", {"start_training_epoch": 0}, ["body", "end_training_epoch"]),
        ("/runs/{run}/status", {"status": ""}, ["body", "status"]),
    ],
)
def test_invalid_bodies_get_422_naming_the_field(server, run_id, path, body, field):
    method = "PUT" if path.endswith("/status") else "POST"
    response = httpx.request(
        method, server.url + path.format(run=run_id), json=body, headers=auth()
    )
    assert response.status_code == 422, response.text
    locations = [error["loc"] for error in response.json()["detail"]]
    assert any(loc[: len(field)] == field for loc in locations), locations


def test_malformed_json_gets_422(server, run_id):
    response = httpx.post(
        f"{server.url}/runs/{run_id}/metrics",
        content=b'{"step": 1, "payload": {"a": ',
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_a_nul_in_a_key_is_a_422_naming_the_key(server, run_id):
    response = httpx.post(
        f"{server.url}/runs/{run_id}/metrics",
        json={"step": 1, "payload": {"a\x00b": 1.0}},
        headers=auth(),
    )
    assert response.status_code == 422
    locations = [issue["loc"] for issue in response.json()["detail"]]
    assert ["body", "payload", "a\x00b", "[key]"] in locations, locations


def test_oversized_bodies_get_413_announced_or_not(server, run_id):
    big = {"step": 1, "payload": {f"key/{i}": float(i) for i in range(MAX_BODY // 10)}}
    data = json.dumps(big).encode()
    assert len(data) > MAX_BODY
    url = f"{server.url}/runs/{run_id}/metrics"
    announced = httpx.post(
        url, content=data, headers={**auth(), "Content-Type": "application/json"}
    )
    assert announced.status_code == 413 and "limit" in announced.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        for start in range(0, len(data), 16384):
            yield data[start : start + 16384]

    streamed = httpx.post(
        url, content=chunks(), headers={**auth(), "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert httpx.get(f"{server.url}/runs/{run_id}/metrics", headers=auth()).json() == []


def test_the_server_keeps_serving_after_abuse(server, client, run_id):
    with socket.create_connection(("127.0.0.1", server.port)) as raw:  # not HTTP at all
        raw.sendall(b"\x00\x01garbage\r\n\r\n")
        raw.recv(1024)
    with socket.create_connection(("127.0.0.1", server.port)) as raw:  # cut off mid-body
        raw.sendall(
            f"POST /runs/{run_id}/metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}"
            '\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"step":'.encode()
        )
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    assert client.record_metrics(run_id, 3, {"a": 3.0})["duplicate"] is False
    assert client.metric_series(run_id, "a") == [(3, 3.0)]


def test_openapi_description_is_published(server):
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert spec["info"]["title"] == "fusedstats stats server"
    assert {"/runs", "/runs/{run_id}/metrics", "/runs/{run_id}/series"} <= set(spec["paths"])
    metrics = spec["paths"]["/runs/{run_id}/metrics"]["post"]
    assert any(p["name"] == "authorization" for p in metrics["parameters"])


def test_a_batch_stores_each_payload_and_answers_for_each(server, run_id):
    ghost = uuid.uuid4()
    items = [
        {"run_id": str(run_id), "step": 1, "payload": {"a": "nan"}, "idempotency_key": "b1"},
        {"run_id": str(ghost), "step": 2, "payload": {"a": 2.0}},
        {"run_id": str(run_id), "step": 3, "payload": {"a": 3.0}, "idempotency_key": "b1"},
        {"run_id": str(run_id), "step": 4, "payload": {"a": "-inf"}},
    ]
    response = httpx.post(f"{server.url}/metrics/batch", json={"items": items}, headers=auth())
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [200, 404, 200, 200]
    assert results[2]["duplicate"] is True and str(ghost) in results[1]["detail"]
    series = httpx.get(
        f"{server.url}/runs/{run_id}/series", params={"key": "a"}, headers=auth()
    ).json()
    assert series == [[1, "nan"], [4, "-inf"]]
    unauthorized = httpx.post(f"{server.url}/metrics/batch", json={"items": items})
    assert unauthorized.status_code == 401
    empty = httpx.post(f"{server.url}/metrics/batch", json={"items": []}, headers=auth())
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "items"]
