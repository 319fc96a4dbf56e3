"""The reporter with a real W&B run in offline mode: epochs land in the run's history at
their agent steps (the sink itself is tested in tests/sinks)."""

from pathlib import Path

import pytest
from tests.offline_wandb import history, offline_run

wandb = pytest.importorskip("wandb")


@pytest.mark.slow
def test_epochs_reach_the_offline_run(make_reporter, tmp_path, monkeypatch):
    with offline_run(tmp_path, monkeypatch, "fusedstats-reporter-tests") as run:
        reporter = make_reporter(report_to_wandb=True, wandb_run=run)
        for epoch in (1, 2, 3):
            reporter.on_step([{"game": {"score": float(epoch)}}, {"game": {"score": 0.0}}])
            reporter.report_epoch(epoch, epoch * 256, {"policy_loss": 0.5 / epoch}, {})
        reporter.finalize()
    records = history(Path(run.dir).parent)
    assert [h["step"]["num"] for h in records] == [256, 512, 768]
    for epoch, h in enumerate(records, start=1):
        item = h["item"]
        assert item["metric/agent_step"] == epoch * 256
        assert item["metric/epoch"] == epoch
        assert item["env_game/score"] == pytest.approx(epoch / 2)
        assert item["losses/policy_loss"] == pytest.approx(0.5 / epoch)
