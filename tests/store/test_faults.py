"""The stats server killed (SIGKILL) in the middle of a real reporter's run, then
restarted on the same port and database: every epoch's payload ends up stored exactly
once, and the training loop never waits for any of it."""

from __future__ import annotations

import math
import random
import threading
import time

from tests.store.support import TOKEN, free_port, same_payload

from fusedstats.reporter import StatsReporter, StatsReporterConfig
from fusedstats.sinks import StatsStoreSink
from fusedstats.store import HttpStatsClient

N_EPOCHS = 200
KILL_AT, RESTART_AT = 60, 110
SINK_TIMEOUT_S = 2.0
N_LOSSES = 100


def test_server_killed_mid_run_loses_and_duplicates_nothing(tmp_path, make_server):
    server = make_server(tmp_path / "db", port=free_port()).start()
    client = HttpStatsClient(
        server.url,
        token=TOKEN,
        spool_dir=tmp_path / "client-spool",
        timeout_s=1.0,
        max_backoff_s=0.2,
    )
    run = client.create_training_run("faults", "", "", ["sigkill"])["id"]
    reporter = StatsReporter(
        StatsReporterConfig(
            report_to_wandb=False,
            report_to_console=False,
            sink_timeout_s=SINK_TIMEOUT_S,
            # Room for every payload: on a starved CPU (shared CI boxes) the sink thread
            # may lag; a full queue would spool payloads to the runner's file instead.
            sink_queue_size=N_EPOCHS,
            spool_dir=str(tmp_path / "sink-spool"),
        ),
        extra_sinks=[StatsStoreSink(client, run)],
    )
    rng = random.Random()
    sent: dict[int, dict[str, float]] = {}
    longest = 0.0
    restart = threading.Thread(target=server.start)
    try:
        for epoch in range(1, N_EPOCHS + 1):
            if epoch == KILL_AT:
                server.kill()
            if epoch == RESTART_AT:
                restart.start()  # the loop goes on while the server comes back
            losses = {f"loss_{i}": rng.gauss(0.0, 1.0) for i in range(N_LOSSES)}
            losses["entropy"] = rng.choice([math.nan, math.inf, -math.inf, rng.random()])
            reporter.on_step([{"game/score": rng.random()} for _ in range(8)])
            started = time.perf_counter()
            reporter.report_epoch(
                epoch=epoch,
                agent_step=epoch * 64,
                losses_stats=losses,
                experience={"rewards": rng.random()},
            )
            longest = max(longest, time.perf_counter() - started)
            sent[epoch * 64] = reporter.get_latest_payload()
            time.sleep(0.005)  # a training step
        restart.join(60)
        counters = reporter.sink_counters["stats_store"]
        deadline = time.monotonic() + 60
        while counters["delivered"] + counters["failed"] < N_EPOCHS:
            assert time.monotonic() < deadline, counters
            time.sleep(0.05)
            counters = reporter.sink_counters["stats_store"]
    finally:
        reporter.finalize()
    assert client.flush(timeout_s=60), f"{client.pending} writes still spooled"

    # The kill happened under load: writes went to the spool and came back from it.
    assert client.counters["spooled"] > 0 and client.counters["replayed"] > 0
    # The client took every payload (spooling what it could not send), so the sink
    # never failed a write nor kept the runner waiting.
    assert counters["failed"] == counters["timed_out"] == 0, counters
    assert longest < SINK_TIMEOUT_S, f"report_epoch took {longest:.3f} s"

    stored = client.payloads(run)
    steps = [p["step"] for p in stored]
    assert steps == sorted(sent), "a payload is missing or stored twice"
    for p in stored:
        assert p["epoch"] == p["step"] // 64
        assert same_payload(p["payload"], sent[p["step"]]), p["step"]
    assert client.get_run(run)["status"] == "running"
    client.close()
    server.stop()
