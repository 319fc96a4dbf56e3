"""The rules docs/logger.md states, one small case each, on fusedstats and on the model
(spec_model.py)."""

import math

import pytest
from pytest import approx
from tests.logger.compare import assert_same

NAN = float("nan")


def _filled(lib, values, **settings):
    s = lib.Stats(**settings)
    for v in values:
        s.push(v)
    return s


# ---- reductions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "empty"),
    [
        ({}, NAN),  # EMA
        ({"window": 3}, NAN),
        ({"reduce": "min"}, NAN),
        ({"reduce": "max", "window": 2}, NAN),
        ({"reduce": "sum"}, 0),
        ({"reduce": "sum", "window": 4}, 0),
        ({"reduce": None, "window": 3}, []),
    ],
)
def test_empty_stats_peek(lib, settings, empty):
    assert_same(lib.Stats(**settings).peek(), empty)


@pytest.mark.parametrize(
    ("method", "expected"), [("mean", 2.0), ("min", 1.0), ("max", 3.0), ("sum", 4.0)]
)
def test_nan_is_ignored(lib, method, expected):
    s = _filled(lib, [1.0, NAN, 3.0], reduce=method, window=5)
    assert s.peek() == approx(expected)


@pytest.mark.parametrize("method", ["mean", "min", "max"])
def test_all_nan_gives_nan(lib, method):
    # docs/logger.md, "Reductions": mean/min/max of only NaN are NaN.
    assert math.isnan(_filled(lib, [NAN, NAN], reduce=method, window=5).peek())


@pytest.mark.parametrize("window", [None, 5])
def test_all_nan_sums_to_zero(lib, window):
    # numpy's nansum (RLlib 2.40): NaN counts as 0, also when every value is NaN.
    s = _filled(lib, [NAN, NAN], reduce="sum", window=window)
    assert_same(s.peek(), 0.0)
    assert type(s.peek()) is float
    assert_same(s.reduce().peek(), 0.0)


@pytest.mark.parametrize("value", [-4, 2.5, NAN])
def test_an_ema_of_one_value_is_that_value(lib, value):
    # RLlib 2.40 starts the EMA at the first value as pushed: one int peeks as that int.
    s = _filled(lib, [value], ema_coeff=0.3)
    assert_same(s.peek(), value)
    assert type(s.peek()) is type(value)
    s.push(1)
    assert type(s.peek()) is float


def test_nan_poisons_an_ema(lib):
    s = _filled(lib, [1.0, NAN, 3.0], ema_coeff=0.5)
    assert math.isnan(s.peek())
    s = s.reduce()
    s.push(2.0)
    assert math.isnan(s.peek())


def test_ema_has_no_bias_correction(lib):
    s = _filled(lib, [4.0, 0.0, 0.0], ema_coeff=0.5)
    assert s.peek() == approx(1.0)  # 4 -> 2 -> 1


@pytest.mark.parametrize("method", ["sum", "min", "max"])
def test_python_ints_stay_ints(lib, method):
    s = _filled(lib, [3, 1, 2], reduce=method)
    assert type(s.peek()) is int
    assert type(s.reduce().peek()) is int
    windowed = _filled(lib, [3, 1, 2], reduce=method, window=2)
    assert type(windowed.peek()) is int


@pytest.mark.parametrize("method", ["sum", "min", "max"])
def test_a_float_makes_a_float(lib, method):
    s = _filled(lib, [3, 1.5, 2], reduce=method)
    assert type(s.peek()) is float


def test_int_mean_is_a_float(lib):
    peeked = _filled(lib, [1, 2], window=4).peek()
    assert type(peeked) is float and peeked == 1.5


def test_ints_in_the_window_decide(lib):
    # Only the values the reduction sees count: once the float has left the window,
    # the window holds python ints only.
    s = _filled(lib, [0.5, 1, 2], reduce="sum", window=2)
    assert s.peek() == 3 and type(s.peek()) is int


@pytest.mark.parametrize("method", ["min", "max"])
def test_parallel_merge_of_ints_and_floats_gives_floats(lib, method):
    # Per index the merge reduces [1, 2.5]: python ints and a float in, a float out.
    a = _filled(lib, [1], reduce=method)
    a.merge_in_parallel(_filled(lib, [2.5], reduce=method))
    assert a.peek() == (1 if method == "min" else 2.5)
    assert type(a.peek()) is float


# ---- after reduce ------------------------------------------------------------------------


def test_values_after_reduce(lib):
    assert list(_filled(lib, [1, 2, 3], reduce="sum").reduce().values) == [6]
    assert list(_filled(lib, [5, 1, 3], reduce="min").reduce().values) == [1]
    ema = _filled(lib, [1.0, 2.0], ema_coeff=0.5).reduce()
    assert list(ema.values) == approx([1.5])
    windowed = _filled(lib, [1.0, 2.0, 3.0, 4.0], window=3).reduce()
    assert list(windowed.values) == approx([2.0, 3.0, 4.0])
    listed = _filled(lib, [1, 2, 3, 4], reduce=None, window=2).reduce()
    assert list(listed.values) == [3, 4]


def test_a_reduced_ema_merges_as_one_value(lib):
    # After reduce an EMA holds [ema]: a parallel merge sees one value, not three.
    a = _filled(lib, [1.0, 2.0, 3.0], ema_coeff=0.5).reduce()  # 2.25
    b = _filled(lib, [4.0], ema_coeff=0.5)
    a.merge_in_parallel(b)
    assert a.peek() == approx((2.25 + 4.0) / 2)


def test_reduce_continues_where_it_left_off(lib):
    s = _filled(lib, [1.0, 2.0], ema_coeff=0.5).reduce()
    s.push(3.0)
    assert s.peek() == approx(0.5 * 3.0 + 0.5 * 1.5)
    s = _filled(lib, [1, 2, 3], reduce="sum").reduce()
    s.push(4)
    assert s.peek() == 10


@pytest.mark.parametrize(
    "settings",
    [{}, {"ema_coeff": 0.5}, {"reduce": "min"}, {"reduce": "max"}, {"reduce": "sum"}],
    ids=["ema-default", "ema-0.5", "min", "max", "sum"],
)
def test_reducing_an_empty_stats_leaves_it_empty(lib, settings):
    # As in RLlib: an empty list reduces to NaN (0 for sum) and stays empty; no NaN is
    # left behind to poison an EMA or to hide later values.
    s = lib.Stats(**settings).reduce()
    assert_same(s.peek(), 0 if settings.get("reduce") == "sum" else NAN)
    s.push(2)
    assert s.peek() == 2


def test_an_idle_iteration_does_not_poison_a_downstream_ema(lib):
    component, downstream = lib.MetricsLogger(), lib.MetricsLogger()
    for value in (1.0, None, 3.0):  # the component logs nothing in the second iteration
        if value is not None:
            component.log_value("ret", value, clear_on_reduce=True)
        downstream.merge_and_log_n_dicts([component.reduce()])
    assert downstream.peek("ret") == approx(0.99 * 1.0 + 0.01 * 3.0)


def test_previous_is_the_reduce_before_the_last(lib):
    s = lib.Stats(reduce="sum")
    assert s.peek(previous=True) == 0
    s.push(1)
    s = s.reduce()
    assert s.peek(previous=True) == 0  # only one reduce so far
    s.push(2)
    s = s.reduce()
    assert s.peek(previous=True) == 1
    s.push(3)
    s = s.reduce()
    assert s.peek(previous=True) == 3
    assert s.peek() == 6


def test_similar_to_keeps_settings_and_history(lib):
    s = _filled(lib, [1, 2], reduce="sum", window=4)
    s = s.reduce()
    s.push(5)
    s = s.reduce()  # history: 8, then 3
    twin = lib.Stats.similar_to(s)
    assert twin.peek() == 0
    assert twin.peek(previous=True) == 3
    for v in (1, 2, 3, 4, 5):
        twin.push(v)
    assert twin.peek() == 14  # the window of 4 came along
    seeded = lib.Stats.similar_to(s, init_value=[7, 8])
    assert seeded.peek() == 15


def test_merge_on_time_axis_keeps_the_last_window(lib):
    a = _filled(lib, [1.0, 2.0, 3.0], window=3)
    a.merge_on_time_axis(_filled(lib, [10.0, 20.0], window=3))
    assert a.peek() == approx((3.0 + 10.0 + 20.0) / 3)


# ---- logger rules ------------------------------------------------------------------------


def test_first_log_call_settings_win(lib):
    logger = lib.MetricsLogger()
    logger.log_value("a", 1, reduce="sum")
    logger.log_value("a", 2, reduce="max")
    logger.log_value("a", 3, reduce="mean", window=1)
    assert logger.peek("a") == 6


def test_list_without_window_is_always_cleared(lib):
    logger = lib.MetricsLogger()
    # window=inf with clear_on_reduce=False would be invalid, but reduce=None forces it on.
    logger.log_value("x", 1, reduce=None, window=float("inf"))
    logger.log_value("y", 1, reduce=None, window=2)
    logger.log_value("y", 2)
    logger.log_value("y", 3)
    assert logger.reduce(return_stats_obj=False) == {"x": [1], "y": [2, 3]}
    assert list(logger.peek("x")) == []
    assert list(logger.peek("y")) == [2, 3]  # windowed lists are not cleared


def test_clear_on_reduce_returns_the_result_and_keeps_history(lib):
    logger = lib.MetricsLogger()
    logger.log_value("n", 1, reduce="sum", clear_on_reduce=True)
    logger.log_value("n", 2)
    first = logger.reduce()
    assert first["n"].peek() == 3
    assert logger.peek("n") == 0
    logger.log_value("n", 5)
    second = logger.reduce()
    assert second["n"].peek() == 5
    assert second["n"].peek(previous=True) == 3


def test_reduce_one_key(lib):
    logger = lib.MetricsLogger()
    logger.log_value(("g", "a"), 1, reduce="sum", clear_on_reduce=True)
    logger.log_value(("g", "b"), 2, reduce="sum", clear_on_reduce=True)
    logger.log_value("other", 3, reduce="sum", clear_on_reduce=True)
    assert logger.reduce("g", return_stats_obj=False) == {"a": 1, "b": 2}
    assert logger.reduce(("g", "a"), return_stats_obj=False) == 0
    assert logger.peek("other") == 3  # untouched


def test_logging_a_stats_merges_it_on_the_time_axis(lib):
    logger = lib.MetricsLogger()
    for v in (1.0, 2.0, 3.0):
        logger.log_value("a", v, window=3)
    logger.log_value("a", _filled(lib, [10.0], window=3))
    assert logger.peek("a") == approx(5.0)  # 2, 3, 10
    logger.log_value("b", _filled(lib, [4, 6], reduce="max"))
    assert logger.peek("b") == 6
    logger.log_value("b", 5)
    assert logger.peek("b") == 6  # the logged Stats' settings (max) were adopted


def test_set_value(lib):
    logger = lib.MetricsLogger()
    logger.log_value("a", 1, reduce="sum")
    logger.log_value("a", 2)
    logger.set_value("a", 10)
    assert logger.peek("a") == 10
    logger.log_value("a", 1)
    assert logger.peek("a") == 11  # still a sum
    logger.set_value("b", 3.0, window=2)
    logger.log_value("b", 5.0)
    assert logger.peek("b") == approx(4.0)


def test_peek_results(lib):
    logger = lib.MetricsLogger()
    logger.log_value(("x", "y"), 2, reduce="sum")
    logger.log_value("z", 1.0, window=2)
    results = logger.reduce()
    assert_same(lib.MetricsLogger.peek_results(results), {"x": {"y": 2}, "z": 1.0})


def test_merge_wraps_plain_values_with_the_given_settings(lib):
    main = lib.MetricsLogger()
    main.merge_and_log_n_dicts([{"a": 1}, {"a": 2}, {"b": 5}], reduce="sum")
    assert main.peek("a") == 3
    assert main.peek("b") == 5
    main.merge_and_log_n_dicts([{"a": 4}], reduce="sum")
    assert main.peek("a") == 7


def test_merge_keys_found_in_some_dicts_only(lib):
    r1 = _logged(lib, {"a": [1.0], "only1": [3.0]}, window=2)
    r2 = _logged(lib, {"a": [2.0]}, window=2)
    main = lib.MetricsLogger()
    main.merge_and_log_n_dicts([r1, r2], key=("top", "mid"))
    assert main.peek(("top", "mid", "a")) == approx(1.5)
    assert main.peek(("top", "mid", "only1")) == approx(3.0)


def test_aggregate_is_merge_and_log_n_dicts(lib):
    main = lib.MetricsLogger()
    main.aggregate(
        [_logged(lib, {"s": [1, 2]}, reduce="sum"), _logged(lib, {"s": [4]}, reduce="sum")]
    )
    assert main.peek("s") == 7


def test_lifetime_sum_over_iterations(lib):
    # Component A logs 50+25, then 10; B logs 75, then nothing new. The downstream
    # lifetime sum counts each value once: 150, then 160.
    a, b, main = lib.MetricsLogger(), lib.MetricsLogger(), lib.MetricsLogger()
    a.log_value("n", 50, reduce="sum")
    a.log_value("n", 25)
    b.log_value("n", 75, reduce="sum")
    main.merge_and_log_n_dicts([a.reduce(), b.reduce()])
    assert main.peek("n") == 150
    main.reduce()
    a.log_value("n", 10)
    main.merge_and_log_n_dicts([a.reduce(), b.reduce()])
    assert main.peek("n") == 160


def _logged(lib, values_by_key, **settings):
    component = lib.MetricsLogger()
    for key, values in values_by_key.items():
        for v in values:
            component.log_value(key, v, **settings)
    return component.reduce()
