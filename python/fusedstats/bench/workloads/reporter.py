"""An epoch of a trainer's stats, ``report_epoch`` over it, and the same payload in plain Python.

``fusedstats bench`` (its reporter part) and ``bench/bench_reporter.py`` race
:func:`report_epoch_method` against :func:`plain_payload_method` on :func:`epoch_infos`:
32 info dicts x 27 groups x 50 numeric leaves (5 per-agent arrays of 24 per group), ~40
``grad/`` values, 12 losses, 20 experience stats, a trainer config, an optimizer, eval
scores and a 20-timer ``Stopwatch``: a payload of ~1,500 keys. ``bench/bench_store.py``
stores payloads of as many keys (:func:`trainer_payloads`).
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..harness import Method
from .rollout import N_AGENTS

N_INFOS = 32  # info dicts per epoch
N_GROUPS = 27  # top-level groups per info ...
N_LEAVES = 50  # ... with this many leaves each: 1,350 numeric keys
N_AGENT_ARRAYS = 5  # leaves per group that are per-agent arrays
N_TIMERS = 20
N_GRAD = 40
STEPS_PER_EPOCH = 65536
# A PPO trainer's losses, by the names it gives them.
LOSSES = {
    name: 0.1 * i
    for i, name in enumerate(
        (
            "policy_loss",
            "value_loss",
            "entropy",
            "approx_kl",
            "clipfrac",
            "explained_variance",
            "l2_reg_loss",
            "l2_init_loss",
            "ks_action_loss",
            "ks_value_loss",
            "importance",
            "current_logprobs",
        )
    )
}
EXPERIENCE = {f"stat_{i}": float(i) for i in range(19)} | {"rewards": 0.5}
TRAINER_CFG = SimpleNamespace(
    batch_size=STEPS_PER_EPOCH,
    minibatch_size=16384,
    hyperparameters={"ppo": {"clip_coef": 0.1, "ent_coef": 0.01}, "gamma": 0.99},
)


def epoch_infos(seed: int) -> list[dict[str, Any]]:
    """An epoch's infos: 32 dicts of 27 groups x 50 numeric leaves (5 per-agent arrays
    per group) and a non-numeric leaf per group.

    Example:
        >>> infos = epoch_infos(0)
        >>> len(infos), len(infos[0]), len(infos[0]["game_3"])
        (32, 27, 51)
    """
    rng = np.random.default_rng(seed)
    infos = []
    for _ in range(N_INFOS):
        info: dict[str, Any] = {}
        for g in range(N_GROUPS):
            values = rng.random(N_LEAVES)
            group: dict[str, Any] = {
                f"stat_{leaf}": rng.random(N_AGENTS) if leaf < N_AGENT_ARRAYS else float(v)
                for leaf, v in enumerate(values)
            }
            group["label"] = "not a number"
            info["agent" if g == 0 else f"game_{g}"] = group
        infos.append(info)
    return infos


def grad_values() -> dict[str, float]:
    """~40 ``grad/`` values, as ``update_grad_stats`` would get."""
    out = {f"grad/{f}": 0.5 for f in ("mean", "variance", "norm", "abs_max", "min", "max")}
    out.update({f"grad/norm/layer_{i}": float(i) for i in range(N_GRAD - len(out))})
    return out


def stopwatch() -> Any:
    """A Stopwatch with 20 timers that each ran once."""
    from fusedstats.reporter import Stopwatch

    watch = Stopwatch()
    for i in range(N_TIMERS):
        with watch(f"_phase_{i}"):
            pass
    return watch


def small_optimizer() -> Any:
    """A torch Adam optimizer (lr 3e-4) over a small linear layer."""
    import torch

    model = torch.nn.Linear(8, 8)
    return torch.optim.Adam(model.parameters(), lr=3e-4)


def eval_scores() -> Any:
    """An ``EvalRewardSummary`` of two evaluation suites."""
    from fusedstats.reporter import EvalRewardSummary

    return EvalRewardSummary({"nav": 0.5, "memory": 0.25}, {("nav", "maze"): 0.5})


def quiet_reporter(*sinks: Any) -> Any:
    """A ``StatsReporter`` that reports to no sink but ``sinks`` (no W&B, no console,
    no stats client), with :func:`eval_scores`."""
    from fusedstats.reporter import StatsReporter, StatsReporterConfig

    config = StatsReporterConfig(
        report_to_wandb=False, report_to_console=False, report_to_stats_client=False
    )
    reporter = StatsReporter(config, extra_sinks=list(sinks))
    reporter.update_eval_scores(eval_scores())
    return reporter


def report_epoch_method(reporter: Any, infos: list[dict[str, Any]], optimizer: Any) -> Method:
    """``report_epoch`` of ``reporter`` (timed) after the epoch's ``infos`` went through
    ``on_step`` and the grad values through ``update_grad_stats`` (untimed); its output
    is the payload."""
    watch = stopwatch()
    epochs = itertools.count(1)

    def fill() -> Any:
        reporter.on_step(infos)
        reporter.update_grad_stats(grad_values())
        return reporter

    def report(r: Any) -> None:
        epoch = next(epochs)
        r.report_epoch(
            epoch,
            epoch * STEPS_PER_EPOCH,
            LOSSES,
            EXPERIENCE,
            None,
            watch,
            TRAINER_CFG,
            optimizer,
        )

    return Method(run=report, setup=fill, check=lambda r: r.get_latest_payload())


def plain_accumulate(infos: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The epoch's infos in a ``defaultdict(list)`` (untimed in the race)."""
    acc: dict[str, list[Any]] = defaultdict(list)

    def walk(prefix: str, d: dict[str, Any]) -> None:
        for k, v in d.items():
            path = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(path + "/", v)
            elif isinstance(v, np.ndarray):
                acc[path].extend(v.tolist())
            elif isinstance(v, (int, float)):
                acc[path].append(v)

    for info in infos:
        walk("", info)
    return acc


def plain_payload(
    acc: dict[str, list[Any]], watch: Any, lr: float, epoch: int, step: int
) -> dict[str, float]:
    """The reporter's payload built per key in Python (``np.mean``, prefixes,
    ``float()``): the reference ``report_epoch`` races."""
    from fusedstats.reporter import compute_timing_stats

    means = {k: float(np.mean(v)) for k, v in acc.items()}
    timing = compute_timing_stats(watch, step)
    payload: dict[str, float] = {"metric/agent_step": float(step), "metric/epoch": float(epoch)}
    payload["overview/sps"] = timing.epoch_steps_per_second
    payload["overview/reward"] = float(EXPERIENCE["rewards"])
    payload.update({f"losses/{k}": float(v) for k, v in LOSSES.items()})
    payload.update({f"experience/{k}": float(v) for k, v in EXPERIENCE.items()})
    payload.update({f"env_{k}": v for k, v in means.items() if "/" in k})
    payload["parameters/learning_rate"] = lr
    payload.update(grad_values())
    payload.update(timing.timing_stats)
    return payload


def plain_payload_method(infos: list[dict[str, Any]], lr: float) -> Method:
    """:func:`plain_payload` (timed) of the infos accumulated by :func:`plain_accumulate`
    (untimed: the accumulation is the rollout benchmark's subject)."""
    watch = stopwatch()
    return Method(
        run=lambda acc: plain_payload(acc, watch, lr, 1, STEPS_PER_EPOCH),
        setup=lambda: plain_accumulate(infos),
    )


def trainer_payloads(n_keys: int, count: int, rng: random.Random) -> list[dict[str, float]]:
    """``count`` payloads of ``n_keys`` keys named like a trainer's (the same names on
    every call), values drawn from ``rng``.

    Example:
        >>> [sorted(p)[:2] for p in trainer_payloads(60, 1, random.Random(0))]
        [['env_game/group_0/stat_0', 'env_game/group_0/stat_1']]
    """
    names = [f"env_game/group_{i // 50}/stat_{i % 50}" for i in range(n_keys)]
    return [{name: rng.random() for name in names} for _ in range(count)]


__all__ = [
    "EXPERIENCE",
    "LOSSES",
    "N_AGENT_ARRAYS",
    "N_GRAD",
    "N_GROUPS",
    "N_INFOS",
    "N_LEAVES",
    "N_TIMERS",
    "STEPS_PER_EPOCH",
    "TRAINER_CFG",
    "epoch_infos",
    "eval_scores",
    "grad_values",
    "plain_accumulate",
    "plain_payload",
    "plain_payload_method",
    "quiet_reporter",
    "report_epoch_method",
    "small_optimizer",
    "stopwatch",
    "trainer_payloads",
]
