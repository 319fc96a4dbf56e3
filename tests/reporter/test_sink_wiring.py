"""The reporter attaches the stats-store and TensorBoard sinks its config and client ask for."""

import math
import random

import pytest

from fusedstats.reporter import StatsReporter, StatsReporterConfig
from fusedstats.store import SqlStatsStore


def _config(**kwargs):
    return StatsReporterConfig(report_to_wandb=False, report_to_console=False, **kwargs)


def _report(reporter, epochs, rng):
    sent = []
    for epoch in range(1, epochs + 1):
        reward = rng.uniform(-5, 5)
        reporter.process_rollout([{"game": {"score": reward}}])
        reporter.report_epoch(epoch, epoch * 64, {"policy_loss": rng.random()}, {})
        sent.append(reporter.get_latest_payload())
    reporter.finalize()
    return sent


def test_a_store_client_gets_every_payload_through_the_sink(tmp_path):
    rng = random.Random()
    store = SqlStatsStore(tmp_path / "stats.db")
    reporter = StatsReporter(_config(), stats_client=store)
    sent = _report(reporter, 5, rng)
    run_id = reporter.stats_run_id
    stored = store.payloads(run_id)
    assert [(p["step"], p["epoch"]) for p in stored] == [(e * 64, e) for e in range(1, 6)]
    for payload, row in zip(sent, stored, strict=True):
        assert row["payload"].keys() == payload.keys()
        for key, value in payload.items():
            got = row["payload"][key]
            assert got == value or (math.isnan(got) and math.isnan(value)), key
    assert store.get_run(run_id)["status"] == "completed"
    store.close()


def test_report_to_stats_client_off_stores_nothing(tmp_path):
    store = SqlStatsStore(tmp_path / "stats.db")
    reporter = StatsReporter(_config(report_to_stats_client=False), stats_client=store)
    _report(reporter, 2, random.Random())
    assert store.list_runs() == []
    store.close()


def test_tensorboard_dir_writes_every_scalar(tmp_path):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    reporter = StatsReporter(_config(tensorboard_dir=str(tmp_path / "tb")))
    sent = _report(reporter, 3, random.Random())
    acc = event_accumulator.EventAccumulator(
        str(tmp_path / "tb"), size_guidance={event_accumulator.SCALARS: 0}
    )
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == set(sent[0])
    reward = [e.value for e in acc.Scalars("env_game/score")]
    assert reward == pytest.approx([p["env_game/score"] for p in sent], rel=1e-6)


def test_an_unusable_tensorboard_dir_only_costs_warnings(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    reporter = StatsReporter(_config(tensorboard_dir=str(blocker / "tb")))
    with caplog.at_level("WARNING", logger="fusedstats"):
        _report(reporter, 1, random.Random())
    assert reporter.get_latest_payload() is None  # finalized
    assert "TensorBoard" in caplog.text or "tensorboard" in caplog.text
