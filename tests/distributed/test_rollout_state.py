"""RolloutStats.export_state / merge_state: merging the statistics of several processes
gives the statistics of all their values together."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fusedstats.rollout import RolloutStats

_value = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.integers(-1000, 1000),
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=4),
)
_info = st.dictionaries(st.sampled_from(["a", "b", "game/c"]), _value, max_size=3)
_parts = st.lists(st.lists(_info, max_size=4), min_size=1, max_size=4)


def _close(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert list(got) == list(want)
    for key, stats in want.items():
        for name, value in stats.items():
            assert math.isclose(got[key][name], value, rel_tol=1e-9, abs_tol=1e-6), (key, name)


@settings(max_examples=60, deadline=None)
@given(_parts)
def test_merged_states_equal_one_stats_fed_everything(parts: list[list[dict[str, Any]]]) -> None:
    single = RolloutStats()
    merged = RolloutStats()
    for infos in parts:
        single.add(infos)
        one = RolloutStats()
        one.add(infos)
        merged.merge_state(json.loads(json.dumps(one.export_state())))  # plain data
    _close(merged.summary(), single.summary())


def test_nan_sticks_and_merged_keys_have_no_values() -> None:
    a, b = RolloutStats(), RolloutStats()
    a.add([{"x": 1.0}])
    b.add([{"x": float("nan")}, {"y": 2.0}, {"s": "text"}])
    a.merge_state(b.export_state())
    summary = a.summary()
    assert summary["x"]["count"] == 2 and all(
        math.isnan(summary["x"][k]) for k in ("mean", "min", "max")
    )
    assert a.get("y") is None and a.get("y", []) == [] and "y" in a
    np.testing.assert_array_equal(a.get("x"), [1.0])  # only the values added here
    assert a.skipped == {"s": 1}
