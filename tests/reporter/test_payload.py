"""build_wandb_payload and its parts: key rules, scalars only, group order."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from fusedstats.reporter import (
    CORE_MOVEMENT_KEYS,
    EvalRewardSummary,
    ProcessedStats,
    TimingInfo,
    as_scalar,
    build_wandb_payload,
    process_training_stats,
)
from fusedstats.reporter.payload import add_default_zero_metrics, environment_stats

EMPTY = ProcessedStats()


def _payload(processed=EMPTY, timing=None, **groups):
    args = {
        "weight_stats": {},
        "grad_stats": {},
        "system_stats": {},
        "memory_stats": {},
        "parameters": {},
        "hyperparameters": {},
        "evals": None,
    }
    args.update(groups)
    return build_wandb_payload(
        processed,
        timing,
        args["weight_stats"],
        args["grad_stats"],
        args["system_stats"],
        args["memory_stats"],
        args["parameters"],
        args["hyperparameters"],
        args["evals"],
        agent_step=1000,
        epoch=7,
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.5, 1.5),
        (3, 3.0),
        (True, 1.0),
        (np.float32(0.25), 0.25),
        (np.int64(7), 7.0),
        (np.bool_(True), 1.0),
        (np.array(2.5), 2.5),
        (np.array([[4]]), 4.0),
        (torch.tensor(0.5), 0.5),
        (torch.tensor([3], dtype=torch.int32), 3.0),
        (torch.tensor([True]), 1.0),
        (Fraction(1, 4), 0.25),
        (float("nan"), math.nan),
        (float("inf"), math.inf),
    ],
)
def test_numbers_become_python_floats(value, expected):
    got = as_scalar(value)
    assert type(got) is float
    assert got == expected or (math.isnan(got) and math.isnan(expected))


@pytest.mark.parametrize(
    "value",
    [
        "1.0",
        b"1",
        None,
        [1.0],
        (1.0,),
        {"a": 1.0},
        object(),
        1 + 2j,
        np.complex64(1),
        np.ones(2),
        np.array([]),
        np.array(["a"]),
        np.datetime64("2024-01-01"),
        torch.ones(2),
        torch.tensor([1j]),
    ],
)
def test_anything_else_is_not_a_scalar(value):
    assert as_scalar(value) is None


def test_env_prefix_and_keys_without_a_slash_dropped():
    assert environment_stats(
        {"game/score": 2.0, "agent/reward": np.float64(0.5), "episode_length": 10.0}
    ) == {"env_game/score": 2.0, "env_agent/reward": 0.5}


def test_movement_filter_keeps_the_nine_core_keys():
    core = [k.removeprefix("env_") for k in sorted(CORE_MOVEMENT_KEYS)]
    assert len(core) == 9
    others = [
        "agent/movement",
        "agent/movement.facing.up",
        "agent/movement.direction.up.success",
        "agent/movement_count",
        "agent/movement.rotation.to_up_left",
    ]
    kept_elsewhere = ["game/agent/movement.x", "agents/movement.facing.up"]
    means = dict.fromkeys(core + others + kept_elsewhere, 1.0)
    assert sorted(environment_stats(means)) == sorted(
        ["env_" + k for k in core] + ["env_" + k for k in kept_elsewhere]
    )
    assert CORE_MOVEMENT_KEYS == {
        "env_agent/movement.direction.up",
        "env_agent/movement.direction.down",
        "env_agent/movement.direction.left",
        "env_agent/movement.direction.right",
        "env_agent/movement.sequential_rotations",
        "env_agent/movement.rotation.to_up",
        "env_agent/movement.rotation.to_down",
        "env_agent/movement.rotation.to_left",
        "env_agent/movement.rotation.to_right",
    }


def test_process_training_stats():
    processed = process_training_stats(
        {"game/score": 3.0, "steps": 1.0},
        {"policy_loss": np.float32(0.5), "note": "text", "per_agent": np.ones(3)},
        {"rewards": torch.tensor(0.25), "advantages": 1},
    )
    assert processed == ProcessedStats(
        overview={"reward": 0.25, "reward_vs_total_time": 0.25},
        losses_stats={"policy_loss": 0.5},
        experience_stats={"rewards": 0.25, "advantages": 1.0},
        environment_stats={"env_game/score": 3.0},
    )
    assert process_training_stats({}, {}, {}).overview == {}


def test_every_group_with_its_prefix():
    processed = ProcessedStats(
        overview={"reward": 0.5, "reward_vs_total_time": 0.5},
        losses_stats={"policy_loss": 0.1},
        experience_stats={"rewards": 0.5},
        environment_stats={"env_game/score": 3.0},
    )
    timing = TimingInfo(
        wall_time=60.0,
        train_time=50.0,
        epoch_steps=2000,
        epoch_steps_per_second=200.0,
        steps_per_second=150.0,
        timing_stats={"timing_per_epoch/sps": 200.0, "timing_cumulative/sps": 150.0},
    )
    evals = EvalRewardSummary({"nav": 0.75, "mem": 0.25}, {("nav", "maze"): 0.5})
    payload = _payload(
        processed,
        timing,
        weight_stats={"weights/l2_norm/fc1": 2.0},
        grad_stats={"grad/norm": 1.5, "grad/mean": np.float64(0.01)},
        system_stats={"monitor/cpu_percent": 12, "monitor/host": "box"},
        memory_stats={"experience_bytes": 4096},
        parameters={"learning_rate": 3e-4, "epoch_steps": 2000},
        hyperparameters={"ppo/clip_coef": 0.2},
        evals=evals,
    )
    assert payload == {
        "metric/agent_step": 1000.0,
        "metric/epoch": 7.0,
        "metric/total_time": 60.0,
        "metric/train_time": 50.0,
        "overview/sps": 200.0,
        "overview/steps_per_second": 150.0,
        "overview/epoch_steps_per_second": 200.0,
        "overview/reward": 0.5,
        "overview/reward_vs_total_time": 0.5,
        "overview/nav_score": 0.75,
        "overview/mem_score": 0.25,
        "losses/policy_loss": 0.1,
        "experience/rewards": 0.5,
        "env_game/score": 3.0,
        "parameters/learning_rate": 3e-4,
        "parameters/epoch_steps": 2000.0,
        "hyperparameters/ppo/clip_coef": 0.2,
        "eval_nav/score": 0.75,
        "eval_mem/score": 0.25,
        "eval_nav/maze": 0.5,
        "monitor/cpu_percent": 12.0,
        "trainer_memory/experience_bytes": 4096.0,
        "weights/l2_norm/fc1": 2.0,
        "grad/norm": 1.5,
        "grad/mean": 0.01,
        "timing_per_epoch/sps": 200.0,
        "timing_cumulative/sps": 150.0,
    }
    assert all(type(v) is float for v in payload.values())


def test_without_timing_there_is_no_time_derived_key():
    assert _payload() == {"metric/agent_step": 1000.0, "metric/epoch": 7.0}


def test_later_groups_win_on_a_clash():
    processed = ProcessedStats(losses_stats={"policy_loss": 1.0}, experience_stats={})
    payload = _payload(
        processed,
        system_stats={"losses/policy_loss": 2.0, "grad/norm": 5.0, "metric/epoch": 99.0},
        weight_stats={"grad/norm": 6.0},
        grad_stats={"grad/norm": 7.0},
    )
    assert payload["losses/policy_loss"] == 2.0
    assert payload["grad/norm"] == 7.0
    assert payload["metric/epoch"] == 99.0


def test_default_zero_metrics_and_their_rolling_mean():
    history = {}
    keys = ("env_game/score", "env_game/wins")
    seen = []
    for value in (1.0, 2.0, None, 6.0, math.nan, math.nan, math.nan):
        payload = {} if value is None else {"env_game/score": value}
        add_default_zero_metrics(payload, keys, history, window=3)
        seen.append(payload)
    assert [p["env_game/score"] for p in seen[:4]] == [1.0, 2.0, 0.0, 6.0]
    avgs = [p["env_game/score.avg"] for p in seen]
    assert avgs[:6] == [1.0, 1.5, 1.0, 8.0 / 3.0, 3.0, 6.0]  # NaN kept out of the mean
    assert math.isnan(avgs[6])  # three NaN in the window: nothing finite to average
    assert math.isnan(seen[4]["env_game/score"])  # the value itself passes through
    assert all(p["env_game/wins"] == 0.0 and p["env_game/wins.avg"] == 0.0 for p in seen)


def test_a_changed_window_keeps_the_latest_values():
    history = {}
    for value in (1.0, 2.0, 3.0, 4.0):
        add_default_zero_metrics({"k": value}, ("k",), history, window=4)
    payload = {"k": 5.0}
    add_default_zero_metrics(payload, ("k",), history, window=2)
    assert payload["k.avg"] == 4.5


def test_the_env_key_memo_gives_the_same_keys_and_stays_bounded(monkeypatch):
    from fusedstats.reporter.payload import EnvKeys

    memo = EnvKeys()
    means = {"game/score": 1.0, "steps": 2.0, "agent/movement.facing.up": 3.0}
    assert environment_stats(means, memo) == environment_stats(means) == {"env_game/score": 1.0}
    assert dict(memo) == {
        "game/score": "env_game/score",
        "steps": None,
        "agent/movement.facing.up": None,
    }
    monkeypatch.setattr(EnvKeys, "MAX_KEYS", 4)
    for i in range(10):
        assert memo[f"k/{i}"] == f"env_k/{i}"
        assert len(memo) <= 4
