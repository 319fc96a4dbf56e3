"""Logger results and states through real Ray (actors, the object store); skipped when
ray is not installed. One local Ray instance for the module (~5 s to start)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tests.distributed import scenarios
from tests.distributed.compare import Expected, assert_same, check_against
from tests.distributed.world import fresh_seed

from fusedstats import MetricsLogger

ray = pytest.importorskip("ray")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ray_merge.py"


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ray_merge_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.modules[spec.name] = module  # the example registers itself for pickling by value
    spec.loader.exec_module(module)
    return module


def test_example_driver_merges_remote_workers_like_local_ones(
    ray_instance: None, example: ModuleType
) -> None:
    seed = fresh_seed()
    remote = example.merge_workers(n_workers=3, rounds=2, episodes=10, seed=seed)
    local = example.merge_workers(n_workers=3, rounds=2, episodes=10, seed=seed, remote=False)
    assert_same(remote["per_round"], local["per_round"], f"seed {seed}")
    # Lifetime sums over rounds: every episode of every worker counted once.
    lengths = sum(sum(r["env_runners"]["episode_lengths"]) for r in local["per_round"])
    assert remote["per_round"][-1]["env_runners"]["env_steps"] == lengths
    # States came through the object store: a worker's logger rebuilt on the driver.
    for state, want in zip(remote["states"], local["states"], strict=True):
        rebuilt = MetricsLogger()
        rebuilt.set_state(state)
        assert_same(rebuilt.get_state(), want)


def test_reduce_results_and_states_through_the_object_store_merge_downstream(
    ray_instance: None,
) -> None:
    seed = fresh_seed()
    loggers = [MetricsLogger() for _ in range(3)]
    for r, lg in enumerate(loggers):
        scenarios.log_round(lg, seed, r, 0)
    states = [lg.get_state() for lg in loggers]
    results = [lg.reduce() for lg in loggers]
    want = Expected(results)
    through = ray.get([ray.put(r) for r in results])
    downstream = MetricsLogger()
    downstream.merge_and_log_n_dicts(through)
    check_against(
        {k: v for k, v in downstream.stats.items()},
        _without_lifetime(want),
    )
    # get_state() through Ray, restored, reduced and merged: the same merge.
    restored = []
    for state in ray.get([ray.put(s) for s in states]):
        lg = MetricsLogger()
        lg.set_state(state)
        restored.append(lg.reduce())
    again = MetricsLogger()
    again.merge_and_log_n_dicts(restored)
    assert_same(
        MetricsLogger.peek_results(again.stats), MetricsLogger.peek_results(downstream.stats)
    )


def _without_lifetime(want: Expected) -> Expected:
    """merge_and_log_n_dicts itself is the reference here, lifetime sums included."""
    want.lifetime = {}
    return want


def _peeks(tree: Any) -> Any:
    return MetricsLogger.peek_results(tree)
