"""RolloutStats against the plain defaultdict(list) + numpy reference, on random infos.

The infos look like a vectorized env's: a batch often shares one shape (same keys,
same kind of leaf per key, which takes the fast column paths), with now and then a
"rogue" leaf of another kind (a string where a number was, a ragged array...), or is
a mix of shapes (the slow paths). Leaves: numbers of every Python and numpy type, NaN,
per-agent arrays of a fixed or ragged length, 1-element arrays, lists, tensors, and
non-numeric things that must be skipped and counted.
"""

from __future__ import annotations

import decimal
import enum
import fractions
import types
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.rollout.reference import Reference, mismatches

from fusedstats.rollout import RolloutStats

KEYS = ["a", "b", "c", "d"]
AGENTS = 3  # the per-agent length of "fixed" arrays

floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
small_ints = st.integers(-(10**6), 10**6)
lengths = st.integers(0, 4)


def _array(draw: Any, dtype: Any, size: int) -> np.ndarray:
    if np.dtype(dtype).kind == "b":
        return np.array(draw(st.lists(st.booleans(), min_size=size, max_size=size)))
    if np.dtype(dtype).kind in "iu":
        return np.array(draw(st.lists(st.integers(0, 100), min_size=size, max_size=size)), dtype)
    return np.array(draw(st.lists(floats, min_size=size, max_size=size)), dtype)


# kind -> function(draw) -> leaf
LEAVES = {
    "float": lambda draw: draw(floats),
    "int": lambda draw: draw(small_ints),
    "bool": lambda draw: draw(st.booleans()),
    "nan": lambda draw: draw(st.sampled_from([float("nan"), 1.5, -2.0])),
    "np_float32": lambda draw: np.float32(draw(floats)),
    "np_int64": lambda draw: np.int64(draw(small_ints)),
    "np_bool": lambda draw: np.bool_(draw(st.booleans())),
    "fraction": lambda draw: fractions.Fraction(draw(st.integers(-9, 9)), 7),
    "agents": lambda draw: _array(draw, np.float64, AGENTS),
    "agents_f32": lambda draw: _array(draw, np.float32, AGENTS),
    "agents_int": lambda draw: _array(draw, np.int16, AGENTS),
    "agents_bool": lambda draw: _array(draw, np.bool_, AGENTS),
    "ragged": lambda draw: _array(draw, np.float64, draw(lengths)),
    "one_element": lambda draw: _array(draw, np.float64, 1),
    "zero_d": lambda draw: np.array(draw(floats)),
    "grid": lambda draw: _array(draw, np.float64, 4).reshape(2, 2),
    "strided": lambda draw: _array(draw, np.float64, 6)[::2],
    "list": lambda draw: draw(st.lists(floats | small_ints, max_size=3)),
    "tuple": lambda draw: tuple(draw(st.lists(small_ints, max_size=3))),
    "tensor": lambda draw: torch.tensor(draw(st.lists(floats, max_size=3)), dtype=torch.float64),
    "tensor_f32": lambda draw: torch.tensor(draw(st.lists(floats, max_size=3))),
    "tensor_1": lambda draw: torch.tensor([draw(floats)]),
    "tensor_0d": lambda draw: torch.tensor(draw(floats)),
    "tensor_bool": lambda draw: torch.tensor(draw(st.lists(st.booleans(), max_size=3))),
    "tensor_grad": lambda draw: torch.tensor([draw(floats)], requires_grad=True),
    # skipped, never an exception
    "str": lambda draw: draw(st.sampled_from(["abc", "1.5", ""])),
    "none": lambda draw: None,
    "bytes": lambda draw: b"\x00" * 8,
    "object": lambda draw: object(),
    "decimal": lambda draw: decimal.Decimal("1.5"),
    "complex": lambda draw: draw(st.sampled_from([1j, np.complex128(1 + 2j)])),
    "str_array": lambda draw: np.array(["a", "b"]),
    "object_array": lambda draw: np.array([1.0, None]),
    "complex_array": lambda draw: np.array([1 + 1j]),
    "ragged_list": lambda draw: [[1.0, 2.0], [3.0]],
    "huge_int": lambda draw: 10**400,
    "complex_tensor": lambda draw: torch.tensor([1 + 1j]),
    # lists numpy reads by rules of its own (the walk reads plain ones itself)
    "big_int_list": lambda draw: [2**63, draw(small_ints)],  # float64 in numpy 2
    "huge_int_list": lambda draw: [2**70, draw(floats)],  # object: skipped
    "edge_int_list": lambda draw: [-(2**63), 2**63 - 1],
    "bool_list": lambda draw: draw(st.lists(st.booleans(), max_size=3)),
    "mixed_list": lambda draw: [True, draw(small_ints), draw(floats)],
    "numpy_scalar_list": lambda draw: [np.float32(draw(floats)), 2],
    "nested_list": lambda draw: [[draw(floats), 1.0], [2.0, 3.0]],
    "big_endian": lambda draw: _array(draw, np.float64, 2).astype(">f8"),
    "float16": lambda draw: np.array(
        draw(st.lists(st.floats(-6e4, 6e4), min_size=2, max_size=2)), np.float16
    ),
    "mapping_proxy": lambda draw: types.MappingProxyType({"z": draw(floats)}),
}
KINDS = sorted(LEAVES)
COMMON = ["float", "int", "bool", "nan", "agents", "agents_f32", "ragged", "one_element"]


@st.composite
def shapes(draw: Any, depth: int = 0) -> dict[str, Any]:
    """key -> leaf kind, or a nested shape (nesting up to 2 levels below the info)."""
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True))
    shape: dict[str, Any] = {}
    for k in keys:
        if depth < 2 and draw(st.integers(0, 3)) == 0:
            shape[k] = draw(shapes(depth + 1))
        else:
            shape[k] = draw(st.sampled_from(COMMON) | st.sampled_from(KINDS))
    return shape


@st.composite
def fill(draw: Any, shape: dict[str, Any], rogue_rate: int) -> dict[str, Any]:
    """An info of ``shape``; a leaf is a rogue of another kind once in ``rogue_rate``."""
    info: dict[str, Any] = {}
    for k, kind in shape.items():
        if isinstance(kind, dict):
            info[k] = draw(fill(kind, rogue_rate))
            continue
        rogue = draw(st.integers(0, rogue_rate)) == 0
        info[k] = LEAVES[draw(st.sampled_from(KINDS)) if rogue else kind](draw)
    return info


@st.composite
def calls(draw: Any) -> list[list[Any]]:
    """Several add() calls' infos."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(0, 8))
        if draw(st.booleans()):  # one shape for the whole batch, as vector envs give
            shape = draw(shapes())
            rogue_rate = draw(st.sampled_from([4, 20, 1000]))
            infos = [draw(fill(shape, rogue_rate)) for _ in range(n)]
        else:
            infos = [draw(fill(draw(shapes()), 5)) for _ in range(n)]
        out.append(infos)
    return out


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(calls())
def test_matches_reference(batches: list[list[Any]]) -> None:
    stats, ref = RolloutStats(), Reference()
    for infos in batches:
        stats.add(infos)
        ref.add(infos)
        errors = mismatches(stats, ref)
        assert not errors, "\n".join(errors)
    assert len(stats) == len(ref.keys())
    stats.clear()
    assert len(stats) == 0 and stats.skipped == {} and stats.means() == {}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=shapes(),
    n=st.integers(1, 40),
    seeds=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4),
)
def test_wide_batches_of_one_shape(shape: dict[str, Any], n: int, seeds: list[int]) -> None:
    """Many infos of one shape with numpy-random values: the fast paths at full width."""
    stats, ref = RolloutStats(), Reference()
    for seed in seeds:
        rng = np.random.default_rng(seed)
        infos = [_random_fill(shape, rng) for _ in range(n)]
        stats.add(infos)
        ref.add(infos)
    errors = mismatches(stats, ref)
    assert not errors, "\n".join(errors)


def _random_fill(shape: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    info: dict[str, Any] = {}
    for k, kind in shape.items():
        if isinstance(kind, dict):
            info[k] = _random_fill(kind, rng)
        elif kind in ("float", "nan"):
            info[k] = float(rng.normal() * 1e3)
        elif kind == "int":
            info[k] = int(rng.integers(-5, 5))
        elif kind == "agents":
            info[k] = rng.normal(size=AGENTS)
        elif kind == "ragged":
            info[k] = rng.random(int(rng.integers(0, 5))).astype(np.float32)
        else:
            info[k] = _fixed(kind)
    return info


def _fixed(kind: str) -> Any:
    """A leaf of ``kind`` without hypothesis (inside a test, draws are not allowed)."""
    fixed: dict[str, Any] = {
        "bool": True,
        "np_float32": np.float32(0.25),
        "np_int64": np.int64(7),
        "np_bool": np.bool_(False),
        "fraction": fractions.Fraction(2, 3),
        "agents_f32": np.arange(AGENTS, dtype=np.float32),
        "agents_int": np.arange(AGENTS, dtype=np.int16),
        "agents_bool": np.array([True, False, True]),
        "one_element": np.array([4.5]),
        "zero_d": np.array(-1.0),
        "grid": np.arange(4.0).reshape(2, 2),
        "strided": np.arange(6.0)[::2],
        "list": [1, 2.5],
        "tuple": (3, 4),
        "tensor": torch.arange(3, dtype=torch.float64),
        "tensor_f32": torch.ones(2),
        "tensor_1": torch.tensor([2.0]),
        "tensor_0d": torch.tensor(3.0),
        "tensor_bool": torch.tensor([True, False]),
        "tensor_grad": torch.tensor([1.0], requires_grad=True),
        "big_int_list": [2**63, 5],
        "huge_int_list": [2**70, 0.5],
        "edge_int_list": [-(2**63), 2**63 - 1],
        "bool_list": [True, False, True],
        "mixed_list": [True, 2, 3.5],
        "numpy_scalar_list": [np.float32(1.5), 2],
        "nested_list": [[1.0, 2.0], [3.0, 4.0]],
        "big_endian": np.arange(3, dtype=">f8"),
        "float16": np.array([0.5, -2.0], dtype=np.float16),
        "mapping_proxy": types.MappingProxyType({"z": 1.0}),
    }
    if kind in fixed:
        return fixed[kind]
    return _SKIPPED[kind]


_SKIPPED: dict[str, Any] = {
    "str": "abc",
    "none": None,
    "bytes": b"xx",
    "object": object(),
    "decimal": decimal.Decimal("2.5"),
    "complex": 1j,
    "str_array": np.array(["a"]),
    "object_array": np.array([None]),
    "complex_array": np.array([1j]),
    "ragged_list": [[1.0], [2.0, 3.0]],
    "huge_int": 10**400,
    "complex_tensor": torch.tensor([1j]),
}


# ---- ragged infos: what real envs send -------------------------------------------------


class OddKey:
    """A key whose str() and format() differ: a path uses str(key) at the top and
    format(key) below it, as f-strings did."""

    def __str__(self) -> str:
        return "odd-str"

    def __format__(self, spec: str) -> str:
        return "odd-fmt"


class Color(enum.Enum):
    RED = 1


ODD = OddKey()
# str keys, keys that join to the same path ("a/b" and a -> b; 0 and "0"), the empty
# key (a prefix that joins like the top), and keys that are not str at all.
RAGGED_KEYS: list[Any] = ["a", "b", "c", "a/b", "0", "", 0, 7, (1, 2), 2.5, ODD, Color.RED]


@st.composite
def ragged_shapes(draw: Any, depth: int = 0) -> dict[Any, Any]:
    """key -> leaf kind or nested shape, over RAGGED_KEYS, nesting up to 4 levels."""
    keys = draw(st.lists(st.sampled_from(RAGGED_KEYS), max_size=5, unique=True))
    shape: dict[Any, Any] = {}
    for k in keys:
        if depth < 4 and draw(st.integers(0, 3)) == 0:
            shape[k] = draw(ragged_shapes(depth + 1))
        else:
            shape[k] = draw(st.sampled_from(COMMON) | st.sampled_from(KINDS))
    return shape


@st.composite
def ragged_fill(draw: Any, shape: dict[Any, Any], keep: int) -> dict[Any, Any]:
    """An info of ``shape`` in which each key is present with probability keep/4 (a key
    that only some envs report), leaves now and then of another kind."""
    info: dict[Any, Any] = {}
    for k, kind in shape.items():
        if draw(st.integers(0, 3)) >= keep:
            continue
        if isinstance(kind, dict):
            info[k] = draw(ragged_fill(kind, keep))
        else:
            rogue = draw(st.integers(0, 8)) == 0
            info[k] = LEAVES[draw(st.sampled_from(KINDS)) if rogue else kind](draw)
    return info


def _chain(depth: int, leaf: Any) -> dict[str, Any]:
    """{"d": {"d": ... {"x": leaf}}}: ``depth`` dict levels."""
    info: dict[str, Any] = {"x": leaf}
    for _ in range(depth - 1):
        info = {"d": info}
    return info


@st.composite
def ragged_info(draw: Any, shape: dict[Any, Any]) -> Any:
    """One entry of an add() call: mostly an info of ``shape`` with keys missing, else
    an empty dict, None, a deep chain (accepted up to 512 levels, refused beyond), or
    an info that contains itself (refused)."""
    special = draw(st.integers(0, 19))
    if special == 0:
        return {}
    if special == 1:
        return None
    if special == 2:
        return _chain(draw(st.sampled_from([5, 60, 200, 600])), draw(floats))
    info = draw(ragged_fill(shape, draw(st.integers(1, 4))))
    if special == 3:  # a cycle, at the top or one level down
        holder: dict[Any, Any] = info
        for v in info.values():
            if isinstance(v, dict):
                holder = v
                break
        holder["loop"] = info
    return info


@st.composite
def ragged_calls(draw: Any) -> list[tuple[list[Any], bool]]:
    """Several add() calls (each: infos, then whether clear() follows)."""
    shape = draw(ragged_shapes())
    out = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.integers(0, 3)) == 0:
            shape = draw(ragged_shapes())  # the env changed what it reports
        infos = draw(st.lists(ragged_info(shape), max_size=10))
        out.append((infos, draw(st.integers(0, 3)) == 0))
    return out


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(ragged_calls(), st.sampled_from([1, 2, None]))
def test_ragged_infos_match_reference(
    batches: list[tuple[list[Any], bool]], forget_after: int | None
) -> None:
    """Missing keys, empty dicts, mixed kinds under one path, arrays of varying length,
    deep nesting, keys that are not str, paths spelled two ways, cyclic and too-deep
    infos (refused and counted, the rest of the call kept), with clear() between calls
    forgetting keys: the same as the plain reference."""
    stats, ref = RolloutStats(forget_after=forget_after), Reference()
    for infos, then_clear in batches:
        stats.add(infos)
        ref.add(infos)
        errors = mismatches(stats, ref)
        assert not errors, "\n".join(errors)
        for reason in ref.rejected:
            event(f"rejected: {reason}")
        if then_clear:
            stats.clear()
            ref = Reference()
            assert len(stats) == 0 and stats.rejected == {} and stats.skipped == {}
