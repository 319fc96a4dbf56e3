"""Stats store benchmark: payloads of 1,500 keys into the embedded store, through the
server, and through the reporter's sink thread at a trainer's pace.

    python bench/bench_store.py [--quick] [--out PATH] [--keys N] [--rate HZ]
                                [--keep-up-seconds S] [--no-server]

Cases (medians of rounds; every round a fresh batch of payloads, values drawn anew):

- ``embedded``: ``SqlStatsStore.record_metrics`` on an SQLite file (WAL), one
  transaction per payload, in a loop: sustained payloads/s. Also the read side on the
  stored run: ``metric_series`` of one key, ``payloads`` of the whole run.
- ``server``: a real ``python -m fusedstats.store.server`` on 127.0.0.1 (SQLite
  database), fed by 1 and by 4 concurrent ``HttpStatsClient`` s (one thread each, each
  write waiting for the server's answer): payloads/s stored, all clients together;
  and by one ``write_behind`` client (payloads spooled, sent in batches), timed until
  the server stored the last.
- ``keep_up``: a real ``StatsReporter`` with a ``StatsStoreSink`` (extra sink; no W&B,
  no console) reporting an epoch of ~1,500 keys at ``--rate`` (100/s) for
  ``--keep-up-seconds``, into the embedded store, and through the server with a plain
  and with a ``write_behind`` client.
  Sampled after every report: the payloads submitted but not yet written (the
  runner's queue plus the one being written), from the runner's public counters;
  reported: their median, 95th percentile and maximum, the payloads refused by a full
  queue (``dropped_queue_full``: spooled, not lost), the rate reached, and the time to
  drain at the end. The sink keeps up when the depth stays flat (a few payloads) and
  nothing is refused.

Prints a table and writes JSON (default bench/results/store.json; a --quick run writes
only where --out says). fusedstats is the installed package.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "store.json"
TOKEN = "bench-token"


def payloads(n_keys: int, count: int, rng: random.Random) -> list[dict[str, float]]:
    """``count`` payloads of ``n_keys`` keys named like a trainer's (stable across calls)."""
    names = [f"env_game/group_{i // 50}/stat_{i % 50}" for i in range(n_keys)]
    return [{name: rng.random() for name in names} for _ in range(count)]


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


# ---- embedded ---------------------------------------------------------------------------


def bench_embedded(n_keys: int, rounds: int, per_round: int, rng: random.Random) -> dict[str, Any]:
    from fusedstats.store import SqlStatsStore

    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStatsStore(tmp)
        run = store.create_training_run("bench", "", "", [])["id"]
        step = 0
        for payload in payloads(n_keys, 3, rng):  # warm-up: creates the key dictionary
            store.record_metrics(run, step, payload)
            step += 1
        rates = []
        for _ in range(rounds):
            batch = payloads(n_keys, per_round, rng)
            started = time.perf_counter()
            for payload in batch:
                store.record_metrics(run, step, payload, epoch=step)
                step += 1
            rates.append(rate(per_round, time.perf_counter() - started))
        series_s, all_s = [], []
        for _ in range(5):
            started = time.perf_counter()
            series = store.metric_series(run, "env_game/group_3/stat_7")
            series_s.append(time.perf_counter() - started)
        for _ in range(3):
            started = time.perf_counter()
            stored = store.payloads(run)
            all_s.append(time.perf_counter() - started)
        assert len(series) == step and len(stored) == step
        db_bytes = sum(f.stat().st_size for f in Path(tmp).iterdir())
        store.close()
    return {
        "payloads_per_s": statistics.median(rates),
        "rounds_payloads_per_s": rates,
        "payloads_stored": step,
        "metric_series_median_s": statistics.median(series_s),
        "payloads_read_median_s": statistics.median(all_s),
        "database_bytes": db_bytes,
        "bytes_per_value": db_bytes / (step * n_keys),
    }


# ---- server -------------------------------------------------------------------------------


class Server:
    def __init__(self, db: Path, log: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "fusedstats.store.server", "--db", str(db)),
                *("--host", "127.0.0.1", "--port", str(self.port)),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "FUSEDSTATS_SERVER_TOKEN": TOKEN},  # not in the process list
        )
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited: {log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the server did not start in 60 s")

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def bench_server(
    server: Server, spool: Path, n_keys: int, rounds: int, per_client: int, rng: random.Random
) -> dict[str, Any]:
    from fusedstats.store import HttpStatsClient

    out: dict[str, Any] = {}
    for n_clients in (1, 4):
        clients = [
            HttpStatsClient(server.url, token=TOKEN, spool_dir=spool / f"{n_clients}-{i}")
            for i in range(n_clients)
        ]
        runs = [
            c.create_training_run(f"bench-{i}", "", "", [])["id"] for i, c in enumerate(clients)
        ]
        for client, run in zip(clients, runs, strict=True):  # warm-up: key dictionaries
            client.record_metrics(run, -1, payloads(n_keys, 1, rng)[0])
        rates = []
        for r in range(rounds):
            batches = [payloads(n_keys, per_client, rng) for _ in clients]
            barrier = threading.Barrier(n_clients + 1)

            def send(
                client: HttpStatsClient,
                run: Any,
                batch: list[dict[str, float]],
                first_step: int,
                barrier: threading.Barrier = barrier,
            ) -> None:
                barrier.wait()
                for i, payload in enumerate(batch):
                    result = client.record_metrics(run, first_step + i, payload)
                    assert result is not None and not result.get("spooled")

            threads = [
                threading.Thread(target=send, args=(c, run, b, r * per_client))
                for c, run, b in zip(clients, runs, batches, strict=True)
            ]
            for thread in threads:
                thread.start()
            barrier.wait()
            started = time.perf_counter()
            for thread in threads:
                thread.join()
            rates.append(rate(n_clients * per_client, time.perf_counter() - started))
        for client, run in zip(clients, runs, strict=True):
            assert len(client.payloads(run)) == rounds * per_client + 1
            client.close()
        out[f"{n_clients}_clients"] = {
            "payloads_per_s": statistics.median(rates),
            "rounds_payloads_per_s": rates,
        }
    # One write-behind client: payloads go to its disk spool and are sent in batches;
    # timed from the first write until the server stored the last.
    client = HttpStatsClient(
        server.url, token=TOKEN, spool_dir=spool / "write-behind", write_behind=True
    )
    run = client.create_training_run("bench-write-behind", "", "", [])["id"]
    client.record_metrics(run, -1, payloads(n_keys, 1, rng)[0])
    assert client.flush(60)
    rates = []
    for r in range(rounds):
        batch = payloads(n_keys, 4 * per_client, rng)
        started = time.perf_counter()
        for i, payload in enumerate(batch):
            client.record_metrics(run, r * len(batch) + i, payload)
        assert client.flush(120)
        rates.append(rate(len(batch), time.perf_counter() - started))
    assert len(client.payloads(run)) == rounds * 4 * per_client + 1
    out["1_client_write_behind"] = {
        "payloads_per_s": statistics.median(rates),
        "rounds_payloads_per_s": rates,
        "batches": client.counters["batches"],
    }
    client.close()
    return out


# ---- the reporter's sink thread -----------------------------------------------------------


def keep_up(
    store: Any, n_keys: int, hz: float, seconds: float, rng: random.Random, spool_dir: Path
) -> dict[str, Any]:
    """A reporter reporting ~n_keys-key epochs at ``hz`` into ``store`` via its sink."""
    from fusedstats.reporter import StatsReporter, StatsReporterConfig
    from fusedstats.sinks import StatsStoreSink

    run = store.create_training_run("keep-up", "", "", [])["id"]
    reporter = StatsReporter(
        StatsReporterConfig(
            report_to_wandb=False, report_to_console=False, spool_dir=str(spool_dir)
        ),
        extra_sinks=[StatsStoreSink(store, run)],
    )
    # The reporter adds ~10 keys of its own (metric/, overview/, experience/...).
    names = [f"group_{i // 50}/stat_{i % 50}" for i in range(n_keys - 10)]
    count = int(hz * seconds)
    depths: list[int] = []
    report_s: list[float] = []

    def waiting() -> tuple[int, dict[str, int]]:
        counters = reporter.sink_counters
        sink, runner = counters["stats_store"], counters["runner"]
        taken = sink["delivered"] + sink["failed"]
        return runner["submitted"] - runner["dropped_queue_full"] - taken, runner

    started = time.perf_counter()
    for epoch in range(count):
        due = started + epoch / hz
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        losses = {name: rng.random() for name in names}
        before = time.perf_counter()
        reporter.report_epoch(
            epoch=epoch, agent_step=epoch * 64, losses_stats=losses, experience={"rewards": 1.0}
        )
        report_s.append(time.perf_counter() - before)
        depths.append(waiting()[0])
    submitted_s = time.perf_counter() - started
    client_pending = getattr(store, "pending", None)  # a server client's spool
    keys = len(reporter.get_latest_payload() or {})
    drain_started = time.perf_counter()
    while waiting()[0] > 0 and time.perf_counter() - drain_started < 120:
        time.sleep(0.01)
    drain_s = time.perf_counter() - drain_started
    _, runner = waiting()
    sink = reporter.sink_counters["stats_store"]
    reporter.finalize()
    flush_started = time.perf_counter()
    store.flush(120)  # a write-behind client: until the server stored everything
    flush_s = time.perf_counter() - flush_started
    stored = len(store.payloads(run))
    ordered = sorted(depths)
    tenth = max(1, len(depths) // 10)
    # Kept up: nothing refused by a full queue, and no growth: the depth over the last
    # tenth of the run is no higher than over the rest (or than a few payloads).
    earlier_max = max(depths[:-tenth], default=0)
    kept_up = runner["dropped_queue_full"] == 0 and max(depths[-tenth:]) <= max(8, earlier_max)
    return {
        "payload_keys": keys,
        "target_hz": hz,
        "reached_hz": rate(count, submitted_s),
        "submitted": runner["submitted"],
        "dropped_queue_full": runner["dropped_queue_full"],
        "delivered": sink["delivered"],
        "failed": sink["failed"],
        "stored": stored,
        "queue_depth_median": statistics.median(depths),
        "queue_depth_p95": ordered[int(0.95 * (len(ordered) - 1))],
        "queue_depth_max": max(depths),
        "queue_depth_last_tenth_max": max(depths[-tenth:]),
        "drain_after_last_s": drain_s,
        "client_spool_pending_after_last": client_pending,
        "client_flush_after_close_s": flush_s,
        "report_epoch_median_s": statistics.median(report_s),
        "kept_up": kept_up,
    }


# ---- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (about 30 s)")
    parser.add_argument("--out", type=Path, default=None, help=f"JSON path ({DEFAULT_OUT})")
    parser.add_argument("--keys", type=int, default=1500, help="keys per payload (1500)")
    parser.add_argument("--rate", type=float, default=100.0, help="keep-up payloads/s (100)")
    parser.add_argument("--keep-up-seconds", type=float, default=None, help="(10; quick 3)")
    parser.add_argument("--no-server", action="store_true", help="skip the server cases")
    args = parser.parse_args(argv)

    from fusedstats.bench.timing import host_info
    from fusedstats.store import HttpStatsClient, SqlStatsStore

    quick = args.quick
    rounds = 3 if quick else 5
    seconds = args.keep_up_seconds or (3.0 if quick else 10.0)
    rng = random.Random()
    results: dict[str, Any] = {
        "machine": host_info(),
        "settings": {
            "quick": quick,
            "keys": args.keys,
            "rounds": rounds,
            "keep_up_hz": args.rate,
            "keep_up_seconds": seconds,
            "server_clients": [1, 4],
            "database": "SQLite file, WAL, synchronous=NORMAL",
        },
    }
    print(f"embedded store, {args.keys}-key payloads ...", flush=True)
    results["embedded"] = bench_embedded(args.keys, rounds, 40 if quick else 100, rng)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStatsStore(Path(tmp) / "keep-up.db")
        print(f"keep-up, embedded: {args.rate:g}/s for {seconds:g} s ...", flush=True)
        results["keep_up_embedded"] = keep_up(
            store, args.keys, args.rate, seconds, rng, Path(tmp) / "sink-spool"
        )
        store.close()
    if not args.no_server:
        with tempfile.TemporaryDirectory() as tmp:
            server = Server(Path(tmp) / "server.db", Path(tmp) / "server.log")
            try:
                print("server, 1 and 4 clients ...", flush=True)
                results["server"] = bench_server(
                    server, Path(tmp) / "spool", args.keys, rounds, 15 if quick else 40, rng
                )
                print(f"keep-up, via the server: {args.rate:g}/s for {seconds:g} s ...")
                for name, behind in (
                    ("keep_up_server", False),
                    ("keep_up_server_write_behind", True),
                ):
                    client = HttpStatsClient(
                        server.url,
                        token=TOKEN,
                        spool_dir=Path(tmp) / f"spool-{name}",
                        write_behind=behind,
                    )
                    results[name] = keep_up(
                        client, args.keys, args.rate, seconds, rng, Path(tmp) / f"sink-{name}"
                    )
                    results[name]["client_counters"] = client.counters
                    client.close()
            finally:
                server.close()
    results["machine"]["load_average_1_5_15_after"] = [round(x, 2) for x in os.getloadavg()]

    print()
    print(f"{'case':34} {'median':>16}")
    embedded = results["embedded"]
    print(f"{'embedded record_metrics':34} {embedded['payloads_per_s']:>10.0f} payloads/s")
    print(f"{'embedded metric_series':34} {embedded['metric_series_median_s'] * 1e3:>13.2f} ms")
    print(f"{'embedded payloads() of the run':34} {embedded['payloads_read_median_s']:>14.3f} s")
    for name, case in results.get("server", {}).items():
        print(
            f"{'server, ' + name.replace('_', ' '):34} {case['payloads_per_s']:>10.0f} payloads/s"
        )
    for name in ("keep_up_embedded", "keep_up_server", "keep_up_server_write_behind"):
        if name in results:
            k = results[name]
            print(
                f"{name:34} {k['reached_hz']:>6.1f}/s, queue depth median {k['queue_depth_median']}"
                f" p95 {k['queue_depth_p95']} max {k['queue_depth_max']}, refused "
                f"{k['dropped_queue_full']}, drained in {k['drain_after_last_s']:.2f} s, "
                f"kept up: {k['kept_up']}"
                + (
                    ""
                    if k["client_spool_pending_after_last"] is None
                    else f"; client spool at the end {k['client_spool_pending_after_last']}, "
                    f"stored all {k['client_flush_after_close_s']:.2f} s later"
                )
            )
    out = args.out if args.out is not None else (None if quick else DEFAULT_OUT)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
