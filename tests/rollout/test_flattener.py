"""The native info flattener (csrc/cpython/info_flattener.cpp), through RolloutStats:
every kind of leaf, key and mapping against the plain reference, its buffers, its key
table, and hostile inputs (huge, deep, cyclic, changed while read, re-entrant,
concurrent). The scenarios that could hang or crash run in a child process with a
deadline (tests/rollout/hostile.py)."""

from __future__ import annotations

import collections
import decimal
import enum
import fractions
import json
import subprocess
import sys
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tests.rollout import hostile
from tests.rollout.reference import check

from fusedstats.rollout import RolloutStats

ROOT = Path(__file__).resolve().parents[2]


class Color(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 3


class SubArray(np.ndarray):
    pass


LEAVES: dict[str, Any] = {
    # Python numbers, at the edges of float and int
    "float": 1.5,
    "neg_zero": -0.0,
    "nan": float("nan"),
    "inf": float("inf"),
    "int": 7,
    "int_2_53_plus_1": 2**53 + 1,
    "int64_max": 2**63 - 1,
    "int_2_64": 2**64,
    "int_2_70": -(2**70),
    "int_too_big_for_float": 10**400,  # skipped
    "true": True,
    "false": False,
    "fraction": fractions.Fraction(1, 3),
    "int_enum": Level.HIGH,
    "float_subclass": type("F", (float,), {})(2.5),
    # numpy scalars
    **{
        f"np_{t.__name__}": t(3)
        for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64)
    },
    "np_uint64_max": np.uint64(2**64 - 1),
    "np_float16": np.float16(0.1),
    "np_float32": np.float32(0.1),
    "np_float64": np.float64(0.1),
    "np_longdouble": np.longdouble(0.1),
    "np_bool": np.bool_(True),
    "np_timedelta": np.timedelta64(5, "s"),
    # not numbers: skipped
    "none": None,
    "str": "1.5",
    "bytes": b"1",
    "bytearray": bytearray(b"12"),
    "decimal": decimal.Decimal("1.5"),
    "complex": 1 + 2j,
    "np_complex": np.complex64(1),
    "np_str": np.str_("x"),
    "np_datetime": np.datetime64("2026-01-01"),
    "object": object(),
    "set": {1.0, 2.0},
    # numpy arrays of every layout and dtype
    **{
        f"array_{np.dtype(t).name}": np.arange(4).astype(t)
        for t in (np.int8, np.uint16, np.int32, np.uint64, np.float16, np.float32, np.bool_)
    },
    "array_longdouble": np.linspace(0, 1, 3, dtype=np.longdouble),
    "array_big_endian_int": np.arange(3, dtype=">i4"),
    "array_big_endian_float": np.arange(3, dtype=">f8"),
    "array_0d": np.array(4.0),
    "array_empty": np.zeros(0),
    "array_3d": np.arange(24.0).reshape(2, 3, 4),
    "array_fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    "array_transposed": np.arange(12).reshape(3, 4).T,
    "array_reversed": np.arange(5.0)[::-1],
    "array_strided_3d": np.arange(60.0).reshape(3, 4, 5)[::2, 1:, ::3],
    "array_subclass": np.arange(3.0).view(SubArray),
    "array_unaligned": np.frombuffer(b"\x00" + np.arange(3.0).tobytes(), np.float64, 3, 1),
    "array_readonly": np.frombuffer(np.arange(3.0).tobytes()),
    "array_complex": np.ones(2, dtype=np.complex128),  # skipped
    "array_str": np.array(["a"]),  # skipped
    "array_object": np.array([1.0, None]),  # skipped
    "array_datetime": np.array(["2026-01-01"], dtype="datetime64[D]"),  # skipped
    "array_structured": np.zeros(2, dtype=[("a", "f8")]),  # skipped
    # lists and tuples
    "list_empty": [],
    "list_floats": [1.0, 2.5],
    "list_ints": [1, -2, 2**62],
    "list_bools": [True, False],
    "list_mixed": [True, 2, 3.5],
    "list_int64_edges": [-(2**63), 2**63 - 1],
    "list_big_ints": [2**63, 2**64],  # numpy decides (object: skipped)
    "list_numpy_scalars": [np.float32(1.5), np.int64(2)],
    "list_nested": [[1.0, 2.0], [3.0, 4.0]],
    "list_ragged": [[1.0], [2.0, 3.0]],  # skipped
    "list_with_str": [1.0, "a"],  # skipped
    "list_of_empty": [[]],
    "tuple": (1.0, 2),
    "list_subclass": type("L", (list,), {})([1.0, 2.0]),
    # torch tensors
    **{
        f"tensor_{str(t).split('.')[-1]}": torch.arange(3).to(t)
        for t in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8)
    },
    "tensor_uint8": torch.tensor([0, 255], dtype=torch.uint8),
    "tensor_int64_big": torch.tensor([2**62 + 1]),
    "tensor_bool": torch.tensor([True, False]),
    "tensor_0d": torch.tensor(2.5),
    "tensor_2d_transposed": torch.arange(6.0).reshape(2, 3).T,
    "tensor_empty": torch.zeros(0),
    "tensor_requires_grad": torch.ones(2, requires_grad=True) * 3,
    "tensor_complex": torch.ones(2, dtype=torch.complex64),  # skipped
    "tensor_sparse": torch.eye(2).to_sparse(),  # skipped
    "tensor_meta": torch.ones(2, device="meta"),  # skipped: cannot reach the host
}


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_every_leaf_kind_as_the_reference_reads_it(name: str) -> None:
    """Alone, in a column of its own kind, and in a column with floats before and after
    (the walk's chunks split around tensors and odd leaves)."""
    leaf = LEAVES[name]
    check(
        [{"x": leaf}], [{"x": leaf}, {"x": leaf}], [{"x": 1.0}, {"x": leaf}, {"x": 2.0, "y": leaf}]
    )


def test_all_leaf_kinds_in_one_call_keep_read_order() -> None:
    infos = [{"x": leaf, "n": {"x": leaf}} for leaf in LEAVES.values()]
    stats = check(infos, infos[::-1])
    assert stats.skipped["x"] == 2


@pytest.mark.parametrize(
    "mapping",
    [
        collections.OrderedDict(a=1.0, b={"c": 2.0}),
        collections.defaultdict(list, a=1.0),
        collections.Counter(a=3, b=4),
        collections.UserDict(a=1.0),
        types.MappingProxyType({"a": 1.0, "b": types.MappingProxyType({"c": 2.0})}),
        hostile.Proxy({"a": 1.0, "b": [1, 2]}),
    ],
    ids=["OrderedDict", "defaultdict", "Counter", "UserDict", "MappingProxy", "Mapping"],
)
def test_mappings_that_are_not_plain_dicts(mapping: Any) -> None:
    check([mapping, {"n": mapping}], [mapping])


def test_keys_that_are_not_str_count_under_their_str() -> None:
    class OddKey:
        def __str__(self) -> str:
            return "odd-str"

        def __format__(self, spec: str) -> str:
            return "odd-fmt"

    class Name(str):
        def __str__(self) -> str:
            return "name-str"

    odd = OddKey()
    keys = [0, 7, 2.5, (1, 2), None, True, b"k", frozenset({1}), Color.RED, Level.HIGH, odd]
    keys += [Name("n"), np.int64(3)]
    info: dict[Any, Any] = {k: 1.0 for k in keys}
    info["0"] = 2.0  # meets the int 0
    info["nest"] = {k: 3.0 for k in keys}
    stats = check([info, info])
    assert {"odd-str", "nest/odd-fmt"} <= set(stats.keys())
    assert stats.get("0").tolist() == [1.0, 2.0, 1.0, 2.0]


def test_keys_that_differ_in_one_character_stay_apart() -> None:
    """A key is matched against the one seen at its position last time (hash, then the
    characters): keys of every length that differ in one place, ASCII or not, and
    built anew for each info (not the same objects), must not be taken for each other."""
    infos = []
    for n in range(1, 21):
        for p in {0, n // 2, n - 1}:
            for c in ("a", "b", "é", "日"):
                key = "".join(["k"] * p + [c] + ["k"] * (n - p - 1))
                infos.append({"".join(list(key)): float(n), "n": {"".join(list(key)): 1.0}})
    stats = check(infos, infos[::-1])
    keys = len({next(iter(i)) for i in infos})
    assert len(stats) == 2 * keys
    # equal keys built anew were recognised (else each would add a path node)
    assert stats._flattener.node_count == 1 + keys + 1 + keys


def test_a_refused_info_leaves_nothing_behind() -> None:
    """Its values, skips, tensors, and the paths and keys it created are all undone."""
    loop: dict[str, Any] = {"fresh": 1.0, "t": torch.ones(2), "sub": {"a": np.ones(2), "s": "x"}}
    loop["sub"]["up"] = loop
    stats = RolloutStats()
    stats.add([{"kept": 1.0, "t": torch.ones(1)}, loop, {"kept": 2.0}])
    assert stats._flattener.names == ["kept", "t"] and stats._flattener.node_count == 3
    assert stats.means() == {"kept": 1.5, "t": 1.0} and stats.skipped == {}
    assert stats.rejected == {"cycle": 1} and "at 'sub/up'" in stats.last_rejection


def test_a_key_whose_str_fails_refuses_its_info() -> None:
    class Bad:
        def __str__(self) -> str:
            raise ValueError("no name")

    stats = RolloutStats()
    stats.add([{"a": 1.0, Bad(): 2.0}, {"a": 3.0}])
    assert stats.means() == {"a": 3.0} and stats.rejected == {"bad key": 1}
    assert "ValueError: no name" in stats.last_rejection


def test_a_mapping_whose_items_fail_refuses_its_info() -> None:
    class Broken(hostile.Proxy):
        def __iter__(self) -> Any:
            raise RuntimeError("broken iterator")

    stats = RolloutStats()
    stats.add([{"a": 1.0, "m": Broken({"x": 1.0})}, {"a": 3.0}, Broken({"y": 1.0})])
    assert stats.means() == {"a": 3.0} and stats.rejected == {"bad mapping": 2}


def test_a_leaf_that_breaks_float_or_numpy_is_skipped() -> None:
    class BadNumber(fractions.Fraction):
        def __float__(self) -> float:
            raise ArithmeticError("no float")

    class BadArray:
        def __array__(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("no array")

        def __len__(self) -> int:
            raise RuntimeError("no len")

    stats = RolloutStats()
    stats.add([{"n": BadNumber(1, 3), "a": [BadArray()], "x": 1.0}, {"n": 2.0}])
    assert stats.means() == {"x": 1.0, "n": 2.0} and stats.skipped == {"n": 1, "a": 1}


def test_keyboard_interrupt_in_a_leaf_propagates_and_leaves_the_stats_usable() -> None:
    class Interrupting(float):
        def __float__(self) -> float:
            raise KeyboardInterrupt

    stats = RolloutStats()
    stats.add([{"x": 1.0}])
    with pytest.raises(KeyboardInterrupt):
        stats.add([{"x": 2.0}, {"x": Interrupting(0.0)}, {"x": 3.0}])
    stats.add([{"x": 5.0, "y": np.ones(2)}])
    assert stats.get("x").tolist() == [1.0, 5.0] and stats.means() == {"x": 3.0, "y": 1.0}


def test_add_from_inside_add_is_refused_and_the_outer_call_completes() -> None:
    stats = RolloutStats()

    class Reentrant(float):
        def __float__(self) -> float:
            stats.add([{"inner": 1.0}])
            return 4.0

    stats.add([{"x": 1.0}, {"x": Reentrant(0.0)}, {"x": 7.0}])
    assert stats.get("x").tolist() == [1.0, 4.0, 7.0]
    assert "inner" not in stats and stats.rejected == {"re-entrant call": 1}


def test_arguments_that_are_not_infos() -> None:
    def failing() -> Any:
        yield {"x": 1.0}
        raise OSError("env died")

    stats = RolloutStats()
    for bad in ("abc", b"abc", 3, None, failing()):
        stats.add(bad)  # type: ignore[arg-type]
    stats.add({"x": 2.0})  # one info dict: one info
    stats.add({"x": 4.0} for _ in range(2))
    stats.add(np.array([{"x": 6.0}, None], dtype=object))
    assert stats.get("x").tolist() == [2.0, 4.0, 4.0, 6.0]
    assert stats.rejected == {"not info dicts": 5}
    assert "OSError('env died')" in stats.last_rejection


def test_concurrent_adds_from_threads_count_everything() -> None:
    stats = RolloutStats()
    infos = [{"x": 1.0, "agents": np.ones(3), "t": torch.ones(2)} for _ in range(50)]

    def work() -> None:
        for _ in range(40):
            stats.add(infos)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    s = stats.summary()
    assert s["x"]["count"] == 4 * 40 * 50 and s["agents"]["count"] == 3 * 4 * 40 * 50
    assert s["t"]["count"] == 2 * 4 * 40 * 50 and s["x"]["std"] == 0.0


def test_values_buffer_holds_no_stale_bytes() -> None:
    """A call that fills less than the last one leaves gaps in the buffer that becomes
    the values array (kept for get() and pickled with the stats): they are zeros."""
    stats = RolloutStats()
    big = [{"a": np.full(500, 7.0), "b": np.full(500, 9.0)}] * 4
    stats.add(big)
    stats.add([{"a": 1.0, "b": 2.0}])  # room for 2,000 values of each, 1 used
    segments, values = stats._pending[-1]
    covered = np.zeros(values.size, dtype=bool)
    for _, start, n, _ in segments.T.tolist():
        covered[start : start + n] = True
    assert values.size >= 2 and np.all(values[~covered] == 0.0)
    assert not values.flags.writeable
    # Buffers come back for reuse once their values are cleared: still no stale bytes.
    for _ in range(3):
        stats.add(big)
        stats.clear()
        stats.add([{"a": 1.0, "b": 2.0, "c": [3.0] * 10}])
        segments, values = stats._pending[-1]
        covered = np.zeros(values.size, dtype=bool)
        for _, start, n, _ in segments.T.tolist():
            covered[start : start + n] = True
        assert np.all(values[~covered] == 0.0) and stats.get("a").tolist() == [1.0]
        assert stats.get("c").tolist() == [3.0] * 10
        stats.clear()


def test_one_segment_per_key_once_the_shape_repeats() -> None:
    """The walk sizes each key's first chunk from the last call: a repeated shape gives
    one contiguous segment per key (what the kernel reads fastest)."""
    stats = RolloutStats()
    infos = [{"x": float(i), "a": np.arange(3.0), "g": {"y": i}} for i in range(100)]
    for _ in range(3):
        stats.add(infos)
    segments, _ = stats._pending[-1]
    assert segments.shape[1] == 3 and sorted(segments[2].tolist()) == [100, 100, 300]
    assert stats.get("a").size == 900


def test_unseen_keys_are_forgotten_and_the_table_stays_bounded() -> None:
    """Keys that embed ever-new ids (docs/reporter.md, forget_after): forgotten after forget_after
    clear() periods unseen; the key table and the walk's path nodes stay bounded."""
    stats = RolloutStats(forget_after=3)
    sizes = []
    for epoch in range(60):
        stats.add([{"reward": 1.0, f"episode_{epoch}": {"return": float(epoch), "name": "x"}}])
        assert stats.means()[f"episode_{epoch}/return"] == float(epoch)
        stats.clear()
        sizes.append((len(stats._flattener.names), stats._flattener.node_count))
    assert max(sizes[10:]) == sizes[-1]
    assert sizes[-1][0] <= 1 + 3 and sizes[-1][1] <= 1 + 1 + 3 * 3
    assert stats._flattener.names[0] == "reward"  # the one key seen every time keeps id 0
    stats.add([{"reward": 2.0, "episode_5": {"return": 5.0}}])  # a forgotten key returns
    assert stats.means() == {"reward": 2.0, "episode_5/return": 5.0}


def test_forget_after_none_keeps_every_key() -> None:
    stats = RolloutStats(forget_after=None)
    for epoch in range(20):
        stats.add([{f"episode_{epoch}": 1.0}])
        stats.clear()
    assert len(stats._flattener.names) == 20


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_forget_after_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(ValueError, match="forget_after"):
        RolloutStats(forget_after=bad)


def test_a_warning_once_past_a_hundred_thousand_keys(caplog: pytest.LogCaptureFixture) -> None:
    stats = RolloutStats()
    stats.add([{f"episode_{i}": 1.0 for i in range(100_001)}])
    stats.add([{f"more_{i}": 1.0 for i in range(10)}])
    warnings = [r for r in caplog.records if "ever-new ids" in r.getMessage()]
    assert len(warnings) == 1 and "100001 keys" in warnings[0].getMessage()


# ---- hostile inputs, each in a child process with a deadline ---------------------------


def run_scenario(name: str, timeout: float = 120) -> dict[str, Any]:
    code = f"import sys; sys.path.append({str(ROOT)!r}); "
    code += f"from tests.rollout import hostile; hostile.main({name!r})"
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    assert out.returncode == 0, f"{name}: exit {out.returncode}\n{out.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_ten_thousand_keys() -> None:
    got = run_scenario("ten_thousand_keys")
    assert got == {
        "keys": 10_000 + 10_000 + 8 * 10_000,
        "k9999": 9999.0,
        "sub/k5": 5.0,
        "count_k0": 2.0,
        "call7": 1.0,
    }


@pytest.mark.slow
def test_deep_nesting() -> None:
    got = run_scenario("deep_nesting")
    assert got["keys"] == [0, 199, 511] and got["means"] == [1.0, 2.0, 5.0]
    assert got["rejected"] == {"too deep": 2}
    assert "nested deeper than 512 levels at 'd/d/d/" in got["last"]
    assert "(1023 characters)" in got["last"] and len(got["last"]) < 250


@pytest.mark.slow
def test_million_element_arrays() -> None:
    got = run_scenario("million_element_arrays")
    assert got["counts"] == {"a": 1_000_010.0, "b": 1e6, "c": 1e6, "d": 1e6}
    assert got["mean_err"] < 1e-12 and got["std_err"] < 1e-12
    assert got["minmax"] and got["get_equal"]


@pytest.mark.slow
def test_dict_mutated_by_another_thread_during_the_call() -> None:
    got = run_scenario("mutated_by_another_thread")
    assert got["calls"] > 0 and got["other"] == got["calls"]  # the other info always kept
    # each call's info read whole or refused whole
    assert got["stable"] + got["rejected"] == got["calls"]
    assert got["slow"] == got["stable"] and got["stable_values"] in ([1.0], [])
    assert got["reasons"] in (["changed during the call"], [])


def test_dict_changed_by_its_own_leaf() -> None:
    got = run_scenario("changed_by_its_own_leaf")
    assert got["means"] == {"a": 5.0} and got["rejected"] == {"changed during the call": 1}
    assert "info 0 of an add() call changed size while it was read" in got["last"]


@pytest.mark.slow
def test_cycles_are_refused_and_the_rest_kept() -> None:
    got = run_scenario("cycles", timeout=60)
    assert got["rejected"] == {"cycle": 5}
    assert got["means"] == {"x": 3.0, "s1/v": 2.0, "s2/v": 2.0}
    assert "contains itself (a cycle)" in got["last"]


@pytest.mark.slow
def test_shared_subdicts_that_blow_up_are_refused_in_bounded_time() -> None:
    got = run_scenario("shared_subdicts_blow_up", timeout=60)
    assert got["rejected"] == {"too large": 1} and got["means"] == {"ok": 1.0}
    assert got["seconds"] < 20
    assert got["table"] == [1, 2]  # the refused info's 100,000s of new paths are undone


def test_the_entry_limit_is_the_one_the_message_names() -> None:
    """An info of 262,144 dict entries (nested ones counted) is read; one more entry
    and it is refused as too large, with a message that names that limit."""
    limit = 262_144
    flat = {f"k{i}": 1.0 for i in range(limit - 1)}
    stats = RolloutStats()
    stats.add([{**flat, "last": {}}])  # limit - 1 leaves and one (empty) dict: the limit
    assert stats.rejected == {} and len(stats) == limit - 1
    stats.add([{**flat, "last": {"one_more": 2.0}}, {"ok": 1.0}])
    assert stats.rejected == {"too large": 1} and stats.means()["ok"] == 1.0
    assert "one_more" not in stats
    assert f"more than {limit:,} entries" in (stats.last_rejection or "")
