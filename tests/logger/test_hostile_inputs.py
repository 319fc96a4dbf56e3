"""Inputs that must not poison a logger (docs/logger.md, "What can be logged" and "State"):
an int no float can hold is refused at log time naming the key, and set_state checks the
whole state before it replaces anything."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.logger.compare import assert_same

from fusedstats import MetricsLogger, Stats

HUGE = [10**400, -(10**400), 2**1024 - 2**970]  # the last is the first int float() refuses
LARGEST = 2**1024 - 2**970 - 1  # converts to the largest float


def _busy_logger() -> MetricsLogger:
    logger = MetricsLogger()
    for i in range(5):
        logger.log_value("reward", 0.5 * i, window=4)
        logger.log_value(("env", "steps"), 10 * i, reduce="sum")
        logger.log_value("ema", float(i))
        logger.log_value("items", i, reduce=None)
        logger.log_value("worst", -float(i), reduce="min", window=3)
        if i == 2:
            logger.reduce()
    return logger


KEYS = ["reward", "env", "ema", "items", "worst"]


def _peeks(logger: MetricsLogger) -> dict[str, Any]:
    return {k: logger.peek(k) for k in KEYS}


# ---- item 11: a value no float holds ------------------------------------------------------


@pytest.mark.parametrize("value", HUGE, ids=["1e400", "-1e400", "2**1024-2**970"])
@pytest.mark.parametrize(
    ("key", "kwargs"),
    [
        ("reward", {}),  # an existing windowed mean: log_value's fast path
        (("env", "steps"), {"reduce": "sum"}),  # an existing int sum: fast path too
        ("ema", {}),
        ("fresh", {"reduce": "max", "window": 3}),  # a key's first call
    ],
    ids=["mean", "int-sum", "ema", "new-key"],
)
def test_an_int_no_float_holds_is_refused_naming_the_key(key, kwargs, value):
    logger = _busy_logger()
    before = _peeks(logger)
    with pytest.raises(ValueError, match="cannot be reduced") as caught:
        logger.log_value(key, value, **kwargs)
    assert repr(key) in str(caught.value)
    assert "fresh" not in logger
    assert_same(_peeks(logger), before)
    # Nothing else changed: the whole logger reduces, and the key takes numbers again.
    logger.log_value(key, 1.5, **kwargs)
    logger.reduce()
    logger.log_value(key, 2, **kwargs)
    assert math.isfinite(float(logger.peek(key) if key != "env" else 0.0))
    with pytest.raises(ValueError, match="reward"):
        logger.set_value("reward", value)
    with pytest.raises(ValueError, match="reward"):
        logger.log_dict({"reward": value, "other": 1.0})


def test_the_largest_int_a_float_holds_is_a_number():
    logger = MetricsLogger()
    logger.log_value("total", LARGEST, reduce="sum")
    logger.log_value("mean", LARGEST, window=2)
    logger.log_value("mean", 1.0)
    assert logger.peek("total") == LARGEST  # python ints sum exactly
    assert logger.peek("mean") == (float(LARGEST) + 1.0) / 2
    assert logger.reduce(return_stats_obj=False)["total"] == LARGEST


def test_lists_keep_any_int():
    logger = MetricsLogger()
    logger.log_value("ids", 10**400, reduce=None)
    assert logger.peek("ids") == [10**400]
    s = Stats(reduce="sum")
    with pytest.raises(ValueError, match="no float"):
        s.push(10**400)
    assert s.peek() == 0


# ---- item 12: set_state checks everything first ---------------------------------------------


def _state_with(change: Any) -> dict[str, Any]:
    """A valid state of _busy_logger() with ``change(state)`` applied."""
    state = copy.deepcopy(_busy_logger().get_state())
    change(state)
    return state


def _entry(state: dict[str, Any], key: tuple[str, ...]) -> dict[str, Any]:
    for path, stats_state in state["stats"]:
        if tuple(path) == key:
            found: dict[str, Any] = stats_state
            return found
    raise KeyError(key)


def _set(key: tuple[str, ...], field: str, value: Any) -> Any:
    return lambda state: _entry(state, key).__setitem__(field, value)


HOSTILE = [
    ("values-a-string", _set(("reward",), "values", "abc"), "values"),
    ("hist-empty", _set(("reward",), "hist", []), "hist"),
    ("path-a-string", lambda s: s["stats"][0].__setitem__(0, "abc"), "key path"),
    ("clear-a-string", _set(("reward",), "clear_on_reduce", "no"), "clear_on_reduce"),
    ("throughput-a-string", _set(("env", "steps"), "with_throughput", "yes"), "with_throughput"),
    ("unknown-reduce", _set(("reward",), "reduce", "median"), "reduce"),
    ("negative-window", _set(("reward",), "window", -3), "window"),
    ("text-value", _set(("reward",), "values", [1.0, "x"]), "values[1]"),
    ("huge-value", _set(("env", "steps"), "values", [10**400]), "values[0]"),
    ("text-history", _set(("env", "steps"), "hist", ["x", 0]), "hist[0]"),
    ("ema-coeff-5", _set(("ema",), "ema_coeff", 5.0), "ema_coeff"),
    ("path-of-ints", lambda s: s["stats"][0].__setitem__(0, [1, 2]), "key path"),
    ("duplicate-key", lambda s: s["stats"].append(copy.deepcopy(s["stats"][0])), "twice"),
    (
        "metric-below-a-metric",
        lambda s: s["stats"].append([["reward", "x"], copy.deepcopy(s["stats"][0][1])]),
        "already a metric",
    ),
    ("not-a-pair", lambda s: s["stats"].append([["lonely"]]), "pair"),
    ("tensor-mode-a-string", lambda s: s.__setitem__("tensor_mode", "yes"), "tensor_mode"),
    ("stats-a-dict", lambda s: s.__setitem__("stats", {"reward": {}}), "list"),
    ("missing-field", lambda s: _entry(s, ("reward",)).pop("hist"), "hist"),
]


@pytest.mark.parametrize(("change", "names"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_a_hostile_state_is_refused_and_the_logger_keeps_its_metrics(change, names):
    logger = MetricsLogger()
    logger.log_value("kept", 3.0, window=2)
    logger.log_value("count", 7, reduce="sum")
    with pytest.raises((TypeError, ValueError)) as caught:
        logger.set_state(_state_with(change))
    assert names in str(caught.value)
    assert str(caught.value).startswith("set_state")
    assert logger.reduce(return_stats_obj=False) == {"kept": 3.0, "count": 7}
    logger.log_value("count", 1)
    assert logger.peek("count") == 8


def test_a_refused_entry_is_named_by_index_and_key():
    state = _state_with(_set(("env", "steps"), "values", "abc"))
    index = [tuple(p) for p, _ in state["stats"]].index(("env", "steps"))
    with pytest.raises(TypeError, match=rf"stats\[{index}\] \(key \('env', 'steps'\)\)"):
        MetricsLogger().set_state(state)


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), math.nan, math.inf]),
    st.floats(),
    st.text(max_size=5),
    st.lists(st.one_of(st.integers(), st.text(max_size=3), st.floats()), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
FIELDS = [
    "reduce",
    "window",
    "ema_coeff",
    "clear_on_reduce",
    "values",
    "hist",
    "percentiles",
    "with_throughput",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.integers(0, len(KEYS) + 1),
    field=st.sampled_from(FIELDS),
    junk=JUNK,
    via_json=st.booleans(),
)
def test_no_state_set_state_accepts_breaks_the_logger(which, field, junk, via_json):
    """Any one field of a valid state replaced by junk: set_state either refuses it
    (and the logger is as it was) or takes it, and then every later call works."""
    state = _busy_logger().get_state()
    if via_json:
        state = json.loads(json.dumps(state))
    entry = state["stats"][which % len(state["stats"])][1]
    entry[field] = junk
    logger = MetricsLogger()
    logger.log_value("kept", 3.0, window=2)
    try:
        logger.set_state(state)
    except (TypeError, ValueError) as err:
        assert str(err).startswith("set_state")
        assert logger.peek("kept") == 3.0 and len(logger.stats) == 1
        return
    # Accepted: it must be a working logger, every key of it.
    paths = [tuple(p) for p, _ in state["stats"]]
    for p in paths:
        logger.peek(p)
    logger.reduce()
    for p in paths:
        s = logger.stats
        for part in p:
            s = s[part]
        value: Any = 1 if s.reduce_method in ("sum", "min", "max", None) else 1.0
        logger.log_value(p, value)
    logger.reduce()
    for p in paths:
        logger.peek(p)
    MetricsLogger().merge_and_log_n_dicts([logger.reduce()])
    assert json.loads(json.dumps(logger.get_state()))
