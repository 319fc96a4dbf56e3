"""WandbSink against a real W&B run in offline mode, read back from the run's .wandb log."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from tests.offline_wandb import offline_run, read_records

from fusedstats.sinks import SinkRunner, WandbSink

wandb = pytest.importorskip("wandb")

STEPS = (10, 20, 30)


@pytest.fixture(name="offline_run")
def _offline_run(tmp_path, monkeypatch):
    with offline_run(tmp_path, monkeypatch, "fusedstats-tests") as run:
        yield run


def test_payloads_reach_the_run_history_at_their_steps(offline_run):
    run_dir = Path(offline_run.dir).parent  # .dir is the run's files/ folder
    runner = SinkRunner([WandbSink(offline_run)])
    for step in STEPS:
        payload = {
            "metric/agent_step": float(step),
            "overview/sps": 100.0 * step,
            "losses/policy_loss": -0.5 / step,
            "grad/norm": math.nan if step == 20 else 1.0,
            "env_game/label": "text is dropped",
        }
        assert runner.submit(payload, step=step, epoch=step // 10)
    runner.close()
    assert runner.counters["wandb"]["delivered"] == 3
    offline_run.finish()

    records = read_records(run_dir)
    history = [r["history"] for r in records if r["type"] == "history"]
    assert [h["step"]["num"] for h in history] == list(STEPS)
    for step, h in zip(STEPS, history, strict=True):
        item = h["item"]
        assert item["metric/agent_step"] == step
        assert item["overview/sps"] == pytest.approx(100.0 * step)
        assert item["losses/policy_loss"] == pytest.approx(-0.5 / step)
        assert item["grad/norm"] == ("NaN" if step == 20 else 1)
        assert "env_game/label" not in item

    metrics = [r["metric"] for r in records if r["type"] == "metric"]
    assert {"name": "metric/agent_step", "options": {"defined": True}} in metrics
    glob = next(m for m in metrics if m.get("glob_name") == "*")
    assert glob["step_metric"] == "metric/agent_step"


def test_define_metrics_failure_is_only_logged(caplog):
    # A real run does not refuse define_metric; this stand-in does.
    class RefusingRun:
        def define_metric(self, *args, **kwargs):
            raise RuntimeError("no metrics here")

    sink = WandbSink(RefusingRun())
    assert sink.name == "wandb"
    failed = [r.getMessage() for r in caplog.records if r.name == "fusedstats.sinks"]
    assert [m.split(",")[0] for m in failed] == [
        "wandb: define_metric('metric/agent_step'",
        "wandb: define_metric('*'",
    ]


def test_importing_the_sinks_does_not_import_wandb():
    code = "import sys, fusedstats.sinks; print('wandb' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "False"
