"""The demo's training run: PPO on forage, every statistic through fusedstats.

Per epoch: a rollout of ``horizon`` steps of every environment (the info dicts go to
``reporter.on_step``), a PPO update (losses to a ``MetricsLogger``), an evaluation every
``eval_interval`` epochs (``reporter.update_eval_scores``), then ``report_epoch``
(rollout means, timing, gradient and weight stats) and ``create_epoch`` on the store.

The stats overhead is measured with the same ``Stopwatch`` the reporter reads: every
stats call runs inside a timer whose name starts with ``_stats`` (or the reporter's own
``_process_stats``), plus the time the activation watch spent in the policy's forward
and backward passes, recording and counting steps (``WatchHandle.seconds``); the share
of an epoch is their time over the epoch's wall time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .config import DemoConfig
from .env import NUM_ACTIONS, OBS_SIZE, ForageEnv
from .evaluate import evaluate
from .ppo import LOSS_SETTINGS, Rollout, ppo_update
from .progress import ProgressDisplay
from .wiring import Wiring, build_reporter

#: Timers whose time counts as stats overhead (the reporter times report_epoch as
#: ``_process_stats``).
STATS_TIMERS = ("_stats_rollout", "_stats_logger", "_stats_epoch", "_process_stats")
SUMMARY_FILE = "summary.json"


@dataclass
class DemoResult:
    """What a demo run did: where it wrote, and per-epoch figures."""

    run_dir: Path
    run_id: str
    rewards: list[float] = field(default_factory=list)  # mean reward per agent step
    sps: list[float] = field(default_factory=list)  # agent steps per second
    stats_fracs: list[float] = field(default_factory=list)  # share of the epoch's wall time
    eval_scores: dict[int, float] = field(default_factory=dict)  # epoch -> category score
    stats_seconds: float = 0.0  # on the training thread
    activation_seconds: float = 0.0  # of which in the activation hooks
    store_epoch_seconds: float = 0.0  # create_epoch calls, on a background thread
    train_seconds: float = 0.0  # wall time of the epochs (set-up excluded)
    wall_seconds: float = 0.0  # everything, set-up and finalize included

    @property
    def stats_fraction(self) -> float:
        """Stats time over the epochs' wall time, the whole run."""
        return self.stats_seconds / self.train_seconds if self.train_seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        k = max(1, len(self.rewards) // 4)
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "epochs": len(self.rewards),
            "reward_first_epochs": sum(self.rewards[:k]) / k if self.rewards else None,
            "reward_last_epochs": sum(self.rewards[-k:]) / k if self.rewards else None,
            "mean_steps_per_second": sum(self.sps) / len(self.sps) if self.sps else None,
            "stats_fraction": self.stats_fraction,
            "stats_seconds": self.stats_seconds,
            "activation_hook_seconds": self.activation_seconds,
            "store_epoch_seconds_background": self.store_epoch_seconds,
            "train_seconds": self.train_seconds,
            "wall_seconds": self.wall_seconds,
            "eval_scores": {str(k): v for k, v in self.eval_scores.items()},
            "rewards": self.rewards,
            "stats_fractions": self.stats_fracs,
        }


def _run_name(config: DemoConfig) -> str:
    if config.name:
        return config.name
    return "forage-" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


def _unused_dir(parent: Path, name: str) -> Path:
    path, n = parent / name, 1
    while path.exists() and any(path.iterdir()):
        n += 1
        path = parent / f"{name}-{n}"
    return path


def run_demo(config: DemoConfig, log: Callable[[str], None] = print) -> DemoResult:
    """Trains the demo policy and reports everything; returns per-epoch figures.

    Writes ``<out>/<name>/``: ``stats.db`` (the run, its epochs and every payload),
    ``stats.jsonl``, ``tensorboard/`` event files and ``summary.json``. The run's status
    in the store is "completed", or "failed" when training raised (the error goes on).
    """
    import torch

    import fusedstats

    started = time.perf_counter()
    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda: CUDA is not available on this machine")
    run_dir = _unused_dir(Path(config.out), _run_name(config))
    wiring = build_reporter(config, run_dir, run_dir.name, log)
    result = DemoResult(run_dir=run_dir, run_id=str(wiring.run_id))
    threads_before = torch.get_num_threads(), fusedstats.get_num_threads()
    status = "failed"
    try:
        torch.set_num_threads(config.threads)
        fusedstats.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        _Trainer(config, wiring).train(result)
        status = "completed"
    finally:
        wiring.finish(status)
        result.store_epoch_seconds = wiring.epochs.seconds
        torch.set_num_threads(threads_before[0])
        fusedstats.set_num_threads(threads_before[1])
        result.wall_seconds = time.perf_counter() - started
        (run_dir / SUMMARY_FILE).write_text(
            json.dumps({"status": status, **result.summary()}, indent=1) + "\n",
            encoding="utf-8",
        )
    return result


class _Trainer:
    """PPO on forage with every statistic going through fusedstats."""

    def __init__(self, config: DemoConfig, wiring: Wiring) -> None:
        import torch

        import fusedstats
        from fusedstats.reporter import Stopwatch

        self.config = config
        self.wiring = wiring
        self.reporter = wiring.reporter
        self.env = ForageEnv(
            config.envs,
            config.agents,
            config.size,
            episode_length=config.episode_length,
            seed=config.seed,
        )
        self.policy = make_policy_for(config)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr, eps=1e-5)
        self.metrics = fusedstats.MetricsLogger()
        self.trainer_cfg = SimpleNamespace(
            batch_size=config.agent_steps_per_epoch,
            minibatch_size=config.agent_steps_per_epoch // config.minibatches,
            hyperparameters=config.hyperparameters(),
        )
        self.rollout = Rollout(config.horizon, self.env.num_agents_total, OBS_SIZE, config.device)
        self.obs = torch.from_numpy(self.env.reset()).to(config.device)
        self.timer = Stopwatch()
        self.agent_step = 0
        # Watched from the first rollout on (else the first report would start it).
        self.watch = self.reporter.watch_activations(self.policy)

    def _unwatched(self) -> AbstractContextManager[Any]:
        """Rollouts and evaluation are not watched: only update steps are."""
        return self.watch.paused() if self.watch is not None else nullcontext()

    def stats_seconds(self) -> float:
        """Stats time so far: the stats timers and the activation hooks."""
        hooks = self.watch.seconds if self.watch is not None else 0.0
        return sum(self.timer.elapsed(t) for t in STATS_TIMERS) + hooks

    def train(self, result: DemoResult) -> None:
        """Runs every epoch, filling ``result`` as it goes."""
        config, timer = self.config, self.timer
        stats_mark, wall_mark = 0.0, timer.elapsed()
        with ProgressDisplay(config.epochs, quiet=not config.progress) as progress:
            for epoch in range(1, config.epochs + 1):
                experience = self._epoch(epoch, result, progress)
                # The epoch's figures: stats and wall time since the previous epoch's end.
                stats_now = self.stats_seconds()
                wall_now = timer.elapsed()
                epoch_wall = wall_now - wall_mark
                frac = (stats_now - stats_mark) / epoch_wall if epoch_wall > 0 else 0.0
                sps = config.agent_steps_per_epoch / epoch_wall if epoch_wall > 0 else 0.0
                with timer("_stats_epoch"):
                    self.wiring.epochs.record(
                        epoch,
                        {
                            "agent_step": self.agent_step,
                            "reward": experience["rewards"],
                            "steps_per_second": sps,
                            "stats_fraction": frac,
                        },
                    )
                stats_mark, wall_mark = stats_now, wall_now
                result.rewards.append(experience["rewards"])
                result.sps.append(sps)
                result.stats_fracs.append(frac)
                progress.update(epoch, sps, experience["rewards"], frac)
        # The last create_epoch ran after the last mark: the totals count it too.
        result.stats_seconds = self.stats_seconds()
        result.activation_seconds = self.watch.seconds if self.watch is not None else 0.0
        result.train_seconds = timer.elapsed()

    def _epoch(self, epoch: int, result: DemoResult, progress: ProgressDisplay) -> dict[str, float]:
        """Rollout, update, evaluation (when due) and report_epoch; returns the epoch's
        experience stats."""
        import torch

        config, timer, reporter = self.config, self.timer, self.reporter
        with timer("_rollout"), self._unwatched():
            self.obs = _collect(
                self.env, self.policy, self.rollout, self.obs, reporter, timer, config.device
            )
            with torch.no_grad():
                _, last_value = self.policy(self.obs)
        self.agent_step += config.agent_steps_per_epoch
        with timer("_train"):
            self.rollout.compute_advantages(last_value, config.gamma, config.gae_lambda)
            ppo_update(
                self.policy,
                self.optimizer,
                self.rollout,
                config,
                self._log_losses,
                lambda: timer("_stats_logger"),
                self.watch.step if self.watch is not None else None,
            )
        experience = self.rollout.experience_stats()
        if config.eval_interval > 0 and (epoch == 1 or epoch % config.eval_interval == 0):
            with timer("_eval"), self._unwatched():
                scores = evaluate(
                    self.policy,
                    train_size=config.size,
                    agents=config.agents,
                    episode_length=config.episode_length,
                    episodes=config.eval_episodes,
                    device=config.device,
                    seed=config.seed + epoch,
                )
            with timer("_stats_epoch"):
                reporter.update_eval_scores(scores)
            result.eval_scores[epoch] = scores.avg_category_score
            progress.eval_score(scores.avg_category_score)
        with timer("_stats_epoch"):
            losses = self.metrics.reduce(return_stats_obj=False)
        reporter.report_epoch(
            epoch,
            self.agent_step,
            losses,
            experience,
            policy=self.policy,
            timer=timer,
            trainer_cfg=self.trainer_cfg,
            optimizer=self.optimizer,
        )
        return experience

    def _log_losses(self, values: dict[str, Any]) -> None:
        if self.config.device == "cpu":
            # On CPU reading the values back syncs nothing, and a float is cheaper to log
            # than a 0-d tensor; one item() each costs less than a stack + tolist (in
            # the demo, right after a backward pass: 4 us for the five against 22 us).
            # On CUDA the tensors stay on the device until reduce() moves them at once.
            values = {key: value.item() for key, value in values.items()}
        for key, value in values.items():
            self.metrics.log_value(key, value, **LOSS_SETTINGS)


def summary_lines(result: DemoResult) -> list[str]:
    """What the demo prints at its end: learning, speed, stats overhead, where it wrote.

    Example:
        >>> r = DemoResult(run_dir=Path("runs/x"), run_id="abc", rewards=[0.01, 0.2],
        ...                sps=[1e4, 1e4], stats_fracs=[0.02, 0.004], stats_seconds=0.1,
        ...                train_seconds=20.0, wall_seconds=25.0)
        >>> print(summary_lines(r)[1])
        stats: 0.50% of the training time (median epoch 1.20%, last epoch 0.40%)
    """
    s = result.summary()
    fracs = sorted(result.stats_fracs)
    median = fracs[len(fracs) // 2] if fracs else 0.0
    if len(fracs) % 2 == 0 and fracs:
        median = (fracs[len(fracs) // 2 - 1] + fracs[len(fracs) // 2]) / 2
    last = result.stats_fracs[-1] if result.stats_fracs else 0.0
    lines = [
        f"reward per agent step: {s['reward_first_epochs']:.4f} in the first epochs -> "
        f"{s['reward_last_epochs']:.4f} in the last; "
        f"{s['mean_steps_per_second'] or 0:,.0f} agent steps/s",
        f"stats: {result.stats_fraction:.2%} of the training time (median epoch "
        f"{median:.2%}, last epoch {last:.2%})",
    ]
    if result.eval_scores:
        epoch, score = max(result.eval_scores.items())
        lines.append(f"eval score (hearts per agent per episode): {score:.2f} at epoch {epoch}")
    lines += [
        f"run {result.run_id} in {result.run_dir}/ ({result.wall_seconds:.1f} s): "
        "stats.db, stats.jsonl, tensorboard/",
        f"next: fusedstats report {result.run_dir}",
    ]
    return lines


def make_policy_for(config: DemoConfig) -> Any:
    """The demo's actor-critic for ``config`` (on its device)."""
    from .policy import make_policy

    return make_policy(OBS_SIZE, NUM_ACTIONS, config.hidden, config.seed).to(config.device)


def _collect(
    env: ForageEnv,
    policy: Any,
    rollout: Rollout,
    obs: Any,
    reporter: Any,
    timer: Any,
    device: str,
) -> Any:
    """Fills ``rollout`` with ``horizon`` steps of every environment; returns the last
    observations.

    As Metta's trainer does, the non-empty info dicts of every step are kept in a list
    and handed to the reporter once, after the rollout: one call aggregates them all
    (a call has a fixed cost of ~0.1 ms, so one per step would cost 60x more here).
    """
    import torch

    on_device = device != "cpu"
    raw_infos: list[dict[str, Any]] = []
    for t in range(rollout.obs.shape[0]):
        with torch.no_grad():
            logits, value = policy(obs)
            dist: Any = torch.distributions.Categorical(logits=logits)
            action = dist.sample()
            rollout.logprobs[t] = dist.log_prob(action)
        rollout.obs[t] = obs
        rollout.actions[t] = action
        rollout.values[t] = value
        next_obs, reward, done, infos = env.step(action.cpu().numpy())
        rollout.rewards[t] = torch.from_numpy(reward)
        rollout.dones[t] = torch.from_numpy(done)
        obs = torch.from_numpy(next_obs)
        if on_device:
            obs = obs.to(device, non_blocking=True)
        with timer("_stats_rollout"):
            raw_infos.extend(info for info in infos if info)
    with timer("_stats_rollout"):
        reporter.process_rollout(raw_infos)
    return obs


__all__ = ["STATS_TIMERS", "DemoResult", "make_policy_for", "run_demo", "summary_lines"]
