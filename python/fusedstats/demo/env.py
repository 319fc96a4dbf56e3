"""Forage: a small vectorized multi-agent grid world in numpy, with Metta-style infos.

Each of ``num_envs`` environments holds ``num_agents`` agents on a ``size`` x ``size``
grid; every agent has its own heart somewhere on the grid. An agent sees where its
heart is relative to itself (and where it stands), and moves: noop, up, down, left,
right. Reaching the heart gives +1 and a new heart appears elsewhere; each step also
gives ``shaping`` times the decrease of the Manhattan distance to the heart.

Why this design: the demo's learning check must never flake. A random walk reaches a
heart about once per ~40 steps and earns no shaping on average (mean reward ~0.02 per
agent step); a policy that walks straight to its heart earns ~0.25. The optimal action
is a simple function of the observation (the signs of the offsets), so a small MLP
trained by PPO finds it within a few thousand updates from any seed, and the gap
between the first and last epochs is ten times the noise.

Episodes last ``episode_length`` steps and start staggered, so info dicts arrive every
few steps, as in a real vectorized trainer. At an episode's end its environment returns
a Metta-style nested info dict (``game/*`` totals, ``agent/*`` per-agent arrays, a
non-numeric map name) and resets itself; otherwise its info is an empty dict.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Actions: index -> (row change, column change, Metta's movement key).
ACTIONS: tuple[tuple[int, int, str], ...] = (
    (0, 0, "action.noop"),
    (-1, 0, "movement.direction.up"),
    (1, 0, "movement.direction.down"),
    (0, -1, "movement.direction.left"),
    (0, 1, "movement.direction.right"),
)
NUM_ACTIONS = len(ACTIONS)
OBS_SIZE = 6
_MOVES = np.array([(dr, dc) for dr, dc, _ in ACTIONS], dtype=np.int64)


class ForageEnv:
    """``num_envs`` forage grids stepped together; agents are flattened env-major.

    Args:
        num_envs: environments stepped together.
        num_agents: agents per environment.
        size: grid side (cells ``0 .. size - 1`` on both axes).
        episode_length: steps per episode.
        shaping: reward per cell the agent gets closer to its heart.
        seed: seeds every random choice (positions, hearts, episode offsets).

    Example:
        >>> env = ForageEnv(num_envs=2, num_agents=3, size=5, seed=0)
        >>> obs = env.reset()
        >>> obs.shape, obs.dtype
        ((6, 6), dtype('float32'))
        >>> obs, rewards, dones, infos = env.step(np.zeros(6, dtype=np.int64))
        >>> rewards.shape, dones.shape, len(infos)
        ((6,), (6,), 2)
    """

    def __init__(
        self,
        num_envs: int,
        num_agents: int = 4,
        size: int = 9,
        episode_length: int = 64,
        shaping: float = 0.1,
        seed: int = 0,
    ) -> None:
        if num_envs < 1 or num_agents < 1:
            raise ValueError(f"num_envs and num_agents must be >= 1, got {num_envs}, {num_agents}")
        if size < 3:
            raise ValueError(f"size must be >= 3, got {size}")
        if episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {episode_length}")
        self.num_envs = num_envs
        self.num_agents = num_agents
        self.size = size
        self.episode_length = episode_length
        self.shaping = shaping
        self.map_name = f"forage_{size}x{size}"
        self._rng = np.random.default_rng(seed)
        shape = (num_envs, num_agents)
        self._pos = np.zeros((*shape, 2), dtype=np.int64)
        self._heart = np.zeros((*shape, 2), dtype=np.int64)
        self._t = np.zeros(num_envs, dtype=np.int64)
        # Episode tallies, reported in the info dict at the episode's end.
        self._return = np.zeros(shape)
        self._hearts = np.zeros(shape)
        self._bumps = np.zeros(shape)
        self._action_counts = np.zeros((*shape, NUM_ACTIONS))

    @property
    def num_agents_total(self) -> int:
        """Agents over all environments: the batch size of observations and actions."""
        return self.num_envs * self.num_agents

    def reset(self, staggered: bool = True) -> np.ndarray:
        """Resets every environment. With ``staggered``, each first episode starts at a
        random step (so episodes end at different steps, as in a long-running trainer);
        else all start at step 0. Returns the observations,
        ``[num_envs * num_agents, OBS_SIZE]`` float32."""
        everyone = np.ones(self.num_envs, dtype=bool)
        self._reset_envs(everyone)
        if staggered:
            self._t[:] = self._rng.integers(0, self.episode_length, size=self.num_envs)
        return self._observe()

    def _reset_envs(self, which: np.ndarray) -> None:
        n = int(which.sum())
        self._pos[which] = self._rng.integers(0, self.size, size=(n, self.num_agents, 2))
        self._heart[which] = self._new_hearts(self._pos[which])
        self._t[which] = 0
        for tally in (self._return, self._hearts, self._bumps, self._action_counts):
            tally[which] = 0

    def _new_hearts(self, pos: np.ndarray) -> np.ndarray:
        """Heart cells drawn uniformly among the cells other than the agent's own."""
        cells = self.size * self.size
        own = pos[..., 0] * self.size + pos[..., 1]
        pick = self._rng.integers(0, cells - 1, size=own.shape)
        pick = pick + (pick >= own)  # skip the agent's cell
        return np.stack([pick // self.size, pick % self.size], axis=-1)

    def _observe(self) -> np.ndarray:
        offset = (self._heart - self._pos).astype(np.float32)
        scale = np.float32(self.size - 1)
        obs = np.concatenate(
            [offset / scale, np.sign(offset), self._pos.astype(np.float32) / scale], axis=-1
        )
        return obs.reshape(self.num_agents_total, OBS_SIZE)

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Moves every agent.

        Args:
            actions: ``[num_envs * num_agents]`` ints in ``0 .. NUM_ACTIONS - 1``.

        Returns:
            observations (after any reset), rewards (float32), dones (True for every
            agent of an environment whose episode just ended), and one info dict per
            environment (empty unless its episode ended).
        """
        acts = np.asarray(actions, dtype=np.int64).reshape(self.num_envs, self.num_agents)
        if acts.min() < 0 or acts.max() >= NUM_ACTIONS:
            raise ValueError(f"actions must be in 0..{NUM_ACTIONS - 1}")
        before = np.abs(self._heart - self._pos).sum(-1)
        wanted = self._pos + _MOVES[acts]
        moved = np.clip(wanted, 0, self.size - 1)
        self._bumps += (moved != wanted).any(-1)
        self._pos = moved
        after = np.abs(self._heart - self._pos).sum(-1)
        reached = after == 0
        reward = self.shaping * (before - after) + reached.astype(np.float64)
        if reached.any():
            self._heart[reached] = self._new_hearts(self._pos[reached])
        self._return += reward
        self._hearts += reached
        np.add.at(
            self._action_counts,
            (
                np.arange(self.num_envs)[:, None],
                np.arange(self.num_agents)[None, :],
                acts,
            ),
            1.0,
        )
        self._t += 1
        ended = self._t >= self.episode_length
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for e in np.flatnonzero(ended):
            infos[e] = self._episode_info(int(e))
        if ended.any():
            self._reset_envs(ended)
        dones = np.repeat(ended, self.num_agents)
        return self._observe(), reward.astype(np.float32).ravel(), dones, infos

    def _episode_info(self, e: int) -> dict[str, Any]:
        """Metta's shape: ``game`` totals, ``agent`` per-agent arrays, scalars at the top
        and a non-numeric leaf (skipped by the reporter, never averaged)."""
        agent: dict[str, Any] = {
            "reward": self._return[e].copy(),
            "hearts": self._hearts[e].copy(),
            "wall_bumps": self._bumps[e].copy(),
        }
        for a, (_, _, key) in enumerate(ACTIONS):
            agent[key] = self._action_counts[e, :, a].copy()
        return {
            "episode_return": float(self._return[e].mean()),
            "episode_length": int(self._t[e]),
            "game": {
                "hearts": float(self._hearts[e].sum()),
                "hearts_per_agent": float(self._hearts[e].mean()),
                "wall_bumps": float(self._bumps[e].sum()),
            },
            "agent": agent,
            "map": {"name": self.map_name, "size": self.size},
        }


__all__ = ["ACTIONS", "NUM_ACTIONS", "OBS_SIZE", "ForageEnv"]
