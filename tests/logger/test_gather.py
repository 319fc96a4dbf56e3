"""Logged tensors at the speed of logged floats (docs/logger.md, "Tensors"): the native gather of
one-element tensors (CPU here; the CUDA kernel runs the same widening code, see
tests/logger/test_cuda.py), its memory-safety rule, and logging sessions that mix floats
and tensors of every dtype giving exactly the numbers of the same values as floats."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.logger.compare import assert_same

from fusedstats import MetricsLogger, Stats, _native
from fusedstats.logger import gather

FLOAT_DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
INT_DTYPES = [torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.bool]
GATHERED = FLOAT_DTYPES + INT_DTYPES


def _as_float(t: torch.Tensor) -> float:
    """The value the logger must see: the tensor widened exactly (torch's own cast)."""
    return float(t.detach().reshape(()).to(torch.float64))


def _same_bits(got: list[float], want: list[float]) -> bool:
    a, b = np.array(got, dtype=np.float64), np.array(want, dtype=np.float64)
    return bool(((a == b) | (np.isnan(a) & np.isnan(b))).all()) and bool(
        (np.signbit(a) == np.signbit(b))[~np.isnan(a)].all()
    )


# ---- the core's gather ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_every_16_bit_pattern_widens_like_torch(dtype):
    """All 65,536 values (subnormals, inf, NaN payloads, -0.0): the widening code the
    CUDA kernel runs too, exhaustively."""
    every = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype)
    views = [every[i] for i in range(every.numel())]  # 0-d views at every offset
    got = gather.to_host(views)
    assert _same_bits(got, every.to(torch.float64).tolist())


@given(data=st.data())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_gathered_values_equal_torchs_cast(data):
    dtype = data.draw(st.sampled_from(GATHERED), label="dtype")
    info = torch.finfo(dtype) if dtype.is_floating_point else None
    if dtype is torch.bool:
        numbers = data.draw(st.lists(st.booleans(), min_size=1, max_size=40))
    elif info is not None:
        special = st.sampled_from([math.nan, math.inf, -math.inf, -0.0, info.tiny, info.max])
        numbers = data.draw(
            st.lists(
                st.one_of(st.floats(-info.max, info.max, allow_nan=False), special),
                min_size=1,
                max_size=40,
            )
        )
    else:
        iinfo = torch.iinfo(dtype)
        numbers = data.draw(st.lists(st.integers(iinfo.min, iinfo.max), min_size=1, max_size=40))
    # Every layout a one-element tensor comes in: 0-d, [1], [1, 1], a view at an offset.
    base = torch.tensor(numbers, dtype=dtype)
    tensors = [base[i] for i in range(len(numbers))]
    tensors += [base[i : i + 1] for i in range(len(numbers))]
    tensors += [base[i : i + 1].reshape(1, 1) for i in range(len(numbers))]
    assert all(gather.scalar_ref(torch, t) is not None for t in tensors)
    got = gather.to_host(tensors)
    assert _same_bits(got, [_as_float(t) for t in tensors])


def test_the_table_is_checked():
    core = _native.core
    with pytest.raises(ValueError, match="pairs"):
        core.gather_scalars(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="pairs"):
        core.gather_scalars(np.zeros(4, dtype=np.int32))
    assert core.gather_scalars(np.zeros(0, dtype=np.int64)) == []


# ---- memory safety: what never reaches the core ------------------------------------------------


def _resized_away() -> torch.Tensor:
    t = torch.tensor([1.5, 2.5])[1]
    t.untyped_storage().resize_(0)  # as FSDP frees a shard
    return t


class Wrapped(torch.Tensor):
    pass


NOT_READ = {
    "meta": lambda: torch.empty((), device="meta"),
    "subclass": lambda: torch.tensor(1.0).as_subclass(Wrapped),
    "two-elements": lambda: torch.tensor([1.0, 2.0]),
    "complex": lambda: torch.tensor(1 + 2j),
    "uint16": lambda: torch.tensor(7, dtype=torch.uint16),
    "sparse": lambda: torch.tensor([3.0]).to_sparse(),
}


@pytest.mark.parametrize("make", NOT_READ.values(), ids=NOT_READ.keys())
def test_what_the_core_never_reads(make):
    assert gather.scalar_ref(torch, make()) is None


@pytest.mark.parametrize(
    "dtype", [torch.float32, torch.bfloat16, torch.int64, torch.uint16], ids=str
)
def test_a_tensor_whose_storage_was_freed_is_refused(dtype):
    """Neither the core nor torch may read it (torch crashes the process on it)."""
    t = torch.tensor([1, 2], dtype=dtype)[1]
    t.untyped_storage().resize_(0)  # as FSDP frees a shard
    with pytest.raises(ValueError, match=r"lost its value.*storage holds 0 bytes"):
        gather.scalar_ref(torch, t)
    with pytest.raises(ValueError, match="lost its value"):
        gather.to_host([1.0, t])


def test_a_shrunk_storage_in_a_list_is_reported_with_its_key():
    """A tensor kept in a list whose storage is freed before reduce: no crash, a clear
    error naming the key."""
    logger = MetricsLogger()
    logger.log_value("ok", torch.tensor(2.0), reduce=None)
    doomed = torch.tensor([1.0, 5.0])[1]
    logger.log_value("doomed", doomed, reduce=None)
    doomed.untyped_storage().resize_(0)
    with pytest.raises(ValueError, match=r"doomed.*lost its value"):
        logger.reduce()
    assert logger.peek("ok") == [2.0]


def test_other_tensors_take_the_torch_path_with_the_same_numbers():
    values: list[Any] = [
        torch.tensor(1.0).as_subclass(Wrapped),
        torch.tensor(7, dtype=torch.uint16),
        torch.tensor([[2.5]], dtype=torch.float16).t(),
        3.0,
        torch.tensor([1.0, 2.0]),  # several elements: kept as it is
    ]
    got = gather.to_host(values)
    assert got[:4] == [1.0, 7.0, 2.5, 3.0]
    assert got[4] is values[4]


# ---- logging tensors like floats ---------------------------------------------------------


@st.composite
def tensor_or_float(draw: Any) -> tuple[Any, float]:
    """(what is logged, the float that must give the same numbers)."""
    x = draw(
        st.one_of(
            st.floats(-1e4, 1e4, allow_nan=False),
            st.sampled_from([math.nan, math.inf, -math.inf, -0.0]),
        )
    )
    kind = draw(st.sampled_from(["float", *GATHERED, "int-float"]))
    if kind == "float":
        return x, x
    if kind == "int-float":
        return int(x) if math.isfinite(x) else x, int(x) if math.isfinite(x) else x
    dtype = kind
    if dtype is torch.bool:
        x = bool(x)
    elif not dtype.is_floating_point:
        if not math.isfinite(x):
            x = 0.0
        info = torch.iinfo(dtype)
        x = min(max(int(x), info.min), info.max)
    t = torch.tensor(x, dtype=dtype)
    if draw(st.booleans()):
        t = t.reshape(1)  # a one-element 1-d tensor
    return t, _as_float(t)


KEY_SETTINGS = [
    {"window": 3},
    {},
    {"ema_coeff": 0.5},
    {"reduce": "sum"},
    {"reduce": "sum", "window": 4},
    {"reduce": "min", "window": 2},
    {"reduce": "max"},
    {"reduce": None},
    {"reduce": None, "window": 3},
    {"reduce": "percentiles", "window": 5, "percentiles": [0, 50, 100]},
]


@given(steps=st.lists(st.tuples(st.integers(0, len(KEY_SETTINGS) - 1), tensor_or_float())))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_sessions_mixing_floats_and_tensors_give_the_numbers_of_floats(steps):
    with_tensors, with_floats = MetricsLogger(), MetricsLogger()
    for n, (k, (logged, as_float)) in enumerate(steps):
        key = f"k{k}"
        with_tensors.log_value(key, logged, **KEY_SETTINGS[k])
        with_floats.log_value(key, as_float, **KEY_SETTINGS[k])
        if n % 7 == 6:
            assert_same(
                with_tensors.reduce(return_stats_obj=False),
                with_floats.reduce(return_stats_obj=False),
            )
    assert_same(
        MetricsLogger.peek_results(with_tensors.reduce()),
        MetricsLogger.peek_results(with_floats.reduce()),
    )
    a, b = MetricsLogger(), MetricsLogger()
    a.merge_and_log_n_dicts([with_tensors.reduce(), with_tensors.reduce()])
    b.merge_and_log_n_dicts([with_floats.reduce(), with_floats.reduce()])
    assert_same(a.reduce(return_stats_obj=False), b.reduce(return_stats_obj=False))


def test_a_cpu_scalar_is_a_float_once_logged():
    """Read when logged (torch's checked item()): reduce then runs at float speed."""
    logger = MetricsLogger()
    t = torch.tensor(0.25, requires_grad=True) * 2
    logger.log_value("loss", t, window=4)
    logger.log_value("loss", torch.tensor(3, dtype=torch.int32))
    s = logger.stats["loss"]
    assert [type(v) for v in s.values] == [float, float]
    assert s.values == [0.5, 3.0]
    assert not s.holds_tensors
    t.backward()  # the logger holds no part of the graph


@pytest.mark.parametrize("known", [True, False], ids=["known-key", "new-key"])
def test_a_tensor_of_several_elements_is_refused_naming_the_key(known):
    logger = MetricsLogger()
    if known:
        logger.log_value("loss", 1.0, window=3)
    with pytest.raises(TypeError, match=r"'loss'.*2 elements"):
        logger.log_value("loss", torch.tensor([1.0, 2.0]), window=3)
    with pytest.raises(TypeError, match=r"'loss'.*complex"):
        logger.log_value("loss", torch.tensor(1 + 1j), window=3)
    assert ("loss" in logger) is known
    if known:
        assert logger.peek("loss") == 1.0
    s = Stats(reduce="sum")
    with pytest.raises(TypeError):
        s.push(torch.tensor([1, 2]))
    assert s.peek() == 0
