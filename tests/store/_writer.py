"""A writer process of test_concurrency.py: writes to one store as fast as it can.

    python _writer.py URL WRITER SHARED_RUN_ID N_PAYLOADS N_KEYS BARRIER_DIR

Opens the store (creating the schema if nobody did yet), creates its own run, and
waits at a start line (it writes BARRIER_DIR/ready-WRITER and waits for
BARRIER_DIR/go, so that the writes of both processes overlap however slowly each
started), then writes N_PAYLOADS payloads of N_KEYS keys into its run and into the shared run (steps
WRITER, WRITER + 2, ...), with an epoch per payload in its run. Values are
``value(writer, step, key)``, so the test can check every one. Prints one JSON line:
its run id and the times of its first and last write.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path


def value(writer: int, step: int, key: int) -> float:
    if key == 0 and step % 7 == 0:
        return float("nan")
    return writer * 1e6 + step * 1e3 + key


def main() -> None:
    from fusedstats.store import SqlStatsStore

    url, writer, shared, n_payloads, n_keys, barrier = sys.argv[1:]
    w, n, k = int(writer), int(n_payloads), int(n_keys)
    store = SqlStatsStore(url)
    shared_run = store.create_training_run("shared", "", "", [], run_id=uuid.UUID(shared))["id"]
    own = store.create_training_run(f"writer-{w}", "", "", [])["id"]
    (Path(barrier) / f"ready-{w}").touch()
    deadline = time.monotonic() + 120
    while not (Path(barrier) / "go").exists():
        if time.monotonic() > deadline:
            raise SystemExit("the start signal never came")
        time.sleep(0.005)
    first = time.time()
    for i in range(n):
        step = w + 2 * i
        payload = {f"key/{j}": value(w, step, j) for j in range(k)}
        store.record_metrics(own, step, payload, epoch=i)
        store.record_metrics(shared_run, step, payload, idempotency_key=f"{w}/{i}")
        store.create_epoch(own, i, i + 1, {"writer": w})
    last = time.time()
    store.update_training_run_status(own, "completed")
    store.close()
    print(json.dumps({"run": str(own), "first": first, "last": last}))


if __name__ == "__main__":
    main()
