"""What each rank runs (imported by spawned ranks and by the tests, which replay the same
logs in one process to get the expected numbers).

Logs are random, drawn from (seed, rank, round): every reduce kind, windows, EMAs,
lists (of numbers and of strings), percentiles, lifetime sums (floats, ints, ints past
2**53), NaN and Inf, torch tensors.
"""

from __future__ import annotations

import math
import random
from typing import Any

import torch
import torch.distributed as dist

from fusedstats import MetricsLogger
from fusedstats.distributed import sync_logger, sync_rollout_stats
from fusedstats.rollout import RolloutStats


def settings(seed: int) -> dict[Any, dict[str, Any]]:
    """Key -> log_value settings; the same on every rank (drawn from the seed only)."""
    rng = random.Random(seed)
    return {
        "loss": {"window": rng.randint(1, 8)},
        "ema": {},
        "ema_fast": {"ema_coeff": rng.choice([0.1, 0.5, 1.0])},
        "min_w": {"reduce": "min", "window": rng.randint(1, 6)},
        "max": {"reduce": "max"},
        "sum_w": {"reduce": "sum", "window": rng.randint(1, 6)},
        "sum_clear": {"reduce": "sum", "clear_on_reduce": True},
        "steps": {"reduce": "sum"},  # lifetime, ints
        "energy": {"reduce": "sum"},  # lifetime, floats (NaN/Inf too)
        "big": {"reduce": "sum"},  # lifetime, ints past 2**53
        "min_int": {"reduce": "min", "window": rng.randint(2, 5)},
        "episodes": {"reduce": None},  # list, cleared on reduce
        "recent": {"reduce": None, "window": 3},
        "names": {"reduce": None},  # list of str
        "returns_pct": {
            "reduce": "percentiles",
            "window": rng.randint(3, 10),
            "percentiles": [0, 25, 50, 90, 100],
        },
        "all_mean": {"window": math.inf, "clear_on_reduce": True},
        "throughput": {"reduce": "sum", "with_throughput": True},
        ("env", "return"): {"window": rng.randint(2, 6)},
        ("env", "length", "max"): {"reduce": "max", "window": 2},
        "dev": {"window": 4},  # torch tensors
    }


def _float(rng: random.Random) -> float:
    u = rng.random()
    if u < 0.04:
        return math.nan
    if u < 0.06:
        return rng.choice([math.inf, -math.inf])
    return round(rng.gauss(0, 10), 3)


def _values(key: Any, rng: random.Random, n: int) -> list[Any]:
    if key in ("steps", "min_int", "episodes"):
        return [rng.randint(-50, 1000) for _ in range(n)]
    if key == "big":
        return [2**60 + rng.randint(0, 1000) for _ in range(n)]
    if key == "names":
        return [rng.choice(["a", "b", "c"]) + str(rng.randint(0, 9)) for _ in range(n)]
    if key == "recent":
        return [rng.randint(0, 5) if rng.random() < 0.5 else rng.random() for _ in range(n)]
    if key == "dev":
        return [torch.tensor(_float(rng)) for _ in range(n)]
    return [_float(rng) for _ in range(n)]


def log_round(logger: MetricsLogger, seed: int, rank: int, rnd: int, keys: Any = None) -> None:
    """Logs one round of rank ``rank``'s values (every key at least once in round 0)."""
    rng = random.Random(f"{seed}/{rank}/{rnd}")
    for key, kwargs in settings(seed).items():
        if keys is not None and key not in keys:
            continue
        n = rng.randint(1, 6) if rnd == 0 else rng.randint(0, 6)
        for v in _values(key, rng, n):
            logger.log_value(key, v, **kwargs)


def rollout_infos(seed: int, rank: int) -> list[list[dict[str, Any]]]:
    """Steps of info dicts (keys differ a little between ranks, as envs do)."""
    rng = random.Random(f"rollout/{seed}/{rank}")
    steps = []
    for _ in range(rng.randint(1, 4)):
        infos = []
        for _ in range(rng.randint(1, 5)):
            info: dict[str, Any] = {
                "game": {
                    "score": rng.gauss(0, 3),
                    "hearts": [rng.randint(0, 3)] * rng.randint(1, 3),
                },
                "agent": {"reward": rng.random()},
            }
            if rng.random() < 0.3:
                info[f"rank{rank}"] = {"only": 1.0}
            infos.append(info)
        steps.append(infos)
    return steps


class _Counter:
    """Counts all_gather calls (the collectives sync_logger makes)."""

    def __init__(self) -> None:
        self.calls = 0
        self._real = dist.all_gather

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self._real(*args, **kwargs)

    def take(self) -> int:
        n, self.calls = self.calls, 0
        return n


def logger_checks(rank: int, world: int, seed: int) -> dict[str, Any]:
    """Every sync_logger check of one world, in one spawn (torch imports are costly)."""
    counter = _Counter()
    dist.all_gather = counter
    out: dict[str, Any] = {"rounds": [], "collectives": []}
    logger = MetricsLogger()
    for rnd in range(3):
        log_round(logger, seed, rank, rnd)
        # Round 2 passes the reduce() result instead of the logger: the same thing.
        result = sync_logger(logger.reduce() if rnd == 2 else logger)
        out["rounds"].append(result)
        out["collectives"].append(counter.take())

    # dst: only rank 0 merges.
    other = MetricsLogger()
    log_round(other, seed, rank, 0)
    out["dst"] = sync_logger(other, dst=0)
    counter.take()

    # Ranks that logged different keys: the union, twice (the second time the schemas
    # are known and the call is one collective again).
    out["union"], out["union_collectives"] = [], []
    keys = list(settings(seed))
    for _ in range(2):
        mine = MetricsLogger()
        log_round(mine, seed, rank, 0, keys=keys[rank::2])
        mine.log_value(("rank", str(rank)), float(rank), window=2)
        out["union"].append(sync_logger(mine))
        out["union_collectives"].append(counter.take())

    # The same key with different settings: the same ValueError on every rank, and
    # the group stays usable.
    bad = MetricsLogger()
    bad.log_value("lr", 0.1, window=5 + rank)
    bad.log_value("fine", 1.0, reduce="sum")
    out["mismatch_error"] = _error_of(lambda: sync_logger(bad))
    # A metric on one rank is a sub-tree on another.
    tree = MetricsLogger()
    tree.log_value(("a", "b") if rank else ("a",), 1.0, window=1)
    out["tree_error"] = _error_of(lambda: sync_logger(tree))
    # A rank that cannot pack its metrics: every rank raises the same RuntimeError.
    broken: Any = {"x": 1.0} if rank == world - 1 else MetricsLogger().reduce()
    out["failure_error"] = _error_of(lambda: sync_logger(broken))
    after = MetricsLogger()
    after.log_value("steps", rank + 1, reduce="sum")
    out["after_errors"] = MetricsLogger.peek_results(sync_logger(after))

    # Rollout statistics.
    rollout = RolloutStats()
    for infos in rollout_infos(seed, rank):
        rollout.add(infos)
    merged = sync_rollout_stats(rollout, dst=0)
    out["rollout"] = None if merged is None else merged.summary()
    out["rollout_local"] = rollout.summary()
    return out


def _error_of(fn: Any) -> tuple[str, str] | None:
    try:
        fn()
    except Exception as err:
        return type(err).__name__, str(err)
    return None


def reporter_checks(rank: int, world: int, seed: int) -> dict[str, Any]:
    """Rank ``rank``'s payload env_ keys with rollout merging on, then off."""
    from fusedstats.reporter import StatsReporter, StatsReporterConfig

    out: dict[str, Any] = {}
    for merge in (True, False):
        config = StatsReporterConfig(
            report_to_wandb=False,
            report_to_stats_client=False,
            report_to_console=False,
            merge_rollout_across_ranks=merge,
        )
        reporter = StatsReporter(config)
        payloads = []
        for epoch in (1, 2):
            for infos in rollout_infos(seed + epoch, rank):
                reporter.on_step(infos)
            reporter.report_epoch(
                epoch=epoch, agent_step=100 * epoch, losses_stats={}, experience={}
            )
            payload = reporter.get_latest_payload() or {}
            payloads.append({k: v for k, v in payload.items() if k.startswith("env_")})
        reporter.finalize()
        out["merged" if merge else "local"] = payloads
    return out
