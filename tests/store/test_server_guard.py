"""Issue 17, items 8 and 9: with a token, reads need one too (a read-only token reads
and cannot write); tokens come from the environment or a file and are never printed;
hostile bodies (huge integers, deep nesting, a bad batch item) get a 4xx naming the
field, with nothing half-stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.store.support import TOKEN, ServerProcess, free_port

from fusedstats.store import HttpStatsClient, StatsStoreError

READ_TOKEN = "read-only-7c1d"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("guarded")
    read_file = root / "read.token"
    read_file.write_text(READ_TOKEN + "\n")
    process = ServerProcess(root / "db", log_dir=root, read_token_file=read_file)
    try:
        yield process.start()
    finally:
        process.kill()


@pytest.fixture(scope="module")
def run_id(server: ServerProcess) -> str:
    response = httpx.post(
        f"{server.url}/runs",
        json={"name": "secret-run", "description": "private notes"},
        headers=auth(),
    )
    assert response.status_code == 200, response.text
    run = response.json()["id"]
    stored = httpx.post(
        f"{server.url}/runs/{run}/metrics",
        json={"step": 1, "payload": {"loss": 0.5}},
        headers=auth(),
    )
    assert stored.status_code == 200
    return str(run)


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


READS = [
    "/runs",
    "/runs/{run}",
    "/runs/{run}/epochs",
    "/runs/{run}/metrics",
    "/runs/{run}/keys",
    "/runs/{run}/series?key=loss",
]


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize("headers", [{}, auth("wrong"), {"Authorization": TOKEN}])
def test_reads_without_a_valid_token_get_401_and_reveal_nothing(server, run_id, path, headers):
    response = httpx.get(server.url + path.format(run=run_id), headers=headers)
    assert response.status_code == 401, response.text  # before: 200 with every run
    assert "secret-run" not in response.text and "private" not in response.text
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize("token", [TOKEN, READ_TOKEN])
def test_the_write_and_the_read_only_token_both_read(server, run_id, path, token):
    response = httpx.get(server.url + path.format(run=run_id), headers=auth(token))
    assert response.status_code == 200, response.text


def test_the_read_only_token_cannot_write(server, run_id):
    writes = [
        ("POST", "/runs", {"name": "x"}),
        ("PUT", f"/runs/{run_id}/status", {"status": "failed"}),
        ("POST", f"/runs/{run_id}/metrics", {"step": 2, "payload": {"loss": 9.0}}),
        ("POST", "/metrics/batch", {"items": [{"run_id": run_id, "step": 3, "payload": {}}]}),
    ]
    for method, path, body in writes:
        response = httpx.request(method, server.url + path, json=body, headers=auth(READ_TOKEN))
        assert response.status_code == 403, (path, response.text)
    stored = httpx.get(f"{server.url}/runs/{run_id}/metrics", headers=auth(READ_TOKEN)).json()
    assert [p["step"] for p in stored] == [1]
    assert httpx.get(f"{server.url}/runs/{run_id}", headers=auth()).json()["status"] == "running"


def test_health_and_the_api_description_need_no_token(server):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/openapi.json").status_code == 200


def test_a_client_reads_with_the_read_only_token_and_is_told_it_cannot_write(server, tmp_path):
    with HttpStatsClient(server.url, token=READ_TOKEN, spool_dir=tmp_path) as reader:
        assert "secret-run" in {run["name"] for run in reader.list_runs()}
        with pytest.raises(StatsStoreError, match="403"):
            reader.create_training_run("x", "", "", [])
        assert reader.pending == 0
    with (
        HttpStatsClient(server.url, token="", spool_dir=tmp_path / "2") as nobody,
        pytest.raises(StatsStoreError, match="401"),
    ):
        nobody.list_runs()


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
    """Starts `fusedstats.store.server`, waits for /health, stops it; (stdout, stderr)."""
    port = free_port()
    command = [sys.executable, "-m", "fusedstats.store.server", "--db", str(tmp_path / "db")]
    command += ["--port", str(port), *args]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FUSEDSTATS_SERVER")}
    environ.update(env or {}, XDG_CONFIG_HOME=str(tmp_path / "config"))
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ
    ) as proc:
        try:
            ServerProcess.wait_ready(f"http://127.0.0.1:{port}", proc)
        finally:
            proc.terminate()
            out, err = proc.communicate(timeout=30)
    return out, err


def test_a_generated_token_is_written_to_a_file_and_only_its_location_printed(tmp_path):
    out, err = _serve(tmp_path)
    token_file = tmp_path / "config" / "fusedstats"
    (path,) = token_file.iterdir()
    token = path.read_text().strip()
    assert len(token) >= 32 and token not in out and token not in err  # before: printed
    assert str(path) in out
    assert path.stat().st_mode & 0o777 == 0o600


def test_tokens_from_a_file_or_the_environment_are_used_and_never_printed(tmp_path):
    token_file = tmp_path / "write.token"
    token_file.write_text("from-a-file-123\n")
    file_out, _ = _serve(tmp_path, "--token-file", str(token_file))
    assert "from-a-file-123" not in file_out and f"read from {token_file}" in file_out
    env_out, env_err = _serve(tmp_path, env={"FUSEDSTATS_SERVER_TOKEN": "from-env-456"})
    assert "from-env-456" not in env_out + env_err
    _, warned = _serve(tmp_path, "--token", "on-the-command-line")
    assert "visible to every local user" in warned


# ---- item 9: hostile bodies ----------------------------------------------------------


def deep(levels: int) -> dict:
    nested: dict = {}
    for _ in range(levels):
        nested = {"cfg": nested}
    return nested


def stored_steps(server: ServerProcess, run: str) -> list[int]:
    return [p["step"] for p in httpx.get(f"{server.url}/runs/{run}/metrics", headers=auth()).json()]


def test_an_integer_beyond_float_range_is_a_422_naming_the_key(server, run_id):
    before = stored_steps(server, run_id)
    body = '{"step": 5, "payload": {"ok": 1.0, "huge": 1' + "0" * 400 + "}}"
    response = httpx.post(
        f"{server.url}/runs/{run_id}/metrics",
        content=body,
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text  # before: 500 (OverflowError)
    locations = [issue["loc"] for issue in response.json()["detail"]]
    assert any(loc[:3] == ["body", "payload", "huge"] for loc in locations), locations
    assert stored_steps(server, run_id) == before


def test_a_batch_with_one_bad_item_stores_nothing(server, run_id):
    before = stored_steps(server, run_id)
    good = [{"run_id": run_id, "step": 100 + i, "payload": {"a": 1.0}} for i in range(3)]
    huge = "1" + "0" * 400
    bad = f'{{"run_id": "{run_id}", "step": 200, "payload": {{"a": {huge}}}}}'
    items = json.dumps(good)[:-1] + ", " + bad + "]"
    response = httpx.post(
        f"{server.url}/metrics/batch",
        content='{"items": ' + items + "}",
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text  # before: 500, 3 items stored
    locations = [issue["loc"] for issue in response.json()["detail"]]
    assert any(loc[:4] == ["body", "items", 3, "payload"] for loc in locations), locations
    assert stored_steps(server, run_id) == before


@pytest.mark.parametrize("levels", [65, 500, 950])
def test_deeply_nested_epoch_attributes_are_a_422_naming_them(server, run_id, levels):
    epoch = str(uuid.uuid4())
    attributes = '{"cfg": ' * levels + "{}" + "}" * levels  # too deep for json.dumps here
    body = f'{{"id": "{epoch}", "start_training_epoch": 0, "end_training_epoch": 1, '
    body += f'"attributes": {attributes}}}'
    response = httpx.post(
        f"{server.url}/runs/{run_id}/epochs",
        content=body,
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text  # before: 500 (RecursionError)
    assert response.json()["detail"][0]["loc"][:2] == ["body", "attributes"]
    epochs = httpx.get(f"{server.url}/runs/{run_id}/epochs", headers=auth()).json()
    assert epoch not in {e["id"] for e in epochs}


def test_a_body_nested_past_the_parser_is_a_4xx(server, run_id):
    body = '{"step": 1, "payload": {}, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = httpx.post(
        f"{server.url}/runs/{run_id}/metrics",
        content=body,
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.text
    assert httpx.get(f"{server.url}/health").status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/runs", {"name": "a\x00b"}, ["body", "name"]),
        ("/runs", {"name": "a", "tags": ["x\x00"]}, ["body", "tags", 0]),
        ("/runs/{run}/status", {"status": "\x00"}, ["body", "status"]),
        ("/runs/{run}/metrics", {"step": 1, "payload": {"k\x00": 1.0}}, ["body", "payload"]),
    ],
)
def test_nul_characters_are_a_422_naming_the_field(server, run_id, path, body, field):
    method = "PUT" if path.endswith("/status") else "POST"
    response = httpx.request(
        method, server.url + path.format(run=run_id), json=body, headers=auth()
    )
    assert response.status_code == 422, response.text
    locations = [issue["loc"] for issue in response.json()["detail"]]
    assert any(loc[: len(field)] == field for loc in locations), locations


def test_attribute_strings_with_nul_or_a_lone_surrogate_are_kept_exactly(server, run_id):
    """SQLite stores them (escaped JSON); the answers escape them too, so they read back."""
    epoch = str(uuid.uuid4())
    body = (
        f'{{"id": "{epoch}", "start_training_epoch": 0, "end_training_epoch": 0, '
        '"attributes": {"nul": "a\\u0000b", "lone": "x\\ud800y", "big": 1' + "0" * 400 + "}}"
    )
    response = httpx.post(
        f"{server.url}/runs/{run_id}/epochs",
        content=body,
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    (stored,) = [
        e
        for e in httpx.get(f"{server.url}/runs/{run_id}/epochs", headers=auth()).json()
        if e["id"] == epoch
    ]
    assert stored["attributes"] == {"nul": "a\x00b", "lone": "x\ud800y", "big": 10**400}
