"""The reporter with a real W&B run in offline mode: epochs land in the run's history at
their agent steps (the sink itself is tested in tests/sinks)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

wandb = pytest.importorskip("wandb")


def _history(run_dir):
    done = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return [r["history"] for r in records if r["type"] == "history"]


@pytest.mark.slow
def test_epochs_reach_the_offline_run(make_reporter, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(
        project="fusedstats-reporter-tests",
        mode="offline",
        dir=tmp_path,
        settings=wandb.Settings(
            console="off", silent=True, x_disable_stats=True, disable_git=True, save_code=False
        ),
    )
    try:
        reporter = make_reporter(report_to_wandb=True, wandb_run=run)
        for epoch in (1, 2, 3):
            reporter.on_step([{"game": {"score": float(epoch)}}, {"game": {"score": 0.0}}])
            reporter.report_epoch(epoch, epoch * 256, {"policy_loss": 0.5 / epoch}, {})
        reporter.finalize()
    finally:
        run.finish()
    history = _history(Path(run.dir).parent)
    assert [h["step"]["num"] for h in history] == [256, 512, 768]
    for epoch, h in enumerate(history, start=1):
        item = h["item"]
        assert item["metric/agent_step"] == epoch * 256
        assert item["metric/epoch"] == epoch
        assert item["env_game/score"] == pytest.approx(epoch / 2)
        assert item["losses/policy_loss"] == pytest.approx(0.5 / epoch)
