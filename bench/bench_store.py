"""Stats store benchmark: payloads of 1,500 keys into the embedded store, through the
server, and through the reporter's sink thread at a trainer's pace.

    python bench/bench_store.py [--quick] [--out PATH] [--keys N] [--rate HZ]
                                [--keep-up-seconds S] [--no-server]

Cases (medians of rounds raced with ``fusedstats.bench.harness.race``; before every
round, untimed, a fresh batch of payloads, values drawn anew, named as a trainer's keys:
``fusedstats.bench.workloads.reporter.trainer_payloads``):

- ``embedded``: ``SqlStatsStore.record_metrics`` on an SQLite file (WAL), one
  transaction per payload, in a loop: sustained payloads/s. Also the read side on the
  stored run, raced together: ``metric_series`` of one key, ``payloads`` of the whole
  run.
- ``server``: a real ``python -m fusedstats.store.server`` on 127.0.0.1 (SQLite
  database), fed by 1 and by 4 concurrent ``HttpStatsClient`` s (one thread each, each
  write waiting for the server's answer): payloads/s stored, all clients together;
  and by one ``write_behind`` client (payloads spooled, sent in batches), timed until
  the server stored the last. The three race in one interleaved loop.
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

Target: the reporter's sink thread keeps up with 100 payloads/s of 1,500 keys without
growing its queue (``kept_up``), into the embedded store and through the server.

Prints a table and writes JSON (default bench/results/store.json; a --quick run writes
only where --out says). fusedstats is the installed package.
"""

from __future__ import annotations

import argparse
import itertools
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

from fusedstats.bench.harness import (
    Method,
    add_common_arguments,
    call,
    finish_report,
    new_report,
    race,
    save_report,
)
from fusedstats.bench.workloads.reporter import trainer_payloads

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "store.json"
TOKEN = "bench-token"
KEY_READ = "env_game/group_3/stat_7"  # the key whose series the read case reads


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def rates(seconds: list[float], count: int) -> dict[str, Any]:
    """Payloads/s of rounds of ``count`` payloads: the median round, and every round."""
    per_round = [rate(count, s) for s in seconds]
    return {
        "payloads_per_s": rate(count, statistics.median(seconds)),
        "rounds_payloads_per_s": per_round,
    }


# ---- embedded ---------------------------------------------------------------------------


def bench_embedded(n_keys: int, rounds: int, per_round: int, rng: random.Random) -> dict[str, Any]:
    """Writes of ``per_round`` payloads a round (the warm-up round creates the key
    dictionary), then the two reads of the stored run, raced."""
    from fusedstats.store import SqlStatsStore

    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStatsStore(tmp)
        run = store.create_training_run("bench", "", "", [])["id"]
        steps = itertools.count()

        def write(batch: list[dict[str, float]]) -> None:
            for payload in batch:
                step = next(steps)
                store.record_metrics(run, step, payload, epoch=step)

        writes = race(
            {
                "record_metrics": Method(
                    run=write, setup=lambda: trainer_payloads(n_keys, per_round, rng)
                )
            },
            rounds,
        )
        stored = next(steps)
        reads = race(
            {
                "metric_series": call(lambda: len(store.metric_series(run, KEY_READ))),
                "payloads": call(lambda: len(store.payloads(run)), max_reps=3),
            },
            5,
        )
        if reads.outputs != {"metric_series": stored, "payloads": stored}:
            raise RuntimeError(f"read back {reads.outputs}, stored {stored} payloads")
        db_bytes = sum(f.stat().st_size for f in Path(tmp).iterdir())
        store.close()
    return {
        **rates(writes.times["record_metrics"], per_round),
        "payloads_stored": stored,
        "metric_series_median_s": reads.median("metric_series"),
        "payloads_read_median_s": reads.median("payloads"),
        "database_bytes": db_bytes,
        "bytes_per_value": db_bytes / (stored * n_keys),
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


class Clients:
    """``n`` HTTP clients of one server, a run each, writing concurrently (one thread
    each, every write waiting for the server's answer)."""

    def __init__(self, server: Server, spool: Path, n: int, n_keys: int, rng: random.Random):
        from fusedstats.store import HttpStatsClient

        self.clients = [
            HttpStatsClient(server.url, token=TOKEN, spool_dir=spool / f"{n}-{i}") for i in range(n)
        ]
        self.runs = [
            c.create_training_run(f"bench-{n}-{i}", "", "", [])["id"]
            for i, c in enumerate(self.clients)
        ]
        for client, run in zip(self.clients, self.runs, strict=True):  # the key dictionary
            client.record_metrics(run, -1, trainer_payloads(n_keys, 1, rng)[0])
        self.n_keys, self.rng = n_keys, rng
        self.calls = 0
        self.errors: list[BaseException] = []

    def send(
        self, client: Any, run: Any, batch: list[Any], first: int, barrier: threading.Barrier
    ) -> None:
        try:
            barrier.wait()
            for i, payload in enumerate(batch):
                result = client.record_metrics(run, first + i, payload)
                if result is None or result.get("spooled"):
                    raise RuntimeError(f"a write was not stored: {result}")
        except BaseException as e:  # reported by the timed call
            self.errors.append(e)

    def setup(self, per_client: int) -> tuple[list[threading.Thread], threading.Barrier]:
        """Threads with their payloads, waiting at a barrier the timed call opens."""
        barrier = threading.Barrier(len(self.clients) + 1)
        first, self.calls = self.calls * per_client, self.calls + 1
        threads = [
            threading.Thread(
                target=self.send,
                args=(c, run, trainer_payloads(self.n_keys, per_client, self.rng), first, barrier),
            )
            for c, run in zip(self.clients, self.runs, strict=True)
        ]
        for thread in threads:
            thread.start()
        return threads, barrier

    def run(self, state: tuple[list[threading.Thread], threading.Barrier]) -> None:
        threads, barrier = state
        barrier.wait()
        for thread in threads:
            thread.join()
        if self.errors:
            raise self.errors[0]

    def close(self, per_client: int) -> None:
        """Checks every payload was stored; closes the clients."""
        for client, run in zip(self.clients, self.runs, strict=True):
            if len(client.payloads(run)) != self.calls * per_client + 1:
                raise RuntimeError(f"run {run}: not every payload was stored")
            client.close()


def bench_server(
    server: Server, spool: Path, n_keys: int, rounds: int, per_client: int, rng: random.Random
) -> dict[str, Any]:
    """1 and 4 concurrent clients, and one write-behind client, raced."""
    from fusedstats.store import HttpStatsClient

    groups = {n: Clients(server, spool, n, n_keys, rng) for n in (1, 4)}
    # One write-behind client: payloads go to its disk spool and are sent in batches;
    # timed from the first write until the server stored the last.
    behind = HttpStatsClient(
        server.url, token=TOKEN, spool_dir=spool / "write-behind", write_behind=True
    )
    run = behind.create_training_run("bench-write-behind", "", "", [])["id"]
    behind.record_metrics(run, -1, trainer_payloads(n_keys, 1, rng)[0])
    if not behind.flush(60):
        raise RuntimeError("the write-behind client did not flush in 60 s")
    steps = itertools.count()

    def write_behind(batch: list[dict[str, float]]) -> None:
        for payload in batch:
            behind.record_metrics(run, next(steps), payload)
        if not behind.flush(120):
            raise RuntimeError("the write-behind client did not flush in 120 s")

    methods = {
        f"{n}_clients": Method(run=g.run, setup=lambda g=g: g.setup(per_client))
        for n, g in groups.items()
    }
    methods["1_client_write_behind"] = Method(
        run=write_behind, setup=lambda: trainer_payloads(n_keys, 4 * per_client, rng)
    )
    result = race(methods, rounds)
    for g in groups.values():
        g.close(per_client)
    if len(behind.payloads(run)) != next(steps) + 1:
        raise RuntimeError("the write-behind client's run lacks payloads")
    out = {f"{n}_clients": rates(result.times[f"{n}_clients"], n * per_client) for n in groups}
    out["1_client_write_behind"] = rates(result.times["1_client_write_behind"], 4 * per_client)
    out["1_client_write_behind"]["batches"] = behind.counters["batches"]
    behind.close()
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


def run_server_cases(
    args: argparse.Namespace, rounds: int, seconds: float, rng: random.Random
) -> dict[str, Any]:
    """The server's throughput race and the keep-up runs through it."""
    from fusedstats.store import HttpStatsClient

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "server.db", Path(tmp) / "server.log")
        try:
            print("server, 1 and 4 clients, and write-behind ...", flush=True)
            out["server"] = bench_server(
                server, Path(tmp) / "spool", args.keys, rounds, 15 if args.quick else 40, rng
            )
            print(f"keep-up, via the server: {args.rate:g}/s for {seconds:g} s ...", flush=True)
            for name, behind in (("keep_up_server", False), ("keep_up_server_write_behind", True)):
                client = HttpStatsClient(
                    server.url, token=TOKEN, spool_dir=Path(tmp) / f"spool-{name}",
                    write_behind=behind,
                )  # fmt: skip
                out[name] = keep_up(
                    client, args.keys, args.rate, seconds, rng, Path(tmp) / f"sink-{name}"
                )
                out[name]["client_counters"] = client.counters
                client.close()
        finally:
            server.close()
    return out


def print_report(results: dict[str, Any]) -> None:
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
        if name not in results:
            continue
        k = results[name]
        spool = k["client_spool_pending_after_last"]
        print(
            f"{name:34} {k['reached_hz']:>6.1f}/s, queue depth median {k['queue_depth_median']}"
            f" p95 {k['queue_depth_p95']} max {k['queue_depth_max']}, refused "
            f"{k['dropped_queue_full']}, drained in {k['drain_after_last_s']:.2f} s, "
            f"kept up: {k['kept_up']}"
            + (
                ""
                if spool is None
                else f"; client spool at the end {spool}, "
                f"stored all {k['client_flush_after_close_s']:.2f} s later"
            )
        )
    print(f"target: the sink keeps up at 100 payloads/s: {results['targets']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    add_common_arguments(parser, DEFAULT_OUT)
    parser.add_argument("--keys", type=int, default=1500, help="keys per payload (1500)")
    parser.add_argument("--rate", type=float, default=100.0, help="keep-up payloads/s (100)")
    parser.add_argument("--keep-up-seconds", type=float, default=None, help="(10; quick 3)")
    parser.add_argument("--no-server", action="store_true", help="skip the server cases")
    args = parser.parse_args(argv)

    from fusedstats.store import SqlStatsStore

    rounds = 3 if args.quick else 5
    seconds = args.keep_up_seconds or (3.0 if args.quick else 10.0)
    rng = random.Random()
    results = new_report(
        "store",
        quick=args.quick,
        libraries=("numpy", "sqlalchemy", "httpx", "fastapi", "uvicorn"),
        checkout=ROOT,
        settings={
            "keys": args.keys,
            "rounds": rounds,
            "keep_up_hz": args.rate,
            "keep_up_seconds": seconds,
            "server_clients": [1, 4],
            "database": "SQLite file, WAL, synchronous=NORMAL",
        },
    )
    print(f"embedded store, {args.keys}-key payloads ...", flush=True)
    results["embedded"] = bench_embedded(args.keys, rounds, 40 if args.quick else 100, rng)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStatsStore(Path(tmp) / "keep-up.db")
        print(f"keep-up, embedded: {args.rate:g}/s for {seconds:g} s ...", flush=True)
        results["keep_up_embedded"] = keep_up(
            store, args.keys, args.rate, seconds, rng, Path(tmp) / "sink-spool"
        )
        store.close()
    if not args.no_server:
        results.update(run_server_cases(args, rounds, seconds, rng))
    results["targets"] = {
        f"{name}_kept_up": results[name]["kept_up"]
        for name in ("keep_up_embedded", "keep_up_server", "keep_up_server_write_behind")
        if name in results
    }
    finish_report(results)
    print_report(results)
    save_report(results, args.out, args.quick, DEFAULT_OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
