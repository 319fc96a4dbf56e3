"""Evaluation: the policy on fresh forage grids, as Metta's eval scores.

Two simulations of one category, ``forage``: the training grid and a larger one the
policy never trained on (its observations are scaled by the grid size, so walking
toward the heart carries over). A score is hearts collected per agent per episode.
Actions are sampled from the policy, not taken greedily: the argmax of a barely
trained policy already points at the heart, so greedy scores would not show learning.
"""

from __future__ import annotations

from typing import Any

from .env import ForageEnv

CATEGORY = "forage"


def simulations(train_size: int) -> dict[str, int]:
    """Simulation name -> grid size: the training grid and one 1.5x as wide.

    Example:
        >>> simulations(9)
        {'9x9': 9, '13x13': 13}
    """
    big = train_size + max(2, train_size // 2)
    return {f"{train_size}x{train_size}": train_size, f"{big}x{big}": big}


def evaluate(
    policy: Any,
    *,
    train_size: int,
    agents: int,
    episode_length: int,
    episodes: int,
    device: str,
    seed: int,
) -> Any:
    """One episode per environment on every simulation (actions sampled with a
    generator seeded by ``seed``); returns an ``EvalRewardSummary`` whose category
    score is the mean of the simulation scores."""
    import numpy as np
    import torch

    from fusedstats.reporter import EvalRewardSummary

    gen = torch.Generator(device=device).manual_seed(seed)
    sim_scores: dict[tuple[str, str], float] = {}
    for i, (sim, size) in enumerate(simulations(train_size).items()):
        env = ForageEnv(
            num_envs=episodes,
            num_agents=agents,
            size=size,
            episode_length=episode_length,
            seed=seed * 1000 + i,
        )
        obs = env.reset(staggered=False)  # every episode runs exactly once
        hearts = np.zeros(env.num_agents_total)
        with torch.no_grad():
            for _ in range(episode_length):
                logits, _ = policy(torch.from_numpy(obs).to(device))
                actions = torch.multinomial(logits.softmax(-1), 1, generator=gen).squeeze(-1)
                obs, _, _, infos = env.step(actions.cpu().numpy())
                for e, info in enumerate(infos):
                    if info:
                        hearts[e * agents : (e + 1) * agents] = info["agent"]["hearts"]
        sim_scores[(CATEGORY, sim)] = float(hearts.mean())
    category = float(np.mean(list(sim_scores.values())))
    return EvalRewardSummary({CATEGORY: category}, sim_scores)


__all__ = ["CATEGORY", "evaluate", "simulations"]
