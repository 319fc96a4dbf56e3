"""The demo learns: over a run of a fresh random seed, the reward of the last epochs
clearly beats that of the first ones, and the stats overhead is measured."""

from __future__ import annotations

import json
import random
import statistics

import pytest

from fusedstats.demo import DemoConfig, run_demo

EPOCHS = 12


@pytest.mark.slow
def test_reward_improves_by_a_clear_margin(tmp_path):
    seed = random.SystemRandom().randrange(2**31)
    print(f"seed={seed}")
    result = run_demo(
        DemoConfig(epochs=EPOCHS, seed=seed, out=str(tmp_path), name="learn", progress=False),
        log=print,
    )
    first = statistics.fmean(result.rewards[:3])
    last = statistics.fmean(result.rewards[-3:])
    # A random walk earns ~0.02 per agent step, walking to the heart ~0.25; measured over
    # seeds: first three epochs 0.01-0.03, last three 0.24-0.26.
    assert first < 0.08, result.rewards
    assert last > first + 0.12, result.rewards
    assert last > 3 * first, result.rewards
    # The evaluation at the end collects several times the hearts of the first one.
    assert result.eval_scores[max(result.eval_scores)] > 2 * result.eval_scores[1]
    assert 0.0 < result.stats_fraction < 0.2
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == EPOCHS
