"""The demo's policy: a small actor-critic MLP in torch (imported only when built)."""

from __future__ import annotations

from typing import Any


def make_policy(obs_size: int, num_actions: int, hidden: int = 256, seed: int = 0) -> Any:
    """An actor-critic MLP: a shared trunk of two ``hidden``-wide tanh layers, a policy
    head (action logits) and a value head.

    ``policy(obs)`` returns ``(logits, value)``; the policy head starts with small
    weights so the first actions are close to uniform.

    Example:
        >>> import torch
        >>> policy = make_policy(obs_size=6, num_actions=5, hidden=32)
        >>> logits, value = policy(torch.zeros(4, 6))
        >>> tuple(logits.shape), tuple(value.shape)
        ((4, 5), (4,))
    """
    import torch
    from torch import nn

    class ActorCritic(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk = nn.Sequential(
                nn.Linear(obs_size, hidden),
                nn.Tanh(),
                nn.Linear(hidden, hidden),
                nn.Tanh(),
            )
            self.actor = nn.Linear(hidden, num_actions)
            self.critic = nn.Linear(hidden, 1)
            with torch.no_grad():
                self.actor.weight.mul_(0.01)
                self.actor.bias.zero_()

        def forward(self, obs: Any) -> tuple[Any, Any]:
            h = self.trunk(obs)
            return self.actor(h), self.critic(h).squeeze(-1)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ActorCritic()


__all__ = ["make_policy"]
