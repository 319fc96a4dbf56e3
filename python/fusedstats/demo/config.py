"""The demo's settings: one frozen dataclass, filled from the command line."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class DemoConfig:
    """Settings of :func:`fusedstats.demo.run_demo`.

    The defaults train for ~8 s on a 2-core CPU: each epoch is ``envs * agents *
    horizon`` agent steps (32 * 4 * 128 = 16,384), then ``update_epochs`` PPO passes over
    them in ``minibatches`` minibatches.

    Example:
        >>> DemoConfig(epochs=3).agent_steps_per_epoch
        16384
        >>> DemoConfig(envs=0)
        Traceback (most recent call last):
        ...
        ValueError: envs must be >= 1, got 0
    """

    epochs: int = 12
    envs: int = 32
    agents: int = 4
    size: int = 9
    horizon: int = 128  # env steps per epoch
    episode_length: int = 64
    hidden: int = 256
    lr: float = 3e-3
    gamma: float = 0.95
    gae_lambda: float = 0.9
    update_epochs: int = 2
    minibatches: int = 8
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 1.0
    eval_interval: int = 5  # epochs; 0 = no evaluation
    eval_episodes: int = 2  # per simulation
    analyze_weights_interval: int = 5  # epochs; 0 = no weight stats
    # Model health (`health=False` turns all of it off): the policy's activations and
    # their gradients are watched in one PPO update step (minibatch) in
    # `activation_every` (rollouts and evaluation are not watched) and reported every
    # `activation_interval` epochs (0 = not watched); optimizer-state stats every
    # `optimizer_interval` epochs (0 = never); gradient stats carry the extended
    # columns and the exponent histogram.
    health: bool = True
    activation_interval: int = 2
    activation_every: int = 10
    dormant_tau: float = 0.1  # ReDo's tau: tanh units this far below their layer's mean
    # The outputs watched: the trunk's tanh layers (where ReDo counts dormant units) and
    # the two heads. The trunk's Linear outputs are left out: they are as large as the
    # tanh outputs, and watching them doubled the hooks' cost.
    activation_modules: tuple[str, ...] = ("trunk.1", "trunk.3", "actor", "critic")
    optimizer_interval: int = 1
    seed: int = 0
    device: str = "cpu"
    # CPU threads for torch and fusedstats. One: a 256-wide MLP on 2,048-row batches gains
    # nothing from a second thread, and on a shared 2-core box a second OpenMP thread that
    # waits for a busy core made rollouts 10x slower (measured).
    threads: int = 1
    out: str = "runs"
    name: str | None = None  # the run directory's name (default: forage-<time>)
    wandb: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        for name in (
            "epochs",
            "envs",
            "agents",
            "horizon",
            "hidden",
            "update_epochs",
            "threads",
            "activation_every",
        ):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        for name in ("activation_interval", "optimizer_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.size < 3:
            raise ValueError(f"size must be >= 3, got {self.size}")
        if not 1 <= self.minibatches <= self.agent_steps_per_epoch:
            raise ValueError(
                f"minibatches must be in 1..{self.agent_steps_per_epoch}, got {self.minibatches}"
            )
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")

    @property
    def agent_steps_per_epoch(self) -> int:
        """Agent steps collected per epoch: ``envs * agents * horizon``."""
        return self.envs * self.agents * self.horizon

    def hyperparameters(self) -> dict[str, Any]:
        """What the payload reports as ``hyperparameters/...``."""
        keys = ("lr", "gamma", "gae_lambda", "clip_coef", "ent_coef", "vf_coef")
        return {"ppo": {k: getattr(self, k) for k in keys}, "hidden": self.hidden}

    def to_dict(self) -> dict[str, Any]:
        """Every setting, as plain data (for W&B's config and the run's summary)."""
        return asdict(self)


__all__ = ["DemoConfig"]
