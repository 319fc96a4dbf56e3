"""Issue 17, items 1, 2 and 14 at the reporter: finalize ends with every payload of every
sink delivered or spooled, within its timeout, and says which; a raising sink does not
starve a healthy one; report_epoch's wrong argument types are named."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest

RATE_HZ = 20
N_EPOCHS = 40  # 2 s at 20 payloads/s


class AlwaysRaising:
    name = "raising"

    def write(self, payload, *, step, epoch):
        raise ConnectionError("sink down")

    def flush(self):
        pass

    def close(self):
        pass


class Recording:
    name = "healthy"

    def __init__(self):
        self.steps = []

    def write(self, payload, *, step, epoch):
        self.steps.append(step)

    def flush(self):
        pass

    def close(self):
        pass


def test_finalize_delivers_or_spools_every_payload_in_time_and_says_which(
    make_reporter, tmp_path, caplog
):
    healthy = Recording()
    reporter = make_reporter(
        extra_sinks=(AlwaysRaising(), healthy),
        spool_dir=str(tmp_path / "spool"),
        sink_close_timeout_s=2.0,
    )
    started = time.monotonic()
    longest = 0.0
    lags = []
    for epoch in range(1, N_EPOCHS + 1):
        pause = started + epoch / RATE_HZ - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        lags.append(epoch - 1 - len(healthy.steps))
        begin = time.perf_counter()
        reporter.report_epoch(epoch, epoch * 10, {"policy_loss": 0.1}, {"rewards": 1.0})
        longest = max(longest, time.perf_counter() - begin)
    with caplog.at_level(logging.WARNING, logger="fusedstats.reporter"):
        begin = time.monotonic()
        report = reporter.finalize()
        took = time.monotonic() - begin
    steps = [10 * epoch for epoch in range(1, N_EPOCHS + 1)]
    # Right when finalize returns: all delivered to the healthy sink, all on disk for
    # the raising one (before: 66 of 100 delivered, 3 spooled, 31 gone).
    assert healthy.steps == steps
    spooled = (tmp_path / "spool" / "raising.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in spooled] == steps
    assert took < 2.0 + 0.3, f"finalize took {took:.2f} s"
    assert report.complete and not report.all_delivered
    assert report.sinks["healthy"].delivered == N_EPOCHS
    assert report.sinks["raising"].spooled == N_EPOCHS
    assert report.sinks["raising"].spool_path == str(tmp_path / "spool" / "raising.jsonl")
    assert "raising: 0 delivered, 40 spooled" in caplog.text
    assert max(lags) <= 3, f"the healthy sink fell {max(lags)} payloads behind"
    assert longest < 0.05, f"report_epoch took {longest * 1e3:.1f} ms"


def test_finalize_without_a_spool_dir_counts_what_was_lost(make_reporter):
    reporter = make_reporter(extra_sinks=(AlwaysRaising(),), sink_backoff_s=0.0)
    for epoch in (1, 2, 3):
        reporter.report_epoch(epoch, epoch, {}, {})
    report = reporter.finalize()
    assert not report.complete
    assert report.sinks["raising"].lost == 3 and report.sinks["raising"].spool_path is None
    assert "3 LOST" in str(report)


def test_finalize_without_sinks_reports_nothing():
    from fusedstats.reporter import NoOpStatsReporter

    assert NoOpStatsReporter().finalize().sinks == {}


class NotStats:
    pass


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epoch": "3"}, r"epoch must be an int, got '3' \(str\)"),
        ({"epoch": 2.5}, r"epoch must be an int, got 2.5 \(float\)"),
        ({"epoch": True}, r"epoch must be an int, got True \(bool\)"),
        ({"agent_step": None}, r"agent_step must be an int, got None \(NoneType\)"),
        ({"agent_step": "1024"}, r"agent_step must be an int"),
        ({"losses_stats": {1: 0.5}}, r"losses_stats must have string keys, got the key 1"),
        ({"losses_stats": [0.5]}, r"losses_stats must be a mapping of str to numbers"),
        ({"losses_stats": NotStats()}, r"losses_stats must be a mapping .*NotStats"),
        ({"experience": {("a",): 1.0}}, r"experience must have string keys"),
        ({"experience": 0.5}, r"experience must be a mapping"),
        ({"timer": "stopwatch"}, r"timer must be a Stopwatch"),
        ({"system_stats": [1.0]}, r"system_stats must be a mapping or None"),
        ({"memory_stats": {2: 1.0}}, r"memory_stats must have string keys"),
        ({"hyperparameters": "lr=0.1"}, r"hyperparameters must be a mapping"),
    ],
)
def test_report_epoch_names_the_argument_of_the_wrong_type(make_reporter, kwargs, message):
    sink = Recording()
    reporter = make_reporter(extra_sinks=(sink,))
    reporter.on_step([{"game/score": 1.0}])
    arguments = {"epoch": 1, "agent_step": 10, "losses_stats": {}, "experience": {}, **kwargs}
    with pytest.raises(TypeError, match=message):
        reporter.report_epoch(**arguments)
    # Nothing was reported or cleared: the next good call carries the rollout stats.
    assert reporter.get_latest_payload() is None
    reporter.report_epoch(2, 20, {"policy_loss": 0.5}, {})
    assert reporter.get_latest_payload()["env_game/score"] == 1.0


def test_report_epoch_still_takes_numpy_and_integral_float_steps(make_reporter):
    reporter = make_reporter()
    reporter.report_epoch(np.int64(3), 1024.0, {"policy_loss": 0.5}, None)
    payload = reporter.get_latest_payload()
    assert payload["metric/epoch"] == 3.0 and payload["metric/agent_step"] == 1024.0
