"""The stats client: every call guarded; a failure is a logged warning, never an error."""

import logging
import uuid
from types import SimpleNamespace

import pytest

RUN_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")
EPOCH_ID = uuid.UUID("87654321-4321-8765-4321-876543218765")


class RecordingClient:
    def __init__(self):
        self.calls = []

    def create_training_run(self, name, url, description, tags):
        self.calls.append(("create_training_run", name, url, description, tags))
        return {"id": str(RUN_ID)}

    def create_epoch(self, run_id, start_training_epoch, end_training_epoch, attributes):
        self.calls.append(
            ("create_epoch", run_id, start_training_epoch, end_training_epoch, attributes)
        )
        return SimpleNamespace(id=EPOCH_ID)

    def update_training_run_status(self, run_id, status):
        self.calls.append(("update_training_run_status", run_id, status))


class RaisingClient:
    def create_training_run(self, **kwargs):
        raise ConnectionError("server down")

    def create_epoch(self, **kwargs):
        raise ConnectionError("server down")

    def update_training_run_status(self, **kwargs):
        raise ConnectionError("server down")


def test_a_training_run_named_after_the_wandb_run(make_reporter):
    client = RecordingClient()
    run = SimpleNamespace(name="run-7", url="https://wandb.ai/x/run-7", notes="", tags=("a", "b"))
    reporter = make_reporter(stats_client=client, wandb_run=run)
    assert client.calls == [
        ("create_training_run", "run-7", "https://wandb.ai/x/run-7", "unknown", ["a", "b"])
    ]
    assert reporter.state.stats_run_id == RUN_ID
    assert reporter.stats_run_id == RUN_ID

    assert reporter.create_epoch(RUN_ID, 0, 10, {"note": 1}) == EPOCH_ID
    assert reporter.create_epoch(RUN_ID, 10, 20) == EPOCH_ID
    assert client.calls[1:] == [
        ("create_epoch", RUN_ID, 0, 10, {"note": 1}),
        ("create_epoch", RUN_ID, 10, 20, {}),
    ]
    reporter.on_failure()
    assert client.calls[-1] == ("update_training_run_status", RUN_ID, "failed")


def test_without_a_wandb_run_the_names_are_unknown(make_reporter):
    client = RecordingClient()
    reporter = make_reporter(stats_client=client)
    assert client.calls == [("create_training_run", "unknown", "unknown", "unknown", [])]
    reporter.finalize()
    assert client.calls[-1] == ("update_training_run_status", RUN_ID, "completed")


def test_a_failing_client_only_logs_warnings(make_reporter, caplog):
    with caplog.at_level(logging.WARNING, logger="fusedstats.reporter"):
        reporter = make_reporter(stats_client=RaisingClient())
        assert reporter.stats_run_id is None
        reporter.on_step({"game": {"score": 1.0}})
        reporter.report_epoch(1, 10, {}, {"rewards": 1.0})
        assert reporter.get_latest_payload()["env_game/score"] == 1.0
        assert reporter.create_epoch(RUN_ID, 0, 1) is None
        reporter.finalize()  # no run id: no status update to fail
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "stats client: create_training_run failed: ConnectionError('server down')",
        "stats client: create_epoch failed: ConnectionError('server down')",
    ]


def test_a_failing_status_update_only_logs(make_reporter, caplog):
    class Client(RecordingClient):
        def update_training_run_status(self, run_id, status):
            raise TimeoutError("slow")

    reporter = make_reporter(stats_client=Client())
    with caplog.at_level(logging.WARNING, logger="fusedstats.reporter"):
        reporter.finalize("completed")
    assert "update_training_run_status failed: TimeoutError('slow')" in caplog.text


@pytest.mark.parametrize("response", [None, {}, {"id": "not-a-uuid"}, SimpleNamespace(id=42)])
def test_a_response_without_a_usable_id(make_reporter, caplog, response):
    class Client(RecordingClient):
        def create_training_run(self, name, url, description, tags):
            return response

        def create_epoch(self, run_id, start_training_epoch, end_training_epoch, attributes):
            return response

    with caplog.at_level(logging.WARNING, logger="fusedstats.reporter"):
        reporter = make_reporter(stats_client=Client())
        assert reporter.stats_run_id is None
        assert reporter.create_epoch(RUN_ID, 0, 1) is None
    if response is not None:
        assert "returned no usable id" in caplog.text


def test_a_disabled_client_is_never_called(make_reporter):
    client = RecordingClient()
    reporter = make_reporter(stats_client=client, report_to_stats_client=False)
    assert reporter.stats_run_id is None
    assert reporter.create_epoch(RUN_ID, 0, 1) is None
    reporter.finalize()
    assert client.calls == []


def test_no_client(make_reporter):
    reporter = make_reporter()
    assert reporter.create_epoch(RUN_ID, 0, 1) is None
