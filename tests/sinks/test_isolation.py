"""Issue 17, items 1-3: each sink is served on its own (a failing or hanging sink never
starves a healthy one), a failing sink's circuit breaker spools for it, close() ends
with every payload delivered or spooled, and replay_spool skips lines it cannot read.

Real threads throughout; every wait has a deadline, and every sleeping sink is released
before the test ends."""

from __future__ import annotations

import json
import time

from tests.sinks.kinds import RaisingSink, RecordingSink, SleepingSink

from fusedstats.sinks import SinkRunner, replay_spool
from fusedstats.sinks.spool import Spool

RATE_HZ = 20
N_PAYLOADS = 40  # 2 s at 20 payloads/s


def payload(i: int) -> dict[str, float]:
    return {"overview/sps": 1000.0 + i, "i": float(i)}


def spooled_steps(path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def feed(runner: SinkRunner, healthy: RecordingSink) -> list[int]:
    """Submits N_PAYLOADS at RATE_HZ; returns how far behind the healthy sink was at each."""
    lags = []
    started = time.monotonic()
    for i in range(N_PAYLOADS):
        pause = started + i / RATE_HZ - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        lags.append(i - len(healthy.received))
        assert runner.submit(payload(i), step=i, epoch=0)
    return lags


def test_a_raising_sink_neither_slows_a_healthy_one_nor_loses_a_payload(tmp_path):
    healthy, raising = RecordingSink("healthy"), RaisingSink("raising")
    runner = SinkRunner(
        [raising, healthy], timeout_s=1.0, retries=2, backoff_s=0.05, spool_dir=tmp_path
    )
    lags = feed(runner, healthy)
    # Before: the raising sink's retries held the healthy one to ~6.6 payloads/s.
    assert max(lags) <= 3, f"the healthy sink fell {max(lags)} payloads behind"
    report = runner.close(timeout_s=2.0)
    assert [step for _, step, _ in healthy.received] == list(range(N_PAYLOADS))
    assert spooled_steps(tmp_path / "raising.jsonl") == list(range(N_PAYLOADS))
    assert report.complete and not report.all_delivered
    assert report.sinks["healthy"].delivered == N_PAYLOADS
    assert report.sinks["raising"].spooled == N_PAYLOADS
    # The breaker opened after 3 failed payloads: the rest were never attempted.
    counters = runner.counters["raising"]
    assert counters["circuit_opened"] >= 1 and raising.attempts <= 3 * 3 + 2
    assert counters["skipped"] >= N_PAYLOADS - 3 - 2


def test_a_sink_nearly_as_slow_as_the_timeout_does_not_hold_back_a_healthy_one(tmp_path):
    healthy, slow = RecordingSink("healthy"), SleepingSink(0.15, "slow")
    runner = SinkRunner([slow, healthy], timeout_s=0.2, spool_dir=tmp_path)
    try:
        lags = feed(runner, healthy)
        # Before: 2 of 400 reached the healthy sink live, the rest were spooled.
        assert max(lags) <= 3, f"the healthy sink fell {max(lags)} payloads behind"
        report = runner.close(timeout_s=2.0)
    finally:
        slow.release()
    assert [step for _, step, _ in healthy.received] == list(range(N_PAYLOADS))
    assert report.complete
    assert report.sinks["healthy"].delivered == N_PAYLOADS
    slow_report = report.sinks["slow"]
    assert slow_report.delivered + slow_report.spooled == N_PAYLOADS
    assert len(spooled_steps(tmp_path / "slow.jsonl")) == slow_report.spooled


def test_close_of_a_hanging_sink_spools_everything_within_its_timeout(tmp_path):
    healthy, stuck = RecordingSink("healthy"), SleepingSink(30.0, "stuck")
    runner = SinkRunner([stuck, healthy], timeout_s=10.0, queue_size=256, spool_dir=tmp_path)
    try:
        for i in range(N_PAYLOADS):
            runner.submit(payload(i), step=i, epoch=0)
        assert stuck.entered.wait(5.0)
        started = time.monotonic()
        report = runner.close(timeout_s=1.0)
        took = time.monotonic() - started
        # Checked before the sink is released: all of it is on disk already.
        stuck_steps = spooled_steps(tmp_path / "stuck.jsonl")
    finally:
        stuck.release()
    assert took < 1.0 + 0.3, f"close took {took:.2f} s"
    assert sorted(stuck_steps) == list(range(N_PAYLOADS))
    assert report.complete and report.sinks["stuck"].spooled == N_PAYLOADS
    assert [step for _, step, _ in healthy.received] == list(range(N_PAYLOADS))


def test_the_breaker_tries_again_after_its_cool_down_and_closes_on_success(tmp_path):
    flaky = RaisingSink("flaky", fail_first=2)
    runner = SinkRunner(
        [flaky],
        retries=0,
        breaker_failures=2,
        breaker_cooldown_s=0.3,
        spool_dir=tmp_path,
    )
    runner.submit(payload(0), step=0, epoch=0)
    runner.submit(payload(1), step=1, epoch=0)  # second failure in a row: open
    assert runner.flush(timeout_s=5.0)
    runner.submit(payload(2), step=2, epoch=0)  # within the cool-down: not attempted
    assert runner.flush(timeout_s=5.0)
    assert flaky.attempts == 2
    time.sleep(0.35)
    runner.submit(payload(3), step=3, epoch=0)  # the trial: it succeeds, the breaker closes
    runner.submit(payload(4), step=4, epoch=0)
    report = runner.close(timeout_s=5.0)
    assert [step for _, step, _ in flaky.received] == [3, 4]
    assert spooled_steps(tmp_path / "flaky.jsonl") == [0, 1, 2]
    assert runner.counters["flaky"]["circuit_opened"] == 1
    assert report.sinks["flaky"].delivered == 2 and report.sinks["flaky"].spooled == 3


def test_replay_skips_and_keeps_lines_it_cannot_read_and_delivers_the_rest(tmp_path):
    spool = Spool(tmp_path)
    path = spool.path("jsonl")
    bad_lines = [
        b"\xff\xfe not utf-8",
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the recursion limit
        b'{"step": 1, "epoch": 0, "payload": [1, 2]}',  # JSON, not a record
        b'{"step": "x", "epoch": 0, "payload": {}}',
    ]
    with path.open("ab") as file:
        for i in range(6):
            file.write(json.dumps({"step": i, "epoch": 0, "payload": {"v": i}}).encode() + b"\n")
            if i < len(bad_lines):
                file.write(bad_lines[i] + b"\n")
    target = RecordingSink()
    count = replay_spool(path, target)
    assert count == 6 and count.bad == len(bad_lines) and count.kept == 0
    assert [step for _, step, _ in target.received] == list(range(6))
    assert not path.exists()
    assert count.bad_path is not None
    assert count.bad_path.read_bytes() == b"".join(line + b"\n" for line in bad_lines)
