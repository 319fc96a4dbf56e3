"""A trainer process of test_client_spool.py whose server is away, killed mid-run.

    python _spooling_trainer.py SERVER_URL SPOOL_DIR RUN_ID N

Creates the run and writes N payloads (steps 0..N-1, value ``step / 4``), all of which
go to the spool; prints "spooled" and then waits to be killed (SIGKILL: no clean-up).
"""

from __future__ import annotations

import sys
import time
import uuid


def main() -> None:
    from fusedstats.store import HttpStatsClient

    url, spool_dir, run, n = sys.argv[1:]
    client = HttpStatsClient(url, token="unused-while-away", spool_dir=spool_dir, timeout_s=1)
    run_id = uuid.UUID(run)
    client.create_training_run("killed", "", "", [], run_id=run_id)
    for step in range(int(n)):
        result = client.record_metrics(run_id, step, {"value": step / 4}, epoch=step)
        assert result is not None and result["spooled"] is True
    print("spooled", flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main()
