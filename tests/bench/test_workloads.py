"""The shared workloads: the contestants of a race compute the same numbers, and the
methods of a round read the same inputs."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fusedstats import MetricsLogger
from fusedstats.bench.harness import race
from fusedstats.bench.logger_baseline import PlainLogger
from fusedstats.bench.workloads import logger as wl
from fusedstats.bench.workloads import reporter as wr
from fusedstats.bench.workloads import rollout as wo
from fusedstats.bench.workloads import tensors as wt

LOGGERS = {"fusedstats": MetricsLogger, "plain": PlainLogger}


def _close(a, b) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)


def test_the_rollout_methods_of_a_round_read_the_same_infos():
    def build(n: int, seed: int) -> list[dict]:
        return [{"x": float(seed), "y": {"z": float(i)}} for i in range(n)]

    calls: list[float] = []
    methods = wo.rollout_methods(build, 4, ways=("lean", "metta"))
    for method in methods.values():
        run = method.run
        method.run = lambda infos, run=run: (calls.append(infos[0]["x"]), run(infos))[1]
    r = race(methods, reps=3)
    for name in methods:  # the warm-up call read seed 1000's infos; means agree
        assert r.outputs[name] == {"x": 1000.0, "y/z": 1.5}
    warm_up, rounds = calls[:3], calls[3:]
    assert warm_up == [1000.0] * 3
    assert rounds == [1001.0] * 3 + [1002.0] * 3 + [1003.0] * 3


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 40))
def test_every_rollout_way_gives_fusedstats_means_on_uniform_infos(seed, n):
    from fusedstats.rollout import RolloutStats

    infos = wo.rollout_infos(n, seed)
    stats = RolloutStats()
    stats.add(infos)
    got = stats.means()
    for name, way in wo.WAYS.items():
        want = way(infos)
        assert set(want) == set(got), name
        for key, value in want.items():
            assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-12), (name, key)


def test_the_lean_way_reads_ragged_infos_and_the_plain_way_cannot():
    pytest.importorskip("torch")
    infos = wo.ragged_rollout_infos(40, seed=3)
    lean = wo.lean_rollout_means(infos)
    assert "agent/hp" in lean and "episode/return" in lean and "env_name" not in lean
    with pytest.raises((TypeError, ValueError)):
        wo.plain_rollout_means(infos)


@pytest.mark.parametrize(
    "build",
    [
        lambda: wl.reduce_methods(LOGGERS, n_keys=50, n_values=7),
        lambda: wl.merge_methods(
            LOGGERS, {n: wl.upstream_results(c, 4, 50, 7) for n, c in LOGGERS.items()}, 50
        ),
        lambda: wl.log_value_methods(LOGGERS, "log_value_mean_window10", wl.log_values(500)),
        lambda: wl.log_value_methods(LOGGERS, "log_value_ema", wl.log_values(500)),
        lambda: wl.log_value_methods(LOGGERS, "log_value_sum", wl.log_values(500)),
    ],
)
def test_the_logger_races_give_the_same_numbers_for_both_loggers(build):
    r = race(build(), reps=1)
    assert _close(r.outputs["fusedstats"], r.outputs["plain"])


def test_the_empty_loop_races_beside_the_loggers_and_reduce_refills_every_call():
    methods = wl.log_value_methods(LOGGERS, "log_value_sum", [1.0] * 10, empty_loop=True)
    assert wl.EMPTY_LOOP in methods
    r = race(methods, reps=2)
    assert r.outputs["fusedstats"] == r.outputs["plain"] == 10.5  # 0.5 from the setup call
    kept = wl.reduce_methods({"plain": PlainLogger}, n_keys=3, n_values=4)["plain"]
    assert kept.setup is not None
    logger = kept.setup()
    assert kept.setup() is logger  # one logger, refilled: a trainer's steady state
    assert len(logger.stats["metric_0000"].values) == 8


def test_filled_logger_holds_five_kinds_and_log_once_adds_one_value_each():
    logger, log_once = wl.filled_logger(10, seed=1)
    before = logger.peek("steps/2")
    log_once()
    assert logger.peek("steps/2") > before  # a lifetime sum of positive ints grew
    flat = MetricsLogger.peek_results(logger.reduce())
    assert len(flat["env"]["returns"]) == 2 and "max/3" in flat


def test_report_epoch_and_the_plain_payload_agree_on_every_rollout_mean():
    pytest.importorskip("torch")
    infos = wr.epoch_infos(0)[:4]
    reporter = wr.quiet_reporter()
    optimizer = wr.small_optimizer()
    try:
        fused = wr.report_epoch_method(reporter, infos, optimizer).output()
    finally:
        reporter.finalize()
    plain = wr.plain_payload_method(infos, 3e-4).output()
    env = [k for k in plain if k.startswith("env_")]
    assert len(env) == 27 * 50
    for key in env:
        assert math.isclose(fused[key], plain[key], rel_tol=1e-12), key
    assert plain["parameters/learning_rate"] == fused["parameters/learning_rate"] == 3e-4


def test_trainer_payloads_share_names_and_draw_new_values():
    rng = random.Random(0)
    a, b = wr.trainer_payloads(120, 2, rng)
    assert list(a) == list(b) and len(a) == 120 and a != b


@given(st.integers(2, 300), st.integers(0, 10**7), st.integers(0, 2**31))
def test_gradient_shapes_hold_exactly_the_elements_asked_for(n_tensors, extra, seed):
    numel = 4 * n_tensors * 1024 + extra
    shapes = wt.gradient_shapes(n_tensors, numel, seed)
    assert len(shapes) == n_tensors
    assert sum(math.prod(s) for s in shapes) == numel
    assert shapes == wt.gradient_shapes(n_tensors, numel, seed)


def test_gradient_shapes_refuse_too_few_elements():
    with pytest.raises(ValueError, match="too few"):
        wt.gradient_shapes(10, 5)


def test_tensors_and_their_transposes():
    torch = pytest.importorskip("torch")
    tensors = wt.make_tensors(30, 200_000, "bfloat16", "cpu", seed=2)
    assert all(t.dtype == torch.bfloat16 for t in tensors)
    assert wt.nbytes_of(tensors) == 2 * 200_000
    views, n, nbytes = wt.transpose_every_other(tensors)
    assert n == sum(not v.is_contiguous() for v in views) and n > 0
    assert all(torch.equal(v.t() if not v.is_contiguous() else v, t)
               for v, t in zip(views, tensors, strict=True))  # fmt: skip
    assert nbytes == sum(v.numel() * 2 for v in views if not v.is_contiguous())
    even = wt.normal_tensors(5, 1000, std=0.02)
    assert [t.numel() for t in even] == [200] * 5 and float(np.std(even[0].numpy())) < 0.1
