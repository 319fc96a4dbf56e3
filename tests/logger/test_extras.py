"""Beyond RLlib 2.40 (docs/logger.md: "Percentiles and throughput", "Memory", "Tensors"):
percentiles, throughput, timing, numeric dunders, bounded memory, torch tensors and tensor
mode."""

import math
import threading
import time
import tracemalloc

import numpy as np
import pytest
import torch
from pytest import approx
from tests.logger import spec_model
from tests.logger.compare import assert_same

import fusedstats
from fusedstats import MetricsLogger, Stats

DEFAULT_PERCENTILES = [0, 50, 75, 90, 95, 99, 100]

# ---- percentiles ----------------------------------------------------------------------


def _as_float_keys(d):
    return {float(k): v for k, v in d.items()}


@pytest.mark.parametrize("window", [1, 4, 10, 25])
def test_percentiles_over_a_window_match_numpy(window):
    rng = np.random.default_rng(window)
    values = rng.normal(0.0, 3.0, 30).tolist()
    qs = [5, 10, 33.3, 50, 90, 100]
    s = Stats(reduce="percentiles", window=window, percentiles=qs)
    for v in values:
        s.push(v)
    expected = np.percentile(values[-window:], qs)  # linear interpolation
    got = _as_float_keys(s.peek())
    assert sorted(got) == sorted(map(float, qs))
    for q, want in zip(qs, expected, strict=True):
        assert got[float(q)] == approx(want, rel=1e-12, abs=1e-12)
    model = spec_model.Stats(reduce="percentiles", window=window, percentiles=qs)
    for v in values:
        model.push(v)
    assert_same(got, _as_float_keys(model.peek()))
    # A reduce keeps the window: the same percentiles, and the window goes on.
    assert_same(_as_float_keys(s.reduce().peek()), got)
    for extra in (100.0, -100.0):
        s.push(extra)
        model.push(extra)
    assert_same(_as_float_keys(s.peek()), _as_float_keys(model.peek()))


def test_percentiles_true_gives_the_default_set():
    logger = MetricsLogger()
    for v in range(1, 21):
        logger.log_value("latency", v, reduce="percentiles", window=8, percentiles=True)
    got = _as_float_keys(logger.peek("latency"))
    expected = np.percentile(np.arange(13, 21), DEFAULT_PERCENTILES)
    assert sorted(got) == [float(q) for q in DEFAULT_PERCENTILES]
    assert [got[float(q)] for q in DEFAULT_PERCENTILES] == approx(expected.tolist())
    reduced = logger.reduce(return_stats_obj=False)["latency"]
    assert _as_float_keys(reduced) == got


def test_percentiles_need_a_window_and_valid_levels():
    with pytest.raises(ValueError):
        Stats(reduce="percentiles", percentiles=[50])
    with pytest.raises(ValueError):
        Stats(reduce="percentiles", window=5, percentiles=[50, 101])
    with pytest.raises(ValueError):
        Stats(reduce="mean", window=5, percentiles=[50])


# ---- throughput --------------------------------------------------------------------------


def test_throughput_of_a_sum_between_reduces():
    logger = MetricsLogger()
    logger.log_value("steps", 1000, reduce="sum", with_throughput=True)
    logger.reduce()  # the throughput clock starts over at every reduce
    start = time.perf_counter()
    time.sleep(0.2)
    logger.log_value("steps", 50)
    rate = logger.peek("steps", throughput=True)
    elapsed = time.perf_counter() - start
    # 50 new since the reduce, over at least `elapsed` seconds (sleep can only overshoot).
    assert 50 / (elapsed + 0.5) < rate <= 50 / elapsed * 1.05
    assert logger.peek("steps") == 1050  # the value itself is unchanged


def test_throughput_needs_a_sum():
    with pytest.raises(ValueError):
        MetricsLogger().log_value("x", 1.0, window=3, with_throughput=True)


# ---- timing ------------------------------------------------------------------------------


def test_with_stats_times_blocks():
    s = Stats(reduce="sum")
    for _ in range(2):
        with s:
            time.sleep(0.05)
    assert 0.1 <= s.peek() < 0.3


def test_with_stats_times_each_thread_on_its_own():
    # Two threads in the same Stats at once: each pushes its own delta (~0.1 s). One
    # shared start time would give the first thread ~0.05 s (measured from the second
    # thread's start).
    s = Stats(reduce=None, window=10)
    barrier = threading.Barrier(2)

    def timed(delay):
        barrier.wait()
        time.sleep(delay)
        with s:
            time.sleep(0.1)

    threads = [threading.Thread(target=timed, args=(d,)) for d in (0.0, 0.05)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    deltas = s.peek()
    assert len(deltas) == 2
    assert all(0.1 <= d < 0.5 for d in deltas), deltas


def test_log_time():
    logger = MetricsLogger()
    for _ in range(2):
        with logger.log_time("t", reduce="sum"):
            time.sleep(0.05)
    assert 0.1 <= logger.peek("t") < 0.3


@pytest.mark.parametrize("throughput_key", [None, "tput"])
def test_log_time_with_a_unit_count(throughput_key):
    logger = MetricsLogger()
    logger.log_value("units", 100, reduce="sum")
    start = time.perf_counter()
    with logger.log_time(
        ("timers", "step"),
        reduce="sum",
        key_for_unit_count="units",
        key_for_throughput=throughput_key,
    ):
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    key = throughput_key or ("timers", "step_throughput_per_s")
    assert 100 / (elapsed + 0.5) < logger.peek(key) <= 100 / 0.05
    assert 0.05 <= logger.peek(("timers", "step")) <= elapsed


# ---- numbers -----------------------------------------------------------------------------


def test_numeric_dunders_act_on_peek():
    s = Stats(window=2)
    s.push(1.0)
    s.push(2.0)  # peek 1.5
    assert float(s) == 1.5
    assert int(s) == 1
    assert s == 1.5
    assert s != 2.0
    assert s < 2 and s <= 1.5 and s > 1 and s >= 1.5
    assert s + 1 == 2.5
    assert s - 1 == 0.5
    assert s * 2 == 3.0
    assert format(s, ".2f") == "1.50"
    assert f"{s:.1f}" == "1.5"
    total = Stats(reduce="sum")
    total.push(3)
    total.push(4)
    assert int(total) == 7 and float(total) == 7.0


# ---- bounded memory ------------------------------------------------------------------------


@pytest.mark.parametrize("reduce", ["mean", "min", "max", "sum", None])
def test_a_window_keeps_at_most_w_values(reduce):
    s = Stats(reduce=reduce, window=5)
    for i in range(10_000):
        s.push(float(i))
        assert len(s.values) <= 5
    other = Stats(reduce=reduce, window=5)
    for i in range(7):
        other.push(float(i))
    s.merge_in_parallel(other)
    assert len(s.values) <= 5
    s.merge_on_time_axis(other)
    assert len(s.values) <= 5


def _fold_limit():
    limit = getattr(getattr(fusedstats, "logger", None), "FOLD_AT", None)
    return 4096 if limit is None else limit


@pytest.mark.parametrize("settings", [{"reduce": "sum"}, {}, {"reduce": "max"}])
def test_a_windowless_reduction_keeps_a_bounded_buffer(settings):
    s = Stats(**settings)
    model = spec_model.Stats(**settings)
    for i in range(100_000):
        v = (i % 997) * 0.5
        s.push(v)
        model.push(v)
    assert len(s.values) <= _fold_limit() + 1
    assert s.peek() == approx(model.peek(), rel=1e-9)


def test_logging_into_windowed_keys_does_not_grow_memory():
    logger = MetricsLogger()
    for i in range(20_000):  # warm up: windows full, caches filled
        logger.log_value("loss", i * 0.5, window=10)
        logger.log_value("steps", i, reduce="sum")
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(200_000):
            logger.log_value("loss", i * 0.5, window=10)
            logger.log_value("steps", i, reduce="sum")
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 400,000 values logged; a growing buffer would hold megabytes.
    assert after - before < 512 * 1024
    assert logger.peek("loss") == approx(np.mean([i * 0.5 for i in range(199_990, 200_000)]))


# ---- torch tensors -----------------------------------------------------------------------


TENSOR_SETTINGS = [
    {"window": 3},
    {"ema_coeff": 0.25},
    {"reduce": "sum"},
    {"reduce": "min", "window": 4},
    {"reduce": "max"},
    {"reduce": None, "window": 3},
]


@pytest.mark.parametrize("settings", TENSOR_SETTINGS)
def test_cpu_tensors_reduce_like_floats(settings):
    numbers = [0.25, -1.5, 3.0, 2.75, 0.5, -0.25]  # exact in float32
    with_tensors, with_floats = MetricsLogger(), MetricsLogger()
    for i, v in enumerate(numbers):
        dtype = torch.float32 if i % 2 else torch.float64
        with_tensors.log_value("x", torch.tensor(v, dtype=dtype, requires_grad=True), **settings)
        with_floats.log_value("x", v, **settings)
    got = with_tensors.reduce(return_stats_obj=False)["x"]
    want = with_floats.reduce(return_stats_obj=False)["x"]
    got = [float(g) for g in got] if isinstance(want, list) else float(got)
    assert_same(got, want)


def test_logged_tensors_are_detached():
    logger = MetricsLogger()
    weight = torch.tensor(2.0, requires_grad=True)
    loss = weight * 3.0  # has a graph
    logger.log_value("loss", loss, window=2)
    logger.log_value("loss", loss * 2)
    for v in logger.stats["loss"].values:
        if isinstance(v, torch.Tensor):
            assert not v.requires_grad and v.grad_fn is None
    assert float(logger.peek("loss")) == approx(9.0)
    loss.backward()  # the logger holds no part of the graph that would stop this
    assert weight.grad == 3.0


def test_tensor_mode():
    logger = MetricsLogger()
    assert not logger.tensor_mode
    logger.log_value("before", 1.0)
    logger.activate_tensor_mode()
    assert logger.tensor_mode
    logger.log_value("x", torch.tensor(1.5), window=1)
    logger.log_value(("n", "y"), torch.tensor(2.0), reduce="sum")
    logger.log_value(("n", "y"), torch.tensor(3.0), reduce="sum")
    logger.log_value("plain", 4.0)  # not a tensor: not reported
    logged = logger.deactivate_tensor_mode()
    assert not logger.tensor_mode
    assert set(logged) == {"x", ("n", "y")}
    assert float(logged["x"]) == 1.5
    assert float(logged[("n", "y")]) == 5.0
    as_numpy = logger.tensors_to_numpy(logged)
    if as_numpy is not None:
        assert not any(isinstance(v, torch.Tensor) for v in as_numpy.values())
        assert float(as_numpy["x"]) == 1.5
    assert logger.reduce(return_stats_obj=False) == {
        "before": 1.0,
        "x": 1.5,
        "n": {"y": 5.0},
        "plain": 4.0,
    }


def test_nan_tensor_is_ignored_like_a_nan_float():
    logger = MetricsLogger()
    logger.log_value("m", torch.tensor(math.nan), reduce="max", window=3)
    logger.log_value("m", torch.tensor(2.0))
    assert float(logger.peek("m")) == 2.0
