"""ForageEnv: shapes, Metta-style infos, and a learning signal a policy can find."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fusedstats.demo.env import ACTIONS, NUM_ACTIONS, OBS_SIZE, ForageEnv
from fusedstats.reporter import StatsReporter, StatsReporterConfig


@pytest.fixture
def seed() -> int:
    value = random.SystemRandom().randrange(2**31)
    print(f"seed={value}")
    return value


def greedy_actions(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Step toward the heart along a random axis that still has distance."""
    d_row, d_col = obs[:, 2], obs[:, 3]  # the signs of the offsets
    row_move = np.where(d_row < 0, 1, 2)
    col_move = np.where(d_col < 0, 3, 4)
    use_row = (d_row != 0) & ((d_col == 0) | (rng.random(len(obs)) < 0.5))
    return np.where(use_row, row_move, col_move)


def test_shapes_and_dtypes(seed):
    env = ForageEnv(num_envs=5, num_agents=3, size=7, seed=seed)
    obs = env.reset()
    assert obs.shape == (15, OBS_SIZE) and obs.dtype == np.float32
    actions = np.random.default_rng(seed).integers(0, NUM_ACTIONS, size=15)
    obs, rewards, dones, infos = env.step(actions)
    assert obs.shape == (15, OBS_SIZE) and rewards.shape == (15,) and dones.shape == (15,)
    assert rewards.dtype == np.float32 and dones.dtype == bool
    assert len(infos) == 5
    assert np.all(np.abs(obs[:, :2]) <= 1.0) and np.all((obs[:, 4:] >= 0) & (obs[:, 4:] <= 1))


def test_episode_ends_give_metta_style_infos(seed):
    env = ForageEnv(num_envs=4, num_agents=3, size=6, episode_length=10, seed=seed)
    env.reset(staggered=False)
    rng = np.random.default_rng(seed)
    total_reward = np.zeros(12)
    for step in range(10):
        _, rewards, dones, infos = env.step(rng.integers(0, NUM_ACTIONS, size=12))
        total_reward += rewards
        if step < 9:
            assert not dones.any() and infos == [{}] * 4
    assert dones.all()
    for e, info in enumerate(infos):
        assert info["episode_length"] == 10
        assert info["map"] == {"name": "forage_6x6", "size": 6}
        agent = info["agent"]
        for _, _, key in ACTIONS:
            assert agent[key].shape == (3,)
        # Every step is counted once, under its action.
        assert sum(agent[key] for _, _, key in ACTIONS).tolist() == [10.0] * 3
        np.testing.assert_allclose(agent["reward"], total_reward[3 * e : 3 * e + 3], atol=1e-5)
        assert info["game"]["hearts"] == agent["hearts"].sum()


def test_the_reporter_aggregates_the_infos(seed):
    env = ForageEnv(num_envs=3, num_agents=2, size=5, episode_length=4, seed=seed)
    env.reset(staggered=False)
    rng = np.random.default_rng(seed)
    infos = []
    for _ in range(4):
        infos += env.step(rng.integers(0, NUM_ACTIONS, size=6))[3]
    reporter = StatsReporter(StatsReporterConfig(report_to_wandb=False, report_to_console=False))
    try:
        reporter.on_step(infos)
        reporter.report_epoch(1, 24, {}, {"rewards": 0.0})
        payload = reporter.get_latest_payload()
    finally:
        reporter.finalize()
    assert payload is not None
    hearts = np.concatenate([i["agent"]["hearts"] for i in infos if i])
    assert payload["env_agent/hearts"] == pytest.approx(hearts.mean())
    assert payload["env_agent/movement.direction.up"] >= 0.0  # a core movement key, kept
    assert not any(k.startswith("env_map/name") for k in payload)


def test_walking_to_the_heart_earns_far_more_than_a_random_walk(seed):
    """The learning signal the demo's learning check relies on."""
    rng = np.random.default_rng(seed)
    means = {}
    for name in ("random", "greedy"):
        env = ForageEnv(num_envs=16, num_agents=4, size=9, seed=seed)
        obs = env.reset()
        total = 0.0
        for _ in range(256):
            if name == "random":
                actions = rng.integers(0, NUM_ACTIONS, size=64)
            else:
                actions = greedy_actions(obs, rng)
            obs, rewards, _, _ = env.step(actions)
            total += float(rewards.mean())
        means[name] = total / 256
    assert means["random"] < 0.06
    assert means["greedy"] > 0.2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"num_envs": 0}, "num_envs"),
        ({"size": 2}, "size"),
        ({"episode_length": 0}, "episode_length"),
    ],
)
def test_bad_settings_name_the_field(kwargs, field):
    settings = {"num_envs": 2} | kwargs
    with pytest.raises(ValueError, match=field):
        ForageEnv(**settings)


def test_out_of_range_actions_are_rejected():
    env = ForageEnv(num_envs=1, num_agents=2)
    env.reset()
    with pytest.raises(ValueError, match="actions must be in"):
        env.step(np.array([0, NUM_ACTIONS]))
