"""Bad settings, bad values and bad merges fail loudly and change nothing; key handling."""

import pytest

from fusedstats import MetricsLogger, Stats

INF = float("inf")

BAD_SETTINGS = [
    pytest.param({"reduce": "median"}, r"reduce", id="unknown-reduce"),
    pytest.param({"reduce": "MEAN"}, r"reduce", id="reduce-is-case-sensitive"),
    pytest.param(
        {"window": 3, "ema_coeff": 0.1}, r"window.*ema_coeff|ema_coeff.*window", id="both"
    ),
    pytest.param({"reduce": "sum", "ema_coeff": 0.1}, r"ema_coeff", id="ema-with-sum"),
    pytest.param({"reduce": None, "ema_coeff": 0.1}, r"ema_coeff", id="ema-with-list"),
    pytest.param({"reduce": "max", "window": INF}, r"clear_on_reduce", id="inf-window-kept"),
]


@pytest.mark.parametrize(("settings", "reason"), BAD_SETTINGS)
def test_invalid_stats_settings(settings, reason):
    with pytest.raises(ValueError, match=reason):
        Stats(**settings)


@pytest.mark.parametrize(("settings", "reason"), BAD_SETTINGS)
def test_invalid_log_settings_leave_no_key(settings, reason):
    logger = MetricsLogger()
    with pytest.raises(ValueError, match=reason):
        logger.log_value("bad", 1.0, **settings)
    assert "bad" not in logger
    logger.log_value("bad", 1.0, reduce="sum")  # the key is free for a valid first call
    assert logger.peek("bad") == 1.0


def test_list_with_inf_window_is_valid_in_the_logger():
    # reduce=None forces clear_on_reduce, which makes window=inf valid.
    logger = MetricsLogger()
    logger.log_value("items", "any object", reduce=None, window=INF)
    assert logger.peek("items") == ["any object"]


# ---- values ----------------------------------------------------------------------------


def _busy_logger():
    logger = MetricsLogger()
    logger.log_value("loss", 0.5, window=3)
    logger.log_value(("env", "steps"), 10, reduce="sum")
    logger.log_value(("env", "max"), 2.0, reduce="max")
    logger.log_value("items", [1, 2], reduce=None)
    return logger


def _all_peeks(logger):
    return {name: logger.peek(name) for name in ("loss", "env", "items")}


@pytest.mark.parametrize("bad", ["0.5", {"x": 1.0}, None, object(), [1.0, 2.0]])
@pytest.mark.parametrize("key", ["loss", ("env", "steps"), "fresh"])
def test_non_numeric_value_is_a_type_error_naming_the_key(key, bad):
    logger = _busy_logger()
    before = _all_peeks(logger)
    with pytest.raises(TypeError) as caught:
        logger.log_value(key, bad, reduce="sum")
    name = key if isinstance(key, str) else key[-1]
    assert name in str(caught.value)
    assert _all_peeks(logger) == before
    assert ("fresh" in logger) is False
    assert logger.reduce(return_stats_obj=False) == {
        "loss": 0.5,
        "env": {"steps": 10, "max": 2.0},
        "items": [[1, 2]],
    }


@pytest.mark.parametrize("bad", ["1", None, {"a": 1}])
def test_stats_push_rejects_non_numbers(bad):
    s = Stats(reduce="sum")
    s.push(1)
    with pytest.raises(TypeError):
        s.push(bad)
    assert s.peek() == 1


def test_lists_take_any_object():
    logger = MetricsLogger()
    for v in ("a", {"b": 1}, None, 3):
        logger.log_value("things", v, reduce=None)
    assert logger.peek("things") == ["a", {"b": 1}, None, 3]


def test_set_value_with_a_bad_value_changes_nothing():
    logger = _busy_logger()
    with pytest.raises(TypeError, match="loss"):
        logger.set_value("loss", "high")
    assert logger.peek("loss") == 0.5


# ---- merging -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "other",
    [
        {"reduce": "sum", "window": 3},
        {"reduce": "mean", "window": 4},
        {"reduce": "mean", "ema_coeff": 0.1},
    ],
)
def test_merging_stats_with_other_settings(other):
    mine = Stats(reduce="mean", window=3)
    mine.push(1.0)
    theirs = Stats(**other)
    theirs.push(2.0)
    with pytest.raises(ValueError):
        mine.merge_in_parallel(theirs)
    with pytest.raises(ValueError):
        mine.merge_on_time_axis(theirs)
    assert mine.peek() == 1.0


def test_logging_a_stats_with_other_settings_names_the_key():
    logger = MetricsLogger()
    logger.log_value(("a", "b"), 1.0, window=3)
    theirs = Stats(reduce="sum")
    theirs.push(5)
    with pytest.raises(ValueError, match="b"):
        logger.log_value(("a", "b"), theirs)
    assert logger.peek(("a", "b")) == 1.0


def _result(key, value, **settings):
    component = MetricsLogger()
    component.log_value(key, value, **settings)
    return component.reduce()


def test_merge_of_results_with_other_settings_names_the_key():
    results = [_result("lr", 0.1, window=2), _result("lr", 0.2, reduce="max", window=2)]
    with pytest.raises(ValueError, match="lr"):
        MetricsLogger().merge_and_log_n_dicts(results)


def test_merge_into_an_existing_key_with_other_settings_names_the_key():
    downstream = MetricsLogger()
    downstream.log_value(("learner", "lr"), 0.1, reduce="min")
    with pytest.raises(ValueError, match="lr"):
        downstream.merge_and_log_n_dicts([_result("lr", 0.2, window=2)], key="learner")
    assert downstream.peek(("learner", "lr")) == 0.1


# ---- keys ---------------------------------------------------------------------------------


def test_peek_of_a_missing_key():
    logger = _busy_logger()
    with pytest.raises(KeyError):
        logger.peek("nope")
    with pytest.raises(KeyError):
        logger.peek(("env", "nope"))
    with pytest.raises(KeyError):
        logger.peek(("loss", "deeper"))
    assert logger.peek("nope", default=-1) == -1
    assert logger.peek(("env", "nope"), default="d") == "d"
    assert logger.peek("loss", default=-1) == 0.5  # present: default unused


def test_contains_walks_the_nesting():
    logger = _busy_logger()
    assert "loss" in logger
    assert "env" in logger
    assert ("env",) in logger
    assert ("env", "steps") in logger
    assert ("env", "nope") not in logger
    assert ("env", "steps", "deeper") not in logger
    assert "steps" not in logger


def test_delete():
    logger = _busy_logger()
    logger.delete("env", "steps")
    assert ("env", "steps") not in logger
    assert ("env", "max") in logger
    with pytest.raises(KeyError):
        logger.delete("env", "steps")
    logger.delete("env", "steps", key_error=False)
    logger.delete("env")
    assert "env" not in logger
    assert set(logger.reduce(return_stats_obj=False)) == {"loss", "items"}
    logger.log_value(("env", "steps"), 1.5, reduce="max")  # a deleted key starts afresh
    assert logger.peek(("env", "steps")) == 1.5


def test_set_value_replaces_the_values():
    logger = MetricsLogger()
    for v in (1.0, 2.0, 3.0):
        logger.log_value("a", v, window=3)
    logger.set_value("a", 10.0)
    assert logger.peek("a") == 10.0
    logger.log_value("a", 20.0)
    assert logger.peek("a") == 15.0


def test_reset():
    logger = _busy_logger()
    logger.reset()
    assert logger.reduce() == {}
    assert "loss" not in logger
    logger.log_value("loss", 7, reduce="sum")  # new settings take after a reset
    assert logger.peek("loss") == 7


def test_reduce_results_after_keys_come_and_go():
    """A flat logger's result is built in one step from its names: deleting the last
    nested key, adding keys and merging must keep names and values paired."""
    logger = MetricsLogger()
    logger.log_value(("env", "steps"), 1, reduce="sum")
    for name, v in (("a", 1.0), ("b", 2.0), ("c", 3.0)):
        logger.log_value(name, v, window=2)
    logger.delete("env")
    logger.delete("b")
    logger.log_value("d", 4.0, window=2)
    logger.merge_and_log_n_dicts([{"e": 5.0}, {"e": 7.0}], window=2)
    assert logger.reduce(return_stats_obj=False) == {"a": 1.0, "c": 3.0, "d": 4.0, "e": 6.0}
    logger.log_value(("env", "x"), 1.0, window=2)
    assert logger.reduce(return_stats_obj=False) == {
        "a": 1.0,
        "c": 3.0,
        "d": 4.0,
        "e": 6.0,
        "env": {"x": 1.0},
    }
    assert list(logger.reduce()) == ["a", "c", "d", "e", "env"]
