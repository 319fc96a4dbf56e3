"""Sinks behind the reporter: a sink that raises or sleeps never reaches the training
loop, and the good sinks still get every epoch."""

import json
import logging
import math
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

SLEEP_S = 5.0


class RaisingSink:
    name = "raising"

    def __init__(self):
        self.calls = 0

    def write(self, payload, *, step, epoch):
        self.calls += 1
        raise OSError("disk on fire")

    def flush(self):
        raise OSError("disk on fire")

    def close(self):
        raise OSError("disk on fire")


class SleepingSink:
    name = "sleeping"

    def __init__(self):
        self.started = threading.Event()

    def write(self, payload, *, step, epoch):
        self.started.set()
        time.sleep(SLEEP_S)

    def flush(self):
        pass

    def close(self):
        pass


class ListSink:
    name = "list"

    def __init__(self):
        self.records = []
        self.closed = False

    def write(self, payload, *, step, epoch):
        self.records.append((dict(payload), step, epoch))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def _read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_bad_sinks_neither_block_nor_break_report_epoch(make_reporter, tmp_path, caplog):
    path = tmp_path / "stats.jsonl"
    raising, sleeping = RaisingSink(), SleepingSink()
    reporter = make_reporter(
        jsonl_path=str(path),
        extra_sinks=(raising, sleeping),
        sink_timeout_s=0.2,
        sink_backoff_s=0.01,
    )
    durations = []
    with caplog.at_level(logging.WARNING):
        for epoch in range(1, 11):
            reporter.on_step([{"game": {"score": float(epoch)}}] * 8)
            start = time.perf_counter()
            reporter.report_epoch(epoch, epoch * 100, {"policy_loss": 0.5}, {"rewards": 1.0})
            durations.append(time.perf_counter() - start)
            if epoch == 1:
                assert sleeping.started.wait(5.0)  # the next epochs run while it sleeps
        counters = reporter.sink_counters
        start = time.perf_counter()
        reporter.finalize()
        finalize_s = time.perf_counter() - start
    print(f"report_epoch max {max(durations) * 1e3:.2f} ms, finalize {finalize_s:.2f} s")
    assert max(durations) < 0.05  # milliseconds, while a sink sleeps 5 s per payload
    assert finalize_s < SLEEP_S  # finalize waits sink_timeout_s per stuck call, not 5 s

    records = _read_jsonl(path)
    assert [r["step"] for r in records] == [e * 100 for e in range(1, 11)]
    assert [r["epoch"] for r in records] == list(range(1, 11))
    assert [r["payload"]["env_game/score"] for r in records] == [float(e) for e in range(1, 11)]
    assert records[-1]["payload"]["experience/area_under_reward"] == 10.0
    assert counters["runner"]["submitted"] == 10
    assert raising.calls >= 1
    # the failures were logged by the sink runner, not raised or warned
    assert any(r.name == "fusedstats.sinks" for r in caplog.records)


def test_extra_sinks_get_every_payload_and_are_closed(make_reporter):
    sink = ListSink()
    reporter = make_reporter(extra_sinks=(sink,))
    for epoch in (1, 2, 3):
        reporter.report_epoch(epoch, epoch * 10, {}, {"rewards": math.nan})
    reporter.finalize()
    assert sink.closed
    assert [(step, epoch) for _, step, epoch in sink.records] == [(10, 1), (20, 2), (30, 3)]
    assert math.isnan(sink.records[0][0]["experience/rewards"])
    assert sink.records[2][0]["experience/area_under_reward"] == 0.0


def test_nan_is_null_in_jsonl(make_reporter, tmp_path):
    path = tmp_path / "stats.jsonl"
    reporter = make_reporter(jsonl_path=str(path))
    reporter.report_epoch(1, 10, {"policy_loss": math.nan, "value_loss": math.inf}, {})
    reporter.finalize()
    (record,) = _read_jsonl(path)
    assert record["payload"]["losses/policy_loss"] is None
    assert record["payload"]["losses/value_loss"] is None
    assert record["payload"]["metric/epoch"] == 1.0


def test_an_unwritable_jsonl_path_only_costs_that_sink(make_reporter, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the JSONL sink wants a directory
    sink = ListSink()
    reporter = make_reporter(
        extra_sinks=(sink,), jsonl_path=str(blocker / "stats.jsonl"), sink_backoff_s=0.0
    )
    with caplog.at_level(logging.WARNING, logger="fusedstats.sinks"):
        for epoch in (1, 2):
            reporter.report_epoch(epoch, epoch, {}, {})
        reporter.finalize()
    assert len(sink.records) == 2
    assert "jsonl" in caplog.text


def test_wandb_sink_follows_the_current_run(make_reporter):
    class Run:
        def __init__(self):
            self.logged = []
            self.defined = []

        def log(self, payload, step):
            self.logged.append((dict(payload), step))

        def define_metric(self, name, **options):
            self.defined.append((name, options))

    first, second = Run(), Run()
    reporter = make_reporter(report_to_wandb=True)
    reporter.report_epoch(1, 10, {}, {})  # no run yet: nothing to log
    reporter.wandb_run = first
    reporter.report_epoch(2, 20, {}, {})
    reporter.report_epoch(3, 30, {}, {})
    reporter.wandb_run = second
    reporter.report_epoch(4, 40, {}, {})
    reporter.finalize()
    assert [step for _, step in first.logged] == [20, 30]
    assert [step for _, step in second.logged] == [40]
    assert first.logged[0][0]["metric/epoch"] == 2.0
    assert ("*", {"step_metric": "metric/agent_step"}) in first.defined
    assert ("*", {"step_metric": "metric/agent_step"}) in second.defined


def test_report_to_wandb_false_never_logs(make_reporter):
    run = SimpleNamespace(log=None, define_metric=None)  # calling either would raise
    sink = ListSink()
    reporter = make_reporter(wandb_run=run, report_to_wandb=False, extra_sinks=(sink,))
    reporter.report_epoch(1, 1, {}, {})
    reporter.finalize()
    assert len(sink.records) == 1
    assert reporter.sink_counters == {}  # finalized: no runner any more


def test_console_summary(make_reporter, capsys):
    reporter = make_reporter(report_to_console=True, console_keys=("losses/policy_loss",))
    reporter.report_epoch(3, 1200, {"policy_loss": 0.5}, {})
    reporter.finalize()
    assert capsys.readouterr().err == "epoch 3 | step 1,200 | policy_loss 0.5\n"


def test_setup_work_is_done_at_construction_and_threads_at_the_first_payload(tmp_path):
    # A fresh process: the sink modules are imported and the torch ops registered when
    # the reporter is built (not in the first report_epoch); no thread starts until a
    # payload is there to deliver.
    script = f"""
import sys, threading, torch
from fusedstats.reporter import StatsReporter, StatsReporterConfig
from fusedstats.kernels import ops
assert "fusedstats.sinks" not in sys.modules and ops._library is None
reporter = StatsReporter(StatsReporterConfig(report_to_wandb=False, report_to_console=False,
                                             jsonl_path={str(tmp_path / "p.jsonl")!r}))
assert "fusedstats.sinks" in sys.modules and ops._library is not None
assert threading.active_count() == 1, threading.enumerate()
reporter.report_epoch(1, 1, {{"policy_loss": 0.5}}, {{}})
assert threading.active_count() > 1
reporter.finalize()
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    assert "policy_loss" in (tmp_path / "p.jsonl").read_text()


def test_no_sink_no_thread(make_reporter):
    before = threading.active_count()
    reporter = make_reporter()
    reporter.report_epoch(1, 1, {}, {})
    assert threading.active_count() == before
    assert reporter.sink_counters == {}
