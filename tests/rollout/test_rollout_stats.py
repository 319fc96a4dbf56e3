"""RolloutStats by hand-made examples: the contract the reporter codes against, edge cases
of the input, tensors, NaN/inf, accuracy of merged moments across calls."""

from __future__ import annotations

import copy
import math
import pickle
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import torch
from tests.rollout.reference import check

from fusedstats.rollout import RolloutStats, warmup


def test_contract_on_a_small_example() -> None:
    stats = RolloutStats()
    stats.add(
        [
            {"reward": 1.0, "game": {"hearts": np.array([1, 2, 3]), "name": "maze"}},
            {"reward": 3, "game": {"hearts": np.array([4.0]), "name": "maze"}},
        ]
    )
    assert stats.keys() == ["reward", "game/hearts"]
    assert len(stats) == 2 and "reward" in stats and "game/name" not in stats
    assert 3 not in stats  # not a str: never a key
    assert stats.means() == {"reward": 2.0, "game/hearts": 2.5}
    hearts = stats.get("game/hearts")
    assert hearts.dtype == np.float64 and hearts.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert np.mean(stats.get("reward")) == 2.0
    assert stats.get("game/name") is None and stats.get("nope", "d") == "d"
    assert stats.summary()["reward"] == {
        "count": 2.0, "sum": 4.0, "mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0,
    }  # fmt: skip
    assert stats.skipped == {"game/name": 1}
    assert stats.debug_summary() == "game/name: skipped in 1 add() call (non-numeric leaves)"
    assert all(type(v) is float for s in stats.summary().values() for v in s.values())
    assert all(type(v) is float for v in stats.means().values())


@pytest.mark.parametrize("infos", [[], [{}], [{}, {}], [None, {}], [{"a": {}}], [{"a": []}]])
def test_nothing_to_count(infos: list) -> None:
    stats = check(infos)
    assert len(stats) == 0 and stats.keys() == [] and stats.means() == {}
    assert stats.summary() == {} and stats.skipped == {} and stats.debug_summary() == ""


def test_entries_that_are_not_dicts_are_ignored() -> None:
    stats = RolloutStats()
    stats.add([None, {"x": 1.0}, 0, "info", {"x": 3.0}])
    assert stats.means() == {"x": 2.0} and stats.skipped == {}


def test_skipped_counted_once_per_key_per_call() -> None:
    stats = RolloutStats()
    bad = [{"s": "a", "n": None, "x": 1.0}, {"s": "b", "n": None, "x": 2.0}]
    stats.add(bad)
    stats.add(bad)
    stats.add([{"s": 1.0}])  # now a number: counted, not skipped
    assert stats.skipped == {"s": 2, "n": 2}
    assert stats.means() == {"x": 1.5, "s": 1.0}
    assert stats.debug_summary().splitlines() == [
        "n: skipped in 2 add() calls (non-numeric leaves)",
        "s: skipped in 2 add() calls (non-numeric leaves)",
    ]


def test_nan_makes_the_key_nan_like_numpy() -> None:
    stats = check([{"x": 1.0, "y": 2.0}, {"x": float("nan"), "y": 4.0}], [{"x": 5.0}])
    s = stats.summary()["x"]
    assert s["count"] == 3.0
    assert all(math.isnan(s[k]) for k in ("sum", "mean", "std", "min", "max"))
    assert math.isnan(stats.means()["x"]) and stats.means()["y"] == 3.0
    # NaN also sticks when it arrives in a later call
    stats.add([{"y": np.array([np.nan, 1.0])}])
    assert math.isnan(stats.summary()["y"]["min"]) and math.isnan(stats.summary()["y"]["max"])


def test_infinities_like_numpy() -> None:
    check([{"x": math.inf}, {"x": 1.0}], [{"y": np.array([math.inf, -math.inf])}])


def test_mixed_kinds_in_one_column_keep_info_order() -> None:
    infos = [
        {"x": 1.0},
        {"x": np.array([2.0, 3.0])},
        {"x": [4, 5]},
        {"x": "skip"},
        {"x": torch.tensor([6.0, 7.0])},
        {"x": 8},
        {"x": {"deeper": 9.0}},
        {"x": torch.tensor(10.0)},
    ]
    stats = check(infos)
    assert stats.get("x").tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 10]
    assert stats.get("x/deeper").tolist() == [9.0]
    assert stats.skipped == {"x": 1}


def test_dicts_of_different_keys() -> None:
    check(
        [
            {"a": 1.0, "b": {"c": 2.0}},
            {"b": {"c": 3.0, "d": np.ones(2)}, "e": True},
            {"a": 4, "b": 5.0},
            {1: 6.0, "a": None},
        ]
    )


def test_bool_counts_as_zero_or_one() -> None:
    stats = check([{"done": True}, {"done": False}, {"done": np.bool_(True)}])
    assert stats.means()["done"] == pytest.approx(2 / 3)


def test_numpy_scalars_and_arrays_of_every_numeric_dtype() -> None:
    dtypes = [np.float16, np.float32, np.float64, np.int8, np.int32, np.uint64, np.bool_]
    infos = [{str(np.dtype(t)): np.arange(3).astype(t)} for t in dtypes]
    infos += [{f"scalar_{np.dtype(t)}": t(1)} for t in dtypes]
    infos += [{"big_endian": np.arange(3, dtype=">f8")}, {"fortran": np.ones((2, 3), order="F")}]
    check(infos, infos)


def test_same_shape_batch_with_one_bad_leaf() -> None:
    good = [{"a": float(i), "b": i, "c": np.full(3, i, dtype=np.float32)} for i in range(50)]
    odd = ("x", None, np.array(["s"]), [[1], [2, 3]], 10**400, 1j, np.float32(2), Fraction(1, 3))
    for bad in (*odd, Decimal(1), np.complex64(1), np.array([1.0]), torch.tensor(2.0)):
        infos = [dict(d) for d in good]
        infos[17] = {"a": bad, "b": bad, "c": bad}
        check(infos)


def test_ints_beyond_int64_are_numbers_until_float_overflows() -> None:
    stats = check([{"x": 2**70}, {"x": 1}], [{"y": 10**400}, {"y": 1.0}])
    assert stats.skipped == {"y": 1}


def test_tensors() -> None:
    infos = [
        {
            "one": torch.tensor([float(i)]),
            "zero_d": torch.tensor(float(i)),
            "agents": torch.arange(4, dtype=torch.float32) * i,
            "ragged": torch.ones(i % 3),
            "bf16": torch.ones(2, dtype=torch.bfloat16),
            "flags": torch.tensor([True, False]),
            "grad": torch.ones(2, requires_grad=True) * 2,
            "grid": torch.ones(2, 3),
            "cplx": torch.ones(2, dtype=torch.complex64),
        }
        for i in range(5)
    ]
    stats = check(infos)
    assert stats.summary()["one"]["count"] == 5.0 and stats.get("one").tolist() == [0, 1, 2, 3, 4]
    assert stats.means()["grad"] == 2.0 and stats.skipped == {"cplx": 1}


def test_tensor_columns_that_do_not_stack() -> None:
    check(
        [
            {"x": torch.ones(2), "y": torch.tensor(1.0)},
            {"x": torch.ones(2, 2), "y": torch.ones(3)},
            {"x": torch.tensor(5.0), "y": torch.ones(1, dtype=torch.float64)},
        ]
    )


def test_running_moments_stay_accurate_across_calls() -> None:
    """Chan's merge of per-call moments: a large mean and a small spread over 50 calls."""
    rng = np.random.default_rng(0)
    stats = RolloutStats()
    everything = []
    for _ in range(50):
        x = 1e6 + rng.normal(size=257)
        everything.append(x)
        stats.add([{"x": v} for v in x.tolist()])
    allx = np.concatenate(everything)
    s = stats.summary()["x"]
    assert s["std"] == pytest.approx(np.std(allx), rel=1e-9)
    assert s["mean"] == pytest.approx(np.mean(allx), rel=1e-14)
    assert (s["min"], s["max"]) == (allx.min(), allx.max())
    assert np.array_equal(stats.get("x"), allx)


def test_many_keys_grow_the_state() -> None:
    infos = [{f"k{j}": {f"sub{i}": float(i * j) for i in range(10)} for j in range(30)}]
    stats = check(infos, infos)
    assert len(stats) == 300


def test_get_after_more_adds_sees_everything() -> None:
    stats = RolloutStats()
    stats.add([{"x": 1.0}])
    assert stats.get("x").tolist() == [1.0]
    stats.add([{"x": 2.0}, {"x": np.array([3.0, 4.0])}])
    assert stats.get("x").tolist() == [1.0, 2.0, 3.0, 4.0]
    assert stats.get("x").tolist() == [1.0, 2.0, 3.0, 4.0]
    stats.add([{"y": 1.0, "z": 2.0}] * 3)  # a block: strided segments
    for key in ("x", "y", "z"):
        arr = stats.get(key)
        assert not arr.flags.writeable  # shares the stored values: read-only
        with pytest.raises(ValueError, match="read-only"):
            arr[0] = 0.0
    assert stats.get("z").tolist() == [2.0, 2.0, 2.0]


def test_clear() -> None:
    stats = RolloutStats()
    stats.add([{"x": 1.0, "s": "a"}])
    stats.clear()
    assert len(stats) == 0 and stats.skipped == {} and stats.get("x") is None
    assert stats.summary() == {} and "x" not in stats
    stats.add([{"y": 2.0}, {"x": 4.0}])
    assert stats.keys() == ["x", "y"]  # ids survive clear(): first-appearance order
    assert stats.summary()["x"] == {
        "count": 1.0, "sum": 4.0, "mean": 4.0, "std": 0.0, "min": 4.0, "max": 4.0,
    }  # fmt: skip


def test_warmup_is_idempotent() -> None:
    warmup()
    warmup()
    RolloutStats().add([{"x": 1.0}])


def test_tensors_that_cannot_reach_the_host_are_skipped() -> None:
    """A meta tensor has no data: skipped and counted, the call's other values kept."""
    stats = RolloutStats()
    stats.add(
        [
            {"ghost": torch.ones(3, device="meta"), "x": torch.tensor([1.0, 2.0])},
            {"ghost": 4.0, "x": torch.tensor(3.0), "y": torch.ones(2, device="meta")},
        ]
    )
    assert stats.get("x").tolist() == [1.0, 2.0, 3.0]
    assert stats.get("ghost").tolist() == [4.0]
    assert "y" not in stats and stats.skipped == {"ghost": 1, "y": 1}


def test_a_slash_in_a_key_meets_the_nested_path_of_the_same_name() -> None:
    stats = check([{"a/b": 1.0, "a": {"b": 2.0}}, {"a/b": 3.0, "a": {"b": 4.0}}])
    assert stats.keys() == ["a/b"]
    assert stats.summary()["a/b"]["count"] == 4.0 and stats.means()["a/b"] == 2.5
    assert stats.get("a/b").tolist() == [1.0, 2.0, 3.0, 4.0]  # read order, as the reference


def test_pickles_and_copies() -> None:
    """Reporter state may be checkpointed or deep-copied: the stats go along."""
    stats = RolloutStats()
    stats.add([{"x": 1.0, "a": {"b": np.arange(3.0)}, "s": "skip"}, {"x": 2.0, "a": {"b": [4]}}])
    for twin in (pickle.loads(pickle.dumps(stats)), copy.deepcopy(stats)):
        assert twin.summary() == stats.summary() and twin.skipped == stats.skipped
        assert twin.get("a/b").tolist() == [0.0, 1.0, 2.0, 4.0]
        twin.add([{"x": 3.0}])
        assert twin.means()["x"] == 2.0 and stats.means()["x"] == 1.5
