"""The per-unit sums of |x| behind ``act/<m>/dormant_frac`` (the compiled core's
``unit_abs_sums`` on the CPU): against float64 references on fresh random data, exact
where the sums are exact, the same bits at any thread count, and the nasty cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers import kernel_settings, property_settings

import fusedstats
from fusedstats import _core
from fusedstats.health.units import add_unit_abs_sums

DTYPES = [
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.float8_e4m3fn,
    torch.float8_e5m2,
]


def reference(x: torch.Tensor, dim: int) -> np.ndarray:
    """float64 Σ|x| over every dim but ``dim`` (the widening to float64 is exact)."""
    wide = x.to(torch.float64).numpy()
    others = tuple(d for d in range(wide.ndim) if d != dim)
    return np.abs(wide).sum(axis=others) if others else np.abs(wide)


def assert_close(got: np.ndarray, want: np.ndarray, scale: np.ndarray) -> None:
    """Within 1e-12 of the sum of |terms| (float64 rounding in another order); equal
    where the sums are infinite (float16 inputs past 65504 are inf already)."""
    with np.errstate(invalid="ignore"):
        close = (got == want) | (np.abs(got - want) <= 1e-12 * scale + 1e-300)
    assert close.all(), (got, want)


def unit_sums(x: torch.Tensor, dim: int, acc0: torch.Tensor | None = None) -> torch.Tensor:
    acc = torch.zeros(x.shape[dim], dtype=torch.float64) if acc0 is None else acc0.clone()
    add_unit_abs_sums(x, dim, acc, acc0 is None)
    return acc


def values(rng: np.random.Generator, shape, dtype, kind: str) -> torch.Tensor:
    if kind == "normal":
        offset, scale = float(rng.choice([0.0, -3e3, 1e6])), float(rng.choice([1e-3, 1.0, 50.0]))
        v = rng.normal(offset, scale, shape)
    elif kind == "subnormal":  # float32 subnormals (and zeros), widened exactly
        v = rng.integers(-(2**20), 2**20, shape) * 2.0**-149
    else:  # small integers: every partial sum is exact in float64, in any order
        v = rng.integers(-8, 9, shape).astype(np.float64)
    x = torch.from_numpy(v)
    if dtype in (torch.float8_e4m3fn, torch.float8_e5m2):
        x = x.clamp(-400, 400)  # inside both formats' range (e4m3 has no infinity)
    return x.to(dtype)


@property_settings(max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from(DTYPES),
    shape=st.lists(st.integers(0, 37), min_size=1, max_size=4),
    dim_pick=st.integers(0, 3),
    kind=st.sampled_from(["normal", "integers", "subnormal"]),
    accumulate=st.booleans(),
    transposed=st.booleans(),
)
def test_matches_the_float64_reference(seed, dtype, shape, dim_pick, kind, accumulate, transposed):
    rng = np.random.default_rng(seed)
    x = values(rng, shape, dtype, kind)
    if transposed and x.dim() >= 2:
        x = x.transpose(0, -1)  # not contiguous: read through a checked copy
    dim = dim_pick % x.dim()
    acc0 = torch.from_numpy(rng.normal(0, 5, x.shape[dim])) if accumulate else None
    got = unit_sums(x, dim, acc0).numpy()
    want = reference(x, dim) + (acc0.numpy() if acc0 is not None else 0.0)
    if kind == "integers" and (acc0 is None):
        np.testing.assert_array_equal(got, want)  # exact sums: no order can change them
    else:
        scale = reference(x, dim) + (np.abs(acc0.numpy()) if acc0 is not None else 0.0)
        assert_close(got, want, scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,dim", [((700, 256), 1), ((6, 64, 400), 1), ((3, 5, 9000), 2)])
def test_same_bits_at_any_thread_count(dtype, shape, dim):
    rng = np.random.default_rng()
    x = values(rng, shape, dtype, "normal")
    assert x.numel() >= 2**17  # big enough for the parallel path
    with kernel_settings():
        for level in _core.simd_levels():
            assert _core.set_simd_level(level)
            runs = []
            for threads in (1, 2, 3):
                fusedstats.set_num_threads(threads)
                runs.append(unit_sums(x, dim).numpy())
            for other in runs[1:]:
                np.testing.assert_array_equal(runs[0].view(np.int64), other.view(np.int64))
            assert_close(runs[0], reference(x, dim), reference(x, dim))


def test_nan_and_inf_land_in_their_unit_only():
    x = torch.ones(6, 4)
    x[2, 1] = float("nan")
    x[4, 3] = float("-inf")
    got = unit_sums(x, 1).tolist()
    assert got[0] == 6.0 and got[2] == 6.0
    assert np.isnan(got[1]) and got[3] == float("inf")
    e4m3 = torch.tensor([[448.0, float("nan")]]).to(torch.float8_e4m3fn)
    got8 = unit_sums(e4m3, 1).tolist()
    assert got8[0] == 448.0 and np.isnan(got8[1])


def test_subnormals_count_when_the_thread_flushes_denormals():
    x = torch.full((64, 3), 2.0**-140)  # float32 subnormal
    torch.set_flush_denormal(True)
    try:
        got = unit_sums(x, 1)
    finally:
        torch.set_flush_denormal(False)
    assert got.tolist() == [64 * 2.0**-140] * 3


def test_empty_outputs_and_huge_values():
    assert unit_sums(torch.zeros(0, 5), 1).tolist() == [0.0] * 5
    assert unit_sums(torch.zeros(4, 0), 1).tolist() == []
    acc = torch.tensor([1.5, 2.5], dtype=torch.float64)
    add_unit_abs_sums(torch.zeros(0, 2), 1, acc, False)
    assert acc.tolist() == [1.5, 2.5]  # nothing added, nothing cleared
    big = torch.full((3, 2), 1.7e308, dtype=torch.float64)
    assert unit_sums(big, 1).tolist() == [float("inf")] * 2  # overflows as float64 does
    f32max = torch.full((1000, 2), 3.4e38)
    assert unit_sums(f32max, 1).tolist() == pytest.approx([3.4e41, 3.4e41], rel=1e-7)


def test_bad_accumulators_and_inputs_are_refused():
    x = torch.ones(4, 3)
    for acc in (
        torch.zeros(3, dtype=torch.float32),
        torch.zeros(4, dtype=torch.float64),
        torch.zeros(6, dtype=torch.float64)[::2],
    ):
        with pytest.raises(ValueError, match="contiguous float64 tensor of 3"):
            add_unit_abs_sums(x, 1, acc, True)
    acc = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(TypeError, match="the output"):
        add_unit_abs_sums(torch.ones(4, 3).to_sparse(), 1, acc, True)
    with pytest.raises(TypeError, match="the output"):
        add_unit_abs_sums(torch.ones(4, 3, dtype=torch.int32), 1, acc, True)
    with pytest.raises(ValueError, match="unknown dtype"):
        _core.unit_abs_sums(x.data_ptr(), 99, 4, 3, 1, acc.data_ptr())
    with pytest.raises(ValueError, match="negative size"):
        _core.unit_abs_sums(x.data_ptr(), 0, -4, 3, 1, acc.data_ptr())
    with pytest.raises(ValueError, match="overflows"):
        _core.unit_abs_sums(x.data_ptr(), 0, 2**40, 2**20, 2**10, acc.data_ptr())


def test_a_prepared_descriptor_reads_the_same_values():
    from fusedstats.kernels import inputs

    x = torch.randn(9, 7, 5).transpose(0, 2)  # not contiguous: the descriptor is a copy
    want = unit_sums(x, 1)
    got = torch.zeros(7, dtype=torch.float64)
    add_unit_abs_sums(x, 1, got, True, inputs.prepare([x], None))
    np.testing.assert_array_equal(got.numpy(), want.numpy())
