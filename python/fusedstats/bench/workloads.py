"""Inputs and pure-Python references of the rollout and reporter parts of ``fusedstats bench``.

The shapes are those of ``bench/bench_rollout.py`` and ``bench/bench_reporter.py`` (the
repository's full benchmarks of the same two things), which import their inputs and
references from here: rollout infos with 50 numeric leaves (8 per-agent arrays of 24
agents), and an epoch of 32 infos x 1,350 leaves whose payload has ~1,500 keys.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np

N_AGENTS = 24


def rollout_infos(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` info dicts with 50 numeric leaves each, nested two levels, 8 of them
    per-agent arrays.

    Example:
        >>> info = rollout_infos(1, seed=0)[0]
        >>> sorted(info), info["per_agent"]["pa_0"].shape
        (['agent', 'env_map', 'episode_length', 'episode_return', 'game', 'per_agent'], (24,))
    """
    rng = np.random.default_rng(seed)
    infos = []
    for _ in range(n):
        game = {f"stat_{j}": v for j, v in enumerate(rng.normal(size=20).tolist())}
        agent = {f"a_{j}": v for j, v in enumerate(rng.random(10).tolist())}
        sub = {f"m_{j}": v for j, v in enumerate(rng.integers(0, 9, size=8).tolist())}
        infos.append(
            {
                "episode_return": float(rng.normal()),
                "episode_length": int(rng.integers(100, 1000)),
                "game": game,
                "agent": agent,
                "env_map": {"sub": sub, "done": bool(rng.random() < 0.5), "w": rng.random()},
                "per_agent": {f"pa_{j}": rng.random(N_AGENTS) for j in range(8)},
            }
        )
    return infos


def ragged_rollout_infos(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` info dicts as envs that differ send them: every 17th empty (no episode
    ended there), an ``episode`` group in every 3rd only, a str leaf (skipped), a
    1-element torch tensor, a 24-element float32 array, 10 ``game/*`` floats and a bool:
    16 numeric leaves (19 with the episode group). Needs torch.

    Example:
        >>> infos = ragged_rollout_infos(4, seed=0)
        >>> infos[0], sorted(infos[3]), infos[1]["agent"]["hp"].dtype
        ({}, ['agent', 'env_name', 'episode', 'game', 'reward', 'steps'], dtype('float32'))
    """
    import torch

    rng = np.random.default_rng(seed)
    infos: list[dict[str, Any]] = []
    for i in range(n):
        if i % 17 == 0:
            infos.append({})
            continue
        info: dict[str, Any] = {
            "env_name": "forage-v3",
            "reward": torch.tensor([float(rng.normal())]),
            "steps": int(rng.integers(1, 500)),
            "agent": {
                "hp": rng.random(N_AGENTS).astype(np.float32),
                "energy": float(rng.random()),
                "alive": bool(rng.random() < 0.9),
            },
            "game": {f"stat_{j}": v for j, v in enumerate(rng.normal(size=10).tolist())},
        }
        if i % 3 == 0:
            info["episode"] = {
                "return": float(rng.normal()),
                "length": int(rng.integers(100, 1000)),
                "won": bool(rng.random() < 0.5),
            }
        infos.append(info)
    return infos


def lean_rollout_means(raw_infos: list[dict[str, Any]]) -> dict[str, float]:
    """The lean pure-Python way: one recursive walk into a ``defaultdict(list)`` (numbers
    appended, arrays and tensors extended with their elements, anything else left out),
    then ``np.mean`` per key. No per-leaf checks beyond the type tests it needs.

    Example:
        >>> lean_rollout_means([{"a": {"b": 1.0}, "s": "x"}, {"a": {"b": np.array([3.0, 5.0])}}])
        {'a/b': 3.0}
    """
    torch = sys.modules.get("torch")
    tensor = torch.Tensor if torch is not None else ()
    acc: defaultdict[str, list[Any]] = defaultdict(list)

    def walk(prefix: str, d: dict[str, Any]) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(f"{prefix}{k}/", v)
            elif isinstance(v, (int, float)):
                acc[prefix + k].append(v)
            elif isinstance(v, (np.ndarray, tensor)):
                acc[prefix + k].extend(v.tolist())

    for info in raw_infos:
        walk("", info)
    return {k: float(np.mean(v)) for k, v in acc.items()}


def unroll_nested_dict(d: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Metta's (and PufferLib's) ``unroll_nested_dict``: a generator per nesting level."""
    for k, v in d.items():
        if isinstance(v, dict):
            for k2, v2 in unroll_nested_dict(v):
                yield f"{k}/{k2}", v2
        else:
            yield k, v


def metta_rollout_means(raw_infos: list[dict[str, Any]]) -> dict[str, float]:
    """Metta's ``accumulate_rollout_stats`` (its per-leaf tensor and 1-element checks,
    a ``defaultdict(list)``, ``setdefault(k, []).extend(v)``), then ``np.mean`` per key
    as its epoch report does: the reference of the rollout part.

    Example:
        >>> metta_rollout_means([{"a": {"b": 1.0}}, {"a": {"b": np.array([3.0])}}])
        {'a/b': 2.0}
    """
    torch = sys.modules.get("torch")
    infos: defaultdict[str, list[Any]] = defaultdict(list)
    for info in raw_infos:
        for k, leaf in unroll_nested_dict(info):
            v = leaf
            if torch is not None and torch.is_tensor(v):
                v = v.detach().cpu().item() if v.numel() == 1 else v.detach().cpu().numpy()
            elif isinstance(v, np.ndarray) and v.size == 1:
                v = v.item()
            infos[k].append(v)
    stats: dict[str, list[Any]] = {}
    for k, v in infos.items():
        stats.setdefault(k, []).extend(v)
    return {k: float(np.mean(v)) for k, v in stats.items()}


# ---- the reporter part --------------------------------------------------------------

N_INFOS = 32  # info dicts per epoch
N_GROUPS = 27  # top-level groups per info ...
N_LEAVES = 50  # ... with this many leaves each: 1,350 numeric keys
N_AGENT_ARRAYS = 5  # leaves per group that are per-agent arrays
N_TIMERS = 20
N_GRAD = 40
LOSSES = {
    f"loss_{i}": 0.1 * i
    for i in range(12)  # policy, value, entropy, approx_kl, clipfrac and seven more
}
EXPERIENCE = {f"stat_{i}": float(i) for i in range(19)} | {"rewards": 0.5}


def epoch_infos(seed: int) -> list[dict[str, Any]]:
    """An epoch's infos: 32 dicts of 27 groups x 50 numeric leaves (5 per-agent arrays
    per group) and a non-numeric leaf per group."""
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
    acc: dict[str, list[Any]],
    watch: Any,
    lr: float,
    epoch: int,
    step: int,
    losses: dict[str, float] = LOSSES,
) -> dict[str, float]:
    """The reporter's payload built per key in Python (``np.mean``, prefixes,
    ``float()``): the reference of the reporter part. ``losses``: the loss values by
    name (``bench/bench_reporter.py`` passes its own, named as a trainer's are)."""
    from fusedstats.reporter import compute_timing_stats

    means = {k: float(np.mean(v)) for k, v in acc.items()}
    timing = compute_timing_stats(watch, step)
    payload: dict[str, float] = {"metric/agent_step": float(step), "metric/epoch": float(epoch)}
    payload["overview/sps"] = timing.epoch_steps_per_second
    payload["overview/reward"] = float(EXPERIENCE["rewards"])
    payload.update({f"losses/{k}": float(v) for k, v in losses.items()})
    payload.update({f"experience/{k}": float(v) for k, v in EXPERIENCE.items()})
    payload.update({f"env_{k}": v for k, v in means.items() if "/" in k})
    payload["parameters/learning_rate"] = lr
    payload.update(grad_values())
    payload.update(timing.timing_stats)
    return payload


__all__ = [
    "EXPERIENCE",
    "LOSSES",
    "N_AGENTS",
    "N_AGENT_ARRAYS",
    "N_GRAD",
    "N_GROUPS",
    "N_INFOS",
    "N_LEAVES",
    "N_TIMERS",
    "epoch_infos",
    "grad_values",
    "lean_rollout_means",
    "metta_rollout_means",
    "plain_accumulate",
    "plain_payload",
    "ragged_rollout_infos",
    "rollout_infos",
    "stopwatch",
    "unroll_nested_dict",
]
