"""Turning one epoch's numbers into a flat ``{key: float}`` payload with Metta's keys."""

from __future__ import annotations

import math
import numbers
import sys
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .state import EvalRewardSummary
from .timing import TimingInfo

ENV_PREFIX = "env_"
MOVEMENT_PREFIX = "env_agent/movement"
# The movement metrics kept; every other env_agent/movement* key is dropped (there is
# one per direction x action x facing, which buries the useful ones in W&B).
CORE_MOVEMENT_KEYS = frozenset(
    f"{MOVEMENT_PREFIX}.{name}"
    for name in (
        "direction.up",
        "direction.down",
        "direction.left",
        "direction.right",
        "sequential_rotations",
        "rotation.to_up",
        "rotation.to_down",
        "rotation.to_left",
        "rotation.to_right",
    )
)
_NUMERIC_KINDS = frozenset("biuf")


def as_scalar(value: Any) -> float | None:
    """``value`` as a python float if it is one number, else None.

    Numbers are int, float, bool, numpy scalars and other real numbers, and numpy
    arrays or torch tensors of one element (real dtypes). Strings, None, complex
    numbers, larger arrays and other objects are not.

    Example:
        >>> import numpy as np
        >>> as_scalar(3), as_scalar(np.float32(0.5)), as_scalar(np.array([[2]]))
        (3.0, 0.5, 2.0)
        >>> as_scalar("1.0"), as_scalar(np.ones(2)), as_scalar(None)
        (None, None, None)
    """
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int or kind is bool:
        return float(value)
    if isinstance(value, np.ndarray | np.generic):
        if value.size != 1 or value.dtype.kind not in _NUMERIC_KINDS:
            return None
        return float(value.reshape(-1)[0]) if isinstance(value, np.ndarray) else float(value)
    if isinstance(value, numbers.Real):
        return float(value)
    torch = sys.modules.get("torch")  # a tensor can only exist if torch is imported
    if torch is not None and isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.is_complex():
            return None
        return float(value.item())
    return None


def add_scalars(payload: dict[str, float], prefix: str, values: Mapping[str, Any]) -> None:
    """``payload[prefix + key] = float(value)`` for every value that is one number."""
    for key, value in values.items():
        if type(value) is float:  # the common case, without a call
            payload[prefix + key] = value
            continue
        scalar = as_scalar(value)
        if scalar is not None:
            payload[prefix + key] = scalar


def env_key(key: str) -> str | None:
    """The payload key of rollout key ``key``: ``env_<key>``, or None for a key without
    "/" or an ``env_agent/movement*`` key other than the nine core ones."""
    if "/" not in key:
        return None
    out = ENV_PREFIX + key
    if out.startswith(MOVEMENT_PREFIX) and out not in CORE_MOVEMENT_KEYS:
        return None
    return out


class EnvKeys(dict[str, str | None]):
    """A memo of :func:`env_key`: the same rollout keys come back every epoch, so each is
    looked up once instead of re-checked (a third of ``report_epoch`` at 1,500 keys)."""

    MAX_KEYS = 1 << 16  # keys named after ids would grow it forever: then it starts over

    def __missing__(self, key: str) -> str | None:
        if len(self) >= self.MAX_KEYS:
            self.clear()
        out = self[key] = env_key(key)
        return out


def environment_stats(
    means: Mapping[str, Any], env_keys: EnvKeys | None = None
) -> dict[str, float]:
    """Rollout means -> ``env_<key>`` for keys with a "/", the movement filter applied
    (``env_keys``: a memo of the key mapping kept across epochs).

    Example:
        >>> environment_stats({"game/score": 2, "episode": 1.0,
        ...                    "agent/movement.direction.up": 0.5,
        ...                    "agent/movement.facing.up": 0.5})
        {'env_game/score': 2.0, 'env_agent/movement.direction.up': 0.5}
    """
    keys = EnvKeys() if env_keys is None else env_keys
    out: dict[str, float] = {}
    for key, value in means.items():
        name = keys[key]
        if name is None:
            continue
        if type(value) is float:
            out[name] = value
            continue
        scalar = as_scalar(value)
        if scalar is not None:
            out[name] = scalar
    return out


@dataclass
class ProcessedStats:
    """An epoch's rollout, loss and experience numbers, ready for the payload."""

    overview: dict[str, float] = field(default_factory=dict)  # -> overview/<k>
    losses_stats: dict[str, float] = field(default_factory=dict)  # -> losses/<k>
    experience_stats: dict[str, float] = field(default_factory=dict)  # -> experience/<k>
    environment_stats: dict[str, float] = field(default_factory=dict)  # env_<k>, as is


def process_training_stats(
    rollout_means: Mapping[str, Any],
    losses_stats: Mapping[str, Any],
    experience_stats: Mapping[str, Any],
    env_keys: EnvKeys | None = None,
) -> ProcessedStats:
    """Scalars of losses and experience, ``env_`` keys of the rollout means, and the
    overview reward (experience's ``rewards``, also as ``reward_vs_total_time``, the
    same value for a W&B chart against ``metric/total_time``). ``env_keys``: see
    :func:`environment_stats`.

    Example:
        >>> p = process_training_stats({"game/score": 1.0}, {"policy_loss": 0.1},
        ...                            {"rewards": 0.5, "note": "x"})
        >>> p.overview
        {'reward': 0.5, 'reward_vs_total_time': 0.5}
        >>> p.losses_stats, p.experience_stats, p.environment_stats
        ({'policy_loss': 0.1}, {'rewards': 0.5}, {'env_game/score': 1.0})
    """
    losses: dict[str, float] = {}
    add_scalars(losses, "", losses_stats)
    experience: dict[str, float] = {}
    add_scalars(experience, "", experience_stats)
    overview: dict[str, float] = {}
    reward = experience.get("rewards")
    if reward is not None:
        overview["reward"] = reward
        overview["reward_vs_total_time"] = reward
    environment = environment_stats(rollout_means, env_keys)
    return ProcessedStats(overview, losses, experience, environment)


def build_wandb_payload(
    processed_stats: ProcessedStats,
    timing_info: TimingInfo | None,
    weight_stats: Mapping[str, Any],
    grad_stats: Mapping[str, Any],
    system_stats: Mapping[str, Any],
    memory_stats: Mapping[str, Any],
    parameters: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
    evals: EvalRewardSummary | None,
    *,
    agent_step: int,
    epoch: int,
) -> dict[str, float]:
    """One epoch's payload: every value a python float, non-numbers left out.

    Groups, in order (a later group wins on a key clash): ``metric/agent_step``,
    ``metric/epoch``, ``metric/total_time`` and ``metric/train_time``;
    ``overview/...`` (``sps`` = ``epoch_steps_per_second``, ``steps_per_second``, the
    processed overview, ``<category>_score``); ``losses/``, ``experience/``, the
    ``env_`` keys; ``parameters/``, ``hyperparameters/``; ``eval_<category>/score`` and
    ``eval_<category>/<sim>``; system stats as given (``monitor/...``);
    ``trainer_memory/``; weight stats and grad stats as given (``weights/...``,
    ``grad/...``); the timing keys. Without ``timing_info`` there is no time-derived
    key at all (no ``metric/*_time``, ``overview/*sps``/``*steps_per_second``,
    ``timing_*``).

    Example:
        >>> build_wandb_payload(ProcessedStats(losses_stats={"value_loss": 2.0}),
        ...     None, {}, {"grad/norm": 1.5}, {}, {}, {"learning_rate": 0.01}, {}, None,
        ...     agent_step=100, epoch=3)  # doctest: +NORMALIZE_WHITESPACE
        {'metric/agent_step': 100.0, 'metric/epoch': 3.0, 'losses/value_loss': 2.0,
         'parameters/learning_rate': 0.01, 'grad/norm': 1.5}
    """
    payload: dict[str, float] = {
        "metric/agent_step": float(agent_step),
        "metric/epoch": float(epoch),
    }
    overview: dict[str, float] = {}
    if timing_info is not None:
        payload["metric/total_time"] = float(timing_info.wall_time)
        payload["metric/train_time"] = float(timing_info.train_time)
        overview["sps"] = float(timing_info.epoch_steps_per_second)
        overview["steps_per_second"] = float(timing_info.steps_per_second)
        overview["epoch_steps_per_second"] = float(timing_info.epoch_steps_per_second)
    overview.update(processed_stats.overview)
    if evals is not None:
        for category, score in evals.category_scores.items():
            overview[f"{category}_score"] = score
    add_scalars(payload, "overview/", overview)
    add_scalars(payload, "losses/", processed_stats.losses_stats)
    add_scalars(payload, "experience/", processed_stats.experience_stats)
    add_scalars(payload, "", processed_stats.environment_stats)
    add_scalars(payload, "parameters/", parameters)
    add_scalars(payload, "hyperparameters/", hyperparameters)
    if evals is not None:
        add_scalars(payload, "eval_", evals.to_wandb_metrics_format())
    add_scalars(payload, "", system_stats)
    add_scalars(payload, "trainer_memory/", memory_stats)
    add_scalars(payload, "", weight_stats)
    add_scalars(payload, "", grad_stats)
    if timing_info is not None:
        add_scalars(payload, "", timing_info.timing_stats)
    return payload


def add_default_zero_metrics(
    payload: dict[str, float],
    keys: tuple[str, ...],
    history: dict[str, deque[float]],
    window: int,
) -> None:
    """Each key of ``keys`` absent from ``payload`` is set to 0.0; then ``<key>.avg`` is
    the mean of that key's finite values over the last ``window`` reports, this one
    included (NaN when none of them was finite). ``history`` ({key: deque}) carries the
    values between reports and is updated here."""
    for key in keys:
        value = payload.setdefault(key, 0.0)
        past = history.get(key)
        if past is None or past.maxlen != window:
            past = history[key] = deque(past or (), maxlen=window)
        past.append(value)
        finite = [v for v in past if math.isfinite(v)]
        payload[f"{key}.avg"] = sum(finite) / len(finite) if finite else math.nan
