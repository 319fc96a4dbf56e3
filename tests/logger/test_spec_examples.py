"""The worked examples of docs/logger.md, run on fusedstats and on the model.

The page runs its own examples on fusedstats (tests/test_docs.py). Here the `lib` fixture
(tests/logger/conftest.py) runs each of them twice: once on `fusedstats`, once on
`tests/logger/spec_model.py`, so the model the property tests rely on is held to the same
numbers. The comments above each group name the page's section.
"""

from pytest import approx
from tests.logger.compare import assert_same

# ---- "Reductions" ----------------------------------------------------------------------


def test_default_mean_is_an_ema_of_001(lib):
    s = lib.Stats()
    s.push(1.0)
    s.push(2.0)
    assert s.peek() == approx(0.99 * 1.0 + 0.01 * 2.0)  # 1.01


def test_window_mean_uses_the_last_values(lib):
    s = lib.Stats(window=2)
    for v in (1.0, 2.0, 3.0):
        s.push(v)
    assert s.peek() == approx(2.5)


def test_sum_of_ints_stays_an_int(lib):
    s = lib.Stats(reduce="sum")
    for v, total in ((1, 1), (2, 3), (3, 6)):
        s.push(v)
        assert s.peek() == total and type(s.peek()) is int
    s = s.reduce()
    assert s.peek() == 6 and type(s.peek()) is int


def test_max_over_a_window_of_two(lib):
    s = lib.Stats(reduce="max", window=2)
    for v, peeked in ((2, 2), (3, 3), (1, 3), (-1, 1)):
        s.push(v)
        assert s.peek() == peeked and type(s.peek()) is int
    s = s.reduce()
    assert s.peek() == 1 and type(s.peek()) is int


def test_no_reduce_keeps_the_window_as_a_list(lib):
    s = lib.Stats(reduce=None, window=3)
    for v in (-5, -4, -3, -2):
        s.push(v)
    assert list(s.peek()) == [-4, -3, -2]
    s = s.reduce()
    assert list(s.peek()) == [-4, -3, -2]


# The timing example (two `with stats:` blocks add up) is in test_extras.py: the model
# does not time.


# ---- "Merging": Stats.merge_in_parallel -------------------------------------------------


def _filled(lib, values, **settings):
    s = lib.Stats(**settings)
    for v in values:
        s.push(v)
    return s


def _merged_both_ways(lib, lists, **settings):
    """The parallel merge of `lists`, done as `first.merge_in_parallel(*rest)` and as
    `empty.merge_in_parallel(*all)`; the merge rule gives both the same values."""
    first, *rest = (_filled(lib, v, **settings) for v in lists)
    first.merge_in_parallel(*rest)
    empty = lib.Stats(**settings)
    empty.merge_in_parallel(*(_filled(lib, v, **settings) for v in lists))
    return first, empty


def test_parallel_mean_window_3(lib):
    for s in _merged_both_ways(lib, [[0, 1, 2, 3], [4000, 4, 5, 6]], reduce="mean", window=3):
        # Values [3.5, 3.5, 4.5, 4.5]; a window of 3 may keep only the last three.
        assert list(s.values)[-3:] == approx([3.5, 4.5, 4.5])
        assert s.peek() == approx((3.5 + 4.5 + 4.5) / 3)
        s.push(10.0)  # the merged values go on as the window: 4.5, 4.5, 10
        assert s.peek() == approx(19.0 / 3)


def test_parallel_max_window_3(lib):
    for s in _merged_both_ways(lib, [[1, 2, 3], [4, 5, 6]], reduce="max", window=3):
        assert list(s.values)[-3:] == [5, 6, 6]
        assert s.peek() == 6 and type(s.peek()) is int
        s.push(0)
        s.push(0)
        assert s.peek() == 6  # window 6, 0, 0
        s.push(0)
        assert s.peek() == 0


def test_parallel_min_window_4(lib):
    for s in _merged_both_ways(lib, [[1, 2, 1, 4], [5, 0.5, 7, 8]], reduce="min", window=4):
        assert list(s.values)[-4:] == [1, 1, 4, 4]
        assert s.peek() == 1
        s.push(3)
        s.push(3)
        assert s.peek() == 3  # window 4, 4, 3, 3


def test_parallel_sum_without_window(lib):
    for s in _merged_both_ways(lib, [[1, 2, 0, 3], [4, 5, 6]], reduce="sum"):
        # Values [1, 4, 2, 5, 0, 6, 3]; a window-less sum may hold them folded.
        assert s.peek() == 21 and type(s.peek()) is int
        s.push(1)
        assert s.peek() == 22


def test_parallel_list_infinite_window(lib):
    settings = {"reduce": None, "window": float("inf"), "clear_on_reduce": True}
    for s in _merged_both_ways(lib, [[1], [2]], **settings):
        assert list(s.peek()) == [2, 1]


# ---- "Reductions", "reduce() and previous results", "The other calls" (logger) -----------


def test_logger_default_ema(lib):
    logger = lib.MetricsLogger()
    logger.log_value("a", 2.0)
    logger.log_value("a", 3.0)
    assert logger.reduce(return_stats_obj=False) == {"a": approx(2.01)}


def test_logger_window_2(lib):
    logger = lib.MetricsLogger()
    for v in (2.0, 3.0, 4.0):
        logger.log_value("a", v, window=2)
    assert logger.reduce(return_stats_obj=False) == {"a": approx(3.5)}


def test_nested_key_peeks_as_a_subtree(lib):
    logger = lib.MetricsLogger()
    key = ("some", "nested", "key", "sequence")
    logger.log_value(key, 2.0)
    logger.log_value(key, 3.0)
    assert logger.peek(key) == approx(2.01)
    assert logger.peek(("some", "nested")) == {"key": {"sequence": approx(2.01)}}
    logger.log_value(key, 4.0)
    assert logger.peek(key) == approx(0.99 * 2.01 + 0.01 * 4.0)  # 2.0299


def test_loss_window_10(lib):
    logger = lib.MetricsLogger()
    logger.log_value("loss", 0.01, window=10)
    logger.log_value("loss", 0.02)
    logger.log_value("loss", 0.03)
    assert logger.peek("loss") == approx(0.02)
    for _ in range(10):
        logger.log_value("loss", 0.05)
    assert logger.peek("loss") == approx(0.05)


def test_list_items_are_cleared_by_reduce(lib):
    logger = lib.MetricsLogger()
    for v in (5, 6, 7):
        logger.log_value("items", v, reduce=None)
    assert list(logger.peek("items")) == [5, 6, 7]
    results = logger.reduce(return_stats_obj=False)
    assert list(results["items"]) == [5, 6, 7]
    assert list(logger.peek("items")) == []


def test_log_dict_window_10(lib):
    logger = lib.MetricsLogger()
    logger.log_dict({"a": 0.1, "b": -0.1}, window=10)
    logger.log_dict({"b": -0.2})
    logger.log_dict({"a": 0.2, "c": {"d": 5.0}})
    assert logger.peek("a") == approx(0.15)
    assert logger.peek("b") == approx(-0.15)
    assert logger.peek(("c", "d")) == approx(5.0)
    expected = {"a": 0.15, "b": -0.15, "c": {"d": 5.0}}
    assert_same(logger.reduce(return_stats_obj=False), expected)


# ---- "merge_and_log_n_dicts" ------------------------------------------------------------


def test_two_components_merge_downstream(lib):
    results = []
    for values in ([1.0, 2.0], [3.0, 4.0]):
        component = lib.MetricsLogger()
        for v in values:
            component.log_value("a", v, window=10)
        results.append(component.reduce())
    downstream = lib.MetricsLogger()
    downstream.merge_and_log_n_dicts(results)
    assert downstream.reduce(return_stats_obj=False) == {"a": approx(2.5)}


def _reduced_component(lib, key, values, **settings):
    component = lib.MetricsLogger()
    for v in values:
        component.log_value(key, v, **settings)
    return component.reduce()


def test_merge_learner_losses_under_a_key(lib):
    results = [_reduced_component(lib, "loss", [v], window=1) for v in (0.1, 0.2)]
    main = lib.MetricsLogger()
    main.merge_and_log_n_dicts(results, key="learners")
    assert main.peek(("learners", "loss")) == approx(0.15)


def test_merge_env_runner_returns_window_3(lib):
    results = [
        _reduced_component(lib, "mean_ret", [100.0, 200.0, 300.0, 400.0], window=3),
        _reduced_component(lib, "mean_ret", [150.0, 250.0, 350.0, 450.0], window=3),
    ]
    main = lib.MetricsLogger()
    main.merge_and_log_n_dicts(results, key="env_runners")
    assert main.peek(("env_runners", "mean_ret")) == approx((325 + 425 + 425) / 3)


def test_merge_lifetime_sums(lib):
    results = [
        _reduced_component(lib, "some_stat", [50, 25], reduce="sum"),
        _reduced_component(lib, "some_stat", [75], reduce="sum"),
    ]
    main = lib.MetricsLogger()
    main.merge_and_log_n_dicts(results)
    assert main.peek("some_stat") == 150
    assert type(main.peek("some_stat")) is int


def test_merge_windowed_sums(lib):
    results = [
        _reduced_component(lib, "some_stat", [50, 25, 10, 5], reduce="sum", window=3),
        _reduced_component(lib, "some_stat", [75, 100], reduce="sum", window=3),
    ]
    main = lib.MetricsLogger()
    main.merge_and_log_n_dicts(results)
    assert main.peek("some_stat") == 115  # window of [75, 10, 100, 5]


def test_lifetime_sums_over_two_rounds_leave_the_inputs_alone(lib):
    w1, w2, driver = lib.MetricsLogger(), lib.MetricsLogger(), lib.MetricsLogger()
    w1.log_value("steps", 50, reduce="sum")
    w1.log_value("steps", 25, reduce="sum")
    w2.log_value("steps", 75, reduce="sum")
    driver.merge_and_log_n_dicts([w1.reduce(), w2.reduce()])
    assert driver.peek("steps") == 150
    w1.log_value("steps", 10)
    r1, r2 = w1.reduce(), w2.reduce()
    assert (r1["steps"].peek(), r1["steps"].peek(previous=True)) == (85, 75)
    driver.merge_and_log_n_dicts([r1, r2])
    assert driver.peek("steps") == 160
    for _ in range(2):  # the same results, merged again elsewhere: only what is new
        other = lib.MetricsLogger()
        other.merge_and_log_n_dicts([r1, r2])
        assert other.peek("steps") == 10 and type(other.peek("steps")) is int
    assert list(r1["steps"].values) == [85] and w1.peek("steps") == 85


# ---- "The other calls" -------------------------------------------------------------------


def test_reset_forgets_everything(lib):
    logger = lib.MetricsLogger()
    logger.log_value("a", 1.0)
    logger.log_value(("b", "c"), 2, reduce="sum")
    logger.reset()
    assert logger.reduce() == {}
    assert "a" not in logger
