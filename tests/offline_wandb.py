"""A real W&B run in offline mode, and its log read back from disk (shared by the sink
and reporter tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def offline_run(tmp_path: Path, monkeypatch: Any, project: str) -> Iterator[Any]:
    """A wandb Run writing only under ``tmp_path``, finished on exit."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(
        project=project,
        mode="offline",
        dir=tmp_path,
        settings=wandb.Settings(
            console="off", silent=True, x_disable_stats=True, disable_git=True, save_code=False
        ),
    )
    try:
        yield run
    finally:
        run.finish()


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """The records of the run's transaction log, as wandb-core prints them (wandb 0.31
    ships this reader; its internal datastore module is gone)."""
    done = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def history(run_dir: Path) -> list[dict[str, Any]]:
    """The run's history records (step and logged items), in order."""
    return [r["history"] for r in read_records(run_dir) if r["type"] == "history"]
