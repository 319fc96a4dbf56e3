"""StatsStoreSink: the reporter's payloads into the embedded store, on the sink thread."""

from __future__ import annotations

import math
import random
import time
import uuid

from tests.store.support import same_payload

from fusedstats.reporter import StatsReporter, StatsReporterConfig
from fusedstats.sinks import SinkRunner, StatsStoreSink, replay_spool
from fusedstats.store import SqlStatsStore


def wait_for(condition, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_reporter_payloads_reach_the_store(tmp_path):
    store = SqlStatsStore(tmp_path)
    run = store.create_training_run("reporter", "", "", [])["id"]
    reporter = StatsReporter(
        StatsReporterConfig(report_to_wandb=False, report_to_console=False),
        extra_sinks=[StatsStoreSink(store, run)],
    )
    rng = random.Random()
    sent = {}
    try:
        for epoch in range(1, 11):
            losses = {f"loss_{i}": rng.gauss(0, 1) for i in range(20)}
            losses["policy_loss"] = math.nan if epoch == 3 else rng.random()
            reporter.on_step([{"game/score": rng.random()} for _ in range(4)])
            reporter.report_epoch(
                epoch=epoch, agent_step=64 * epoch, losses_stats=losses, experience={}
            )
            sent[64 * epoch] = reporter.get_latest_payload()
        wait_for(lambda: reporter.sink_counters["stats_store"]["delivered"] == 10)
        assert reporter.sink_counters["stats_store"]["failed"] == 0
    finally:
        reporter.finalize()
    stored = store.payloads(run)
    assert [(p["step"], p["epoch"]) for p in stored] == [(64 * e, e) for e in range(1, 11)]
    for p in stored:
        assert same_payload(p["payload"], sent[p["step"]])
    assert math.isnan(store.metric_series(run, "losses/policy_loss")[2][1])
    store.close()


def test_a_payload_spooled_by_the_runner_is_stored_once_however_often_replayed(tmp_path):
    """The run does not exist yet: every write fails, the runner spools the payloads. Once
    it does, replaying the spool stores them; replaying a copy again stores nothing."""
    store = SqlStatsStore(tmp_path / "stats.db")
    run = uuid.uuid4()
    sink = StatsStoreSink(store, run)
    runner = SinkRunner([sink], retries=1, backoff_s=0.0, spool_dir=tmp_path / "spool")
    for step in range(5):
        runner.submit({"loss": step / 2, "text": "dropped"}, step=step, epoch=step)
    runner.close()
    assert runner.counters["stats_store"]["spooled"] == 5
    spooled = tmp_path / "spool" / "stats_store.jsonl"
    copy = spooled.read_text()

    store.create_training_run("late", "", "", [], run_id=run)
    assert replay_spool(spooled, sink) == 5
    spooled.write_text(copy)
    assert replay_spool(spooled, sink) == 5
    assert store.metric_series(run, "loss") == [(step, step / 2) for step in range(5)]
    assert store.metric_keys(run) == ["loss"]  # the spool keeps numbers only
    store.close()


def test_sink_flush_and_close_leave_the_client_to_its_owner(tmp_path):
    store = SqlStatsStore(tmp_path)
    run = store.create_training_run("r", "", "", [])["id"]
    sink = StatsStoreSink(store, run)
    sink.write({"a": 1.0, "note": "text", "list": [1.0]}, step=1, epoch=1)
    assert dict(sink.dropped_by_key) == {"note": 1, "list": 1}
    sink.flush()
    sink.close()
    assert store.metric_series(run, "a") == [(1, 1.0)]  # still open
    owned = StatsStoreSink(store, run, close_client=True)
    owned.close()
    assert store.engine.pool.checkedout() == 0
    store.close()
