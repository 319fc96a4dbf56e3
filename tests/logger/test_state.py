"""State as plain data (pickle, JSON, torch.load(weights_only=True)), and reduced results
that cross a process boundary and merge downstream."""

import io
import json
import multiprocessing
import pickle

import pytest
import torch
from tests.logger import _spawn_worker
from tests.logger.compare import assert_same

from fusedstats import MetricsLogger, Stats

NAN = float("nan")
PLAIN_TYPES = (dict, list, tuple, str, int, float, bool, type(None))


def _via_pickle(state):
    return pickle.loads(pickle.dumps(state))


def _via_json(state):
    return json.loads(json.dumps(state))


def _via_torch(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


ROUND_TRIPS = [
    pytest.param(_via_pickle, id="pickle"),
    pytest.param(_via_json, id="json"),
    pytest.param(_via_torch, id="torch"),
]


def assert_plain(x, where="state"):
    assert isinstance(x, PLAIN_TYPES), f"{where}: {type(x).__name__} is not plain data"
    if isinstance(x, dict):
        for k, v in x.items():
            assert isinstance(k, str), f"{where}: key {k!r} is not a str"
            assert_plain(v, f"{where}.{k}")
    elif isinstance(x, list | tuple):
        for i, v in enumerate(x):
            assert_plain(v, f"{where}[{i}]")


def _busy_logger():
    logger = MetricsLogger()
    for i in range(6):
        logger.log_value("ema", float(i))
        logger.log_value(("win", "mean"), i * 0.5, window=4)
        logger.log_value(("win", "min"), NAN if i == 2 else float(i), reduce="min", window=3)
        logger.log_value("lifetime", i, reduce="sum")
        logger.log_value("per_iter", 1, reduce="sum", clear_on_reduce=True)
        logger.log_value("items", i, reduce=None)
        logger.log_value("kept", i, reduce=None, window=2)
        logger.log_value("loss", torch.tensor(0.25 * i, requires_grad=True), window=2)
        if i == 3:
            logger.reduce()  # gives every key a history
    return logger


KEYS = ["ema", "win", "lifetime", "per_iter", "items", "kept", "loss"]


def _peeks(logger):
    return {k: logger.peek(k) for k in KEYS}


def _more_logging(logger):
    for i in range(3):
        for key in ("ema", ("win", "mean"), ("win", "min"), "loss"):
            logger.log_value(key, 10.0 + i)
        for key in ("lifetime", "per_iter", "items", "kept"):
            logger.log_value(key, 10 + i)


@pytest.mark.parametrize("round_trip", ROUND_TRIPS)
def test_logger_state_round_trip(round_trip):
    original = _busy_logger()
    state = original.get_state()
    assert_plain(state)
    restored = MetricsLogger()
    restored.set_state(round_trip(state))
    assert_same(_peeks(restored), _peeks(original))
    # The same behaviour from here on: logging, reducing (history included), merging.
    _more_logging(original)
    _more_logging(restored)
    assert_same(_peeks(restored), _peeks(original))
    got, want = restored.reduce(), original.reduce()
    assert_same(MetricsLogger.peek_results(got), MetricsLogger.peek_results(want))
    assert got["lifetime"].peek(previous=True) == want["lifetime"].peek(previous=True)
    a, b = MetricsLogger(), MetricsLogger()
    a.merge_and_log_n_dicts([got])
    b.merge_and_log_n_dicts([want])
    assert_same(_peeks(a), _peeks(b))


@pytest.mark.parametrize("round_trip", ROUND_TRIPS)
def test_set_state_replaces_everything(round_trip):
    logger = MetricsLogger()
    logger.log_value("old", 1.0)
    logger.set_state(round_trip(_busy_logger().get_state()))
    assert "old" not in logger
    assert logger.peek("lifetime") == 15


@pytest.mark.parametrize("round_trip", ROUND_TRIPS)
@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"ema_coeff": 0.3},
        {"window": 3},
        {"reduce": "sum"},
        {"reduce": "max", "window": 2},
        {"reduce": None, "window": float("inf"), "clear_on_reduce": True},
        {"reduce": "mean", "window": float("inf"), "clear_on_reduce": True},
    ],
)
def test_stats_state_round_trip(round_trip, settings):
    original = Stats(**settings)
    for v in (3, 1.5, NAN, 4):
        original.push(v)
    original = original.reduce()
    original.push(2)
    state = original.get_state()
    assert_plain(state)
    restored = Stats.from_state(round_trip(state))
    assert_same(restored.peek(), original.peek())
    assert_same(restored.peek(previous=True), original.peek(previous=True))
    restored.push(7)
    original.push(7)
    assert_same(restored.reduce().peek(), original.reduce().peek())
    assert_same(restored.peek(previous=True), original.peek(previous=True))


def test_state_of_tensor_values_is_plain():
    logger = MetricsLogger()
    logger.log_value("t", torch.tensor(2.0, requires_grad=True), reduce="sum")
    logger.log_value("t", torch.tensor(3.0, dtype=torch.float64))
    logger.log_value("list", torch.tensor(1.0), reduce=None)
    state = logger.get_state()
    assert_plain(state)
    json.dumps(state)
    restored = MetricsLogger()
    restored.set_state(_via_torch(state))
    assert float(restored.peek("t")) == 5.0


# ---- results across processes --------------------------------------------------------


def _component(values, offset):
    logger = MetricsLogger()
    for v in values:
        logger.log_value("steps", 10 + offset, reduce="sum")
        logger.log_value(("returns", "mean"), float(v + offset), window=3)
    return logger


def test_pickled_results_merge_like_the_originals():
    direct, pickled = MetricsLogger(), MetricsLogger()
    components = [_component(range(5), offset) for offset in (0, 100)]
    for _ in range(2):  # twice: the lifetime sum's history must survive pickling
        results = [c.reduce() for c in components]
        direct.merge_and_log_n_dicts(results)
        pickled.merge_and_log_n_dicts([pickle.loads(pickle.dumps(r)) for r in results])
        for c in components:
            c.log_value("steps", 1)
    assert_same(pickled.peek("returns"), direct.peek("returns"))
    assert pickled.peek("steps") == direct.peek("steps") == 5 * 10 + 5 * 110 + 2


def test_result_from_a_spawned_process_merges_downstream():
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        remote = pickle.loads(pool.apply_async(_spawn_worker.log_and_reduce, (7,)).get(120))
    local = pickle.loads(_spawn_worker.log_and_reduce(0))
    downstream = MetricsLogger()
    downstream.merge_and_log_n_dicts([local, remote], key="workers")
    assert downstream.peek(("workers", "steps")) == 5 * 10 + 5 * 17
    # returns: local [2, 3, 4] and remote [9, 10, 11]; per index from the end:
    # (4+11)/2, (3+10)/2 -> values [6.5, 6.5, 7.5, 7.5], window 3.
    assert downstream.peek(("workers", "returns", "mean")) == pytest.approx((6.5 + 7.5 + 7.5) / 3)
    assert sorted(downstream.peek(("workers", "episodes"))) == [0, 1, 2, 3, 4, 7, 8, 9, 10, 11]
