"""Two processes writing one store at once (an SQLite file; PostgreSQL when configured)
lose nothing, and both may create the schema of a new database at the same moment."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.store._writer import value

from fusedstats.store import SqlStatsStore

WRITER = Path(__file__).with_name("_writer.py")
N_PAYLOADS = 120
N_KEYS = 150


def test_two_processes_writing_one_store_lose_nothing(db_url, tmp_path):
    shared = uuid.uuid4()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WRITER),
                db_url,
                str(w),
                str(shared),
                str(N_PAYLOADS),
                str(N_KEYS),
                str(tmp_path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in (0, 1)
    ]
    # Both writers past their start-up (imports, schema, runs) before either writes:
    # under load one could otherwise finish before the other began.
    deadline = time.monotonic() + 180
    while not all((tmp_path / f"ready-{w}").exists() for w in (0, 1)):
        assert time.monotonic() < deadline, "a writer never got ready"
        assert all(p.poll() is None for p in procs), "a writer died before writing"
        time.sleep(0.01)
    (tmp_path / "go").touch()
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    # The writes really overlapped in time (else this test proved nothing).
    assert max(r["first"] for r in reports) < min(r["last"] for r in reports)

    store = SqlStatsStore(db_url)
    try:
        runs = {run["name"]: run for run in store.list_runs()}
        assert set(runs) == {"shared", "writer-0", "writer-1"}
        for w, report in enumerate(reports):
            run = uuid.UUID(report["run"])
            assert runs[f"writer-{w}"]["status"] == "completed"
            stored = store.payloads(run)
            assert [p["step"] for p in stored] == [w + 2 * i for i in range(N_PAYLOADS)]
            assert [p["epoch"] for p in stored] == list(range(N_PAYLOADS))
            for p in stored:
                assert len(p["payload"]) == N_KEYS
                for j in (0, 1, N_KEYS - 1):
                    want, got = value(w, p["step"], j), p["payload"][f"key/{j}"]
                    assert got == want or (math.isnan(got) and math.isnan(want))
            assert [e["start_training_epoch"] for e in store.epochs(run)] == list(range(N_PAYLOADS))
        shared_payloads = store.payloads(shared)
        assert [p["step"] for p in shared_payloads] == list(range(2 * N_PAYLOADS))
        assert len(store.metric_keys(shared)) == N_KEYS  # one dictionary, both writers
        series = store.metric_series(shared, f"key/{N_KEYS - 1}")
        assert series == [(s, value(s % 2, s, N_KEYS - 1)) for s in range(2 * N_PAYLOADS)]
    finally:
        store.close()
