"""sync_logger and sync_rollout_stats on real gloo worlds of 2 and 4 spawned processes,
against single-process merges of the same random data (a fresh seed each run)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from tests.distributed import scenarios
from tests.distributed.compare import Expected, assert_same, check_against
from tests.distributed.world import fresh_seed, run_world, skip_without_gloo

from fusedstats import MetricsLogger
from fusedstats.rollout import RolloutStats

WORLDS = [2, pytest.param(4, marks=pytest.mark.slow)]


@pytest.fixture(scope="module", params=WORLDS, ids=lambda n: f"{n}ranks")
def world(request: pytest.FixtureRequest) -> dict[str, Any]:
    skip_without_gloo()
    size = request.param
    seed = fresh_seed()
    outs = run_world("tests.distributed.scenarios:logger_checks", size, (seed,))
    return {"size": size, "seed": seed, "outs": outs}


def _replay_rounds(seed: int, size: int, n_rounds: int) -> list[Expected]:
    loggers = [MetricsLogger() for _ in range(size)]
    expected = []
    for rnd in range(n_rounds):
        for r, lg in enumerate(loggers):
            scenarios.log_round(lg, seed, r, rnd)
        expected.append(Expected([lg.reduce() for lg in loggers]))
    return expected


def test_every_rank_gets_the_single_process_merge(world: dict[str, Any]) -> None:
    seed, size, outs = world["seed"], world["size"], world["outs"]
    expected = _replay_rounds(seed, size, 3)
    for rank, out in enumerate(outs):
        for rnd, (got, want) in enumerate(zip(out["rounds"], expected, strict=True)):
            try:
                check_against(got, want)
            except AssertionError as err:
                raise AssertionError(f"seed {seed}, rank {rank}, round {rnd}: {err}") from None


def test_lifetime_sums_merge_downstream_like_every_ranks_result(world: dict[str, Any]) -> None:
    """A driver merging sync results each round holds what a driver merging every rank's
    result each round holds (lifetime sums add only what is new)."""
    seed, size, outs = world["seed"], world["size"], world["outs"]
    loggers = [MetricsLogger() for _ in range(size)]
    from_sync, from_ranks = MetricsLogger(), MetricsLogger()
    for rnd, synced in enumerate(outs[0]["rounds"]):
        for r, lg in enumerate(loggers):
            scenarios.log_round(lg, seed, r, rnd)
        from_ranks.merge_and_log_n_dicts([lg.reduce() for lg in loggers])
        from_sync.merge_and_log_n_dicts([synced])
        for key in ("steps", "energy", "big", "throughput"):
            assert_same(from_sync.peek(key), from_ranks.peek(key), f"seed {seed} {key}", rel=1e-12)
    assert type(from_sync.peek("big")) is int and from_sync.peek("big") > 2**60


def test_collectives_per_call_are_few_and_constant(world: dict[str, Any]) -> None:
    for out in world["outs"]:
        counts = out["collectives"]
        assert counts[0] == 2, counts  # sizes unknown yet: header round, then the data
        assert max(counts) <= 2, counts
        first, again = out["union_collectives"]
        assert first <= 4, first  # + the schemas (sizes unknown on that channel too)
        assert again == 1, again  # same key sets again: the union is remembered


def test_dst_gets_the_merge_and_the_others_none(world: dict[str, Any]) -> None:
    outs = world["outs"]
    assert all(out["dst"] is None for out in outs[1:])
    want = _replay_rounds(world["seed"], world["size"], 1)[0]
    check_against(outs[0]["dst"], want)


def test_different_key_sets_give_the_union(world: dict[str, Any]) -> None:
    seed, size = world["seed"], world["size"]
    keys = list(scenarios.settings(seed))
    results = []
    for r in range(size):
        lg = MetricsLogger()
        scenarios.log_round(lg, seed, r, 0, keys=keys[r::2])
        lg.log_value(("rank", str(r)), float(r), window=2)
        results.append(lg.reduce())
    want = Expected(results)
    for rank, out in enumerate(world["outs"]):
        for got in out["union"]:
            try:
                check_against(got, want)
            except AssertionError as err:
                raise AssertionError(f"seed {seed}, rank {rank}: {err}") from None
        assert sorted(out["union"][0]["rank"]) == [str(r) for r in range(size)]


def test_different_settings_raise_the_same_error_everywhere(world: dict[str, Any]) -> None:
    outs = world["outs"]
    errors = {out["mismatch_error"] for out in outs}
    assert len(errors) == 1, errors
    kind, text = errors.pop()
    assert kind == "ValueError"
    assert "'lr'" in text and "window=5" in text and "window=6" in text and "'fine'" not in text
    trees = {out["tree_error"] for out in outs}
    assert len(trees) == 1 and next(iter(trees))[0] == "ValueError", trees


def test_a_failing_rank_fails_every_rank_and_the_group_stays_usable(
    world: dict[str, Any],
) -> None:
    size, outs = world["size"], world["outs"]
    errors = {out["failure_error"] for out in outs}
    assert len(errors) == 1, errors
    kind, text = errors.pop()
    assert kind == "RuntimeError"
    assert f"rank {size - 1}: TypeError" in text and "'x'" in text
    for out in outs:  # the next call on the same group still works
        assert out["after_errors"] == {"steps": size * (size + 1) // 2}


def test_rollout_stats_merge_into_dst(world: dict[str, Any]) -> None:
    seed, size, outs = world["seed"], world["size"], world["outs"]
    single = RolloutStats()
    for r in range(size):
        for infos in scenarios.rollout_infos(seed, r):
            single.add(infos)
    want = single.summary()
    got = outs[0]["rollout"]
    assert list(got) == list(want)  # keys in order of first appearance, rank order
    for key, stats in want.items():
        for name, value in stats.items():
            assert math.isclose(got[key][name], value, rel_tol=1e-12, abs_tol=1e-12), (key, name)
    assert all(out["rollout"] is None for out in outs[1:])


def test_without_a_process_group_it_is_this_process_alone() -> None:
    """No torch.distributed: the merge of this rank with itself alone (a 1-rank world)."""
    from fusedstats.distributed import sync_logger, world_size

    seed = fresh_seed()
    logger, twin = MetricsLogger(), MetricsLogger()
    for rnd in range(2):
        scenarios.log_round(logger, seed, 0, rnd)
        scenarios.log_round(twin, seed, 0, rnd)
        want = Expected([twin.reduce()])
        check_against(sync_logger(logger), want)
    assert world_size() == 1
    with pytest.raises(RuntimeError, match=r"rank 0: TypeError: key \('x',\)"):
        sync_logger({"x": 1.0})
    with pytest.raises(ValueError, match="dst=1 is not a rank"):
        sync_logger(logger, dst=1)


def test_nan_and_inf_as_in_one_process() -> None:
    from fusedstats.distributed import sync_logger

    logger = MetricsLogger()
    for v in (1.0, math.nan, math.inf):
        logger.log_value("mean", v, window=5)
        logger.log_value("max", v, reduce="max", window=5)
    logger.log_value("all_nan", math.nan, reduce="sum", window=3)
    got = MetricsLogger.peek_results(sync_logger(logger))
    assert got["mean"] == math.inf and got["max"] == math.inf
    assert got["all_nan"] == 0.0  # numpy's nansum, as in one process
