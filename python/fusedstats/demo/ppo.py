"""PPO for the demo: a rollout buffer, GAE, and the clipped update (plain torch).

The update logs each minibatch's losses to a :class:`fusedstats.MetricsLogger` as
detached tensors: nothing is read back to the host during the update; the epoch's
``reduce()`` moves them all at once.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from .config import DemoConfig

#: MetricsLogger settings of every loss key: the mean over the epoch's minibatches.
LOSS_SETTINGS: dict[str, Any] = {"reduce": "mean", "window": float("inf"), "clear_on_reduce": True}


class Rollout:
    """One epoch of experience: ``[horizon, n_agents]`` tensors on ``device``."""

    def __init__(self, horizon: int, n_agents: int, obs_size: int, device: str) -> None:
        import torch

        def zeros(*shape: int, dtype: Any = torch.float32) -> Any:
            return torch.zeros(*shape, dtype=dtype, device=device)

        self.obs = zeros(horizon, n_agents, obs_size)
        self.actions = zeros(horizon, n_agents, dtype=torch.int64)
        self.logprobs = zeros(horizon, n_agents)
        self.values = zeros(horizon, n_agents)
        self.rewards = zeros(horizon, n_agents)
        self.dones = zeros(horizon, n_agents)
        self.advantages = zeros(horizon, n_agents)
        self.returns = zeros(horizon, n_agents)

    def compute_advantages(self, last_value: Any, gamma: float, lam: float) -> None:
        """GAE(gamma, lambda); ``dones[t]`` marks an episode that ended at step t, so the
        value after it is not bootstrapped."""
        last = 0.0
        horizon = self.rewards.shape[0]
        for t in reversed(range(horizon)):
            next_value = last_value if t == horizon - 1 else self.values[t + 1]
            alive = 1.0 - self.dones[t]
            delta = self.rewards[t] + gamma * next_value * alive - self.values[t]
            last = delta + gamma * lam * alive * last
            self.advantages[t] = last
        self.returns.copy_(self.advantages + self.values)

    def experience_stats(self) -> dict[str, float]:
        """Means over the epoch (``experience/...`` in the payload; ``rewards`` becomes
        ``overview/reward``). One host transfer."""
        import torch

        means = torch.stack(
            [
                self.rewards.mean(),
                self.values.mean(),
                self.returns.mean(),
                self.advantages.mean(),
                self.advantages.std(),
                self.dones.sum(),
            ]
        ).tolist()
        names = ("rewards", "values", "returns", "advantages", "advantages_std", "episodes")
        return dict(zip(names, means, strict=True))


def ppo_update(
    policy: Any,
    optimizer: Any,
    rollout: Rollout,
    config: DemoConfig,
    log_losses: Callable[[dict[str, Any]], None],
    stats_timer: Callable[[], AbstractContextManager[Any]],
    after_step: Callable[[], None] | None = None,
) -> None:
    """``config.update_epochs`` passes of clipped PPO over ``rollout`` in minibatches.

    Args:
        policy: ``policy(obs) -> (logits, value)``.
        optimizer: a torch optimizer over the policy's parameters.
        rollout: the epoch's experience, advantages computed.
        config: clip, coefficients, minibatches, passes.
        log_losses: called once per minibatch with detached loss tensors.
        stats_timer: ``with stats_timer():`` wraps the logging, so the demo can count it
            as stats time.
        after_step: called after each optimizer step (the activation watch's ``step``).
    """
    import torch

    obs = rollout.obs.flatten(0, 1)
    actions = rollout.actions.flatten()
    old_logprobs = rollout.logprobs.flatten()
    advantages = rollout.advantages.flatten()
    returns = rollout.returns.flatten()
    old_values = rollout.values.flatten()
    n = obs.shape[0]
    size = n // config.minibatches
    for _ in range(config.update_epochs):
        order = torch.randperm(n, device=obs.device)
        for start in range(0, size * config.minibatches, size):
            idx = order[start : start + size]
            logits, value = policy(obs[idx])
            dist: Any = torch.distributions.Categorical(logits=logits)
            logprob = dist.log_prob(actions[idx])
            entropy = dist.entropy().mean()
            log_ratio = logprob - old_logprobs[idx]
            ratio = log_ratio.exp()
            adv = advantages[idx]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg_loss = torch.max(
                -adv * ratio, -adv * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
            ).mean()
            v_loss = 0.5 * (value - returns[idx]).pow(2).mean()
            loss = pg_loss + config.vf_coef * v_loss - config.ent_coef * entropy
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            optimizer.step()
            if after_step is not None:
                after_step()
            with torch.no_grad():
                approx_kl = ((ratio - 1) - log_ratio).mean()
                clipfrac = ((ratio - 1).abs() > config.clip_coef).float().mean()
            with stats_timer():
                log_losses(
                    {
                        "policy_loss": pg_loss.detach(),
                        "value_loss": v_loss.detach(),
                        "entropy": entropy.detach(),
                        "approx_kl": approx_kl,
                        "clipfrac": clipfrac,
                    }
                )
    with torch.no_grad():
        explained = 1 - (returns - old_values).var() / returns.var().clamp_min(1e-8)
    with stats_timer():
        log_losses({"explained_variance": explained})


__all__ = ["LOSS_SETTINGS", "Rollout", "ppo_update"]
