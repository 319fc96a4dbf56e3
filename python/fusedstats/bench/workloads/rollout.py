"""Rollout infos, the pure-Python ways of averaging them, and the race of them all.

``fusedstats bench`` (its rollout part) and ``bench/bench_rollout.py`` race the same
thing, :func:`race_rollout`: ``RolloutStats.add`` + ``means()`` against the ways a
trainer does it in plain Python, on infos freshly built before every call.
"""

from __future__ import annotations

import itertools
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..harness import Method, Race, race

Infos = list[dict[str, Any]]

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


def plain_rollout_means(raw_infos: list[dict[str, Any]]) -> dict[str, float]:
    """The plainest way: every leaf appended as it is to a ``defaultdict(list)``, then
    ``np.mean`` per key (numpy stacks the per-agent arrays). It cannot read ragged infos
    (a str leaf breaks ``np.mean``).

    Example:
        >>> plain_rollout_means([{"a": {"b": 1.0}}, {"a": {"b": 3.0}}])
        {'a/b': 2.0}
    """
    acc: defaultdict[str, list[Any]] = defaultdict(list)
    for info in raw_infos:
        for k, v in unroll_nested_dict(info):
            acc[k].append(v)
    return {k: float(np.mean(v)) for k, v in acc.items()}


# The pure-Python ways by name; "lean" reads every workload, the others uniform ones only.
WAYS: dict[str, Callable[[Infos], dict[str, float]]] = {
    "lean": lean_rollout_means,
    "plain": plain_rollout_means,
    "metta": metta_rollout_means,
}


def rollout_methods(
    build: Callable[[int, int], Infos], n: int, ways: Sequence[str] = ("metta",)
) -> dict[str, Method]:
    """``fusedstats`` (``add`` then ``means()`` on one ``RolloutStats``, kept across calls
    and cleared before each, as the reporter clears it every epoch) and the pure-Python
    ``ways`` (names of :data:`WAYS`), each call on ``build(n, seed)`` infos built in its
    setup. Every method draws the seeds 1000, 1001, ... in turn, so the methods of a
    round read the same infos.
    """
    from fusedstats.rollout import RolloutStats

    kept = RolloutStats()

    def fresh() -> Callable[[], Infos]:
        seeds = itertools.count(1000)
        return lambda: build(n, next(seeds))

    fused_infos = fresh()

    def fused_setup() -> Infos:
        kept.clear()
        return fused_infos()

    def fused_run(infos: Infos) -> dict[str, float]:
        kept.add(infos)
        return kept.means()

    methods = {"fusedstats": Method(run=fused_run, setup=fused_setup)}
    methods.update({way: Method(run=WAYS[way], setup=fresh()) for way in ways})
    return methods


def race_rollout(
    build: Callable[[int, int], Infos],
    n: int,
    reps: int,
    ways: Sequence[str] = ("metta",),
    *,
    measure_cpu: bool = False,
) -> Race:
    """Races :func:`rollout_methods`, one warm-up call each.

    The garbage collection runs before the infos are built, not between building and
    the timed call: a trainer aggregates infos right after ``env.step()`` made them (a
    full collection in between walks every object of torch and numba and leaves the
    infos out of cache: fusedstats then takes ~1 ms more on 1,024 uniform infos, the
    pure-Python ways about the same).
    """
    methods = rollout_methods(build, n, ways)
    return race(methods, reps, collect="before_setup", measure_cpu=measure_cpu)


__all__ = [
    "N_AGENTS",
    "WAYS",
    "lean_rollout_means",
    "metta_rollout_means",
    "plain_rollout_means",
    "race_rollout",
    "ragged_rollout_infos",
    "rollout_infos",
    "rollout_methods",
    "unroll_nested_dict",
]
