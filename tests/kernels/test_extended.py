"""The extended pass (kurtosis, smallest nonzero |x|, dynamic range, low-precision
underflow/overflow, the exponent histogram) against the float64 reference, float8
inputs, thread-count determinism, and the overflow guards of the shared math (review
F14) on the CPU."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers import (
    assert_bitwise_equal,
    assert_extended_close,
    assert_rows_close,
    cases,
    make_tensors,
    property_settings,
    to_numpy,
)

import fusedstats
from fusedstats.kernels.columns import (
    EXTENDED_COLUMN_INDEX,
    EXTENDED_FIELDS,
    HIST_BIN_OFFSET,
    HIST_BINS,
    NUM_COLUMNS,
    NUM_EXTENDED_COLUMNS,
)
from fusedstats.kernels.reference import FORMAT_MAX, FORMAT_MIN_NORMAL

COL = EXTENDED_COLUMN_INDEX


def _extended(tensors: list, names: list[str] | None = None) -> fusedstats.TensorStats:
    return fusedstats.tensor_stats(tensors, names, extended=True)


@property_settings(max_examples=100)
@given(case=cases(max_tensors=60))
def test_matches_reference_on_random_lists(case) -> None:
    tensors = make_tensors(case)
    stats = _extended(tensors)
    rows, hist = stats.as_tensor(), stats.exponent_histogram
    assert tuple(rows.shape) == (len(tensors) + 1, NUM_EXTENDED_COLUMNS)
    assert tuple(hist.shape) == (len(tensors) + 1, HIST_BINS)
    assert_extended_close(rows, hist, tensors)


@property_settings(max_examples=25)
@given(case=cases(max_tensors=20, libs=("torch",)))
def test_the_default_columns_do_not_change(case) -> None:
    # The extended pass computes the same base statistics (to rounding: its tiles are
    # always two-pass) and the default pass is unchanged by its existence.
    tensors = make_tensors(case)
    plain = to_numpy(fusedstats.tensor_stats(tensors).as_tensor())
    ext = to_numpy(_extended(tensors).as_tensor())[:, :NUM_COLUMNS]
    exact = [
        fusedstats.COLUMNS.index(c) for c in ("numel", "n_nan", "n_inf", "n_zero", "min", "max")
    ]
    # Equal values (the sign of a zero min/max may differ: 0.0 and -0.0 are both "the min")
    np.testing.assert_array_equal(plain[:, exact], ext[:, exact])
    # Same float64 data, two summation orders: rounding apart (sums relative to l1).
    labels = [f"row {i}" for i in range(len(plain))]
    assert_rows_close(ext, plain, [1e-12] * len(plain), labels)


@property_settings(max_examples=20)
@given(case=cases(max_tensors=8), threads=st.integers(2, 8))
def test_same_bits_at_any_thread_count(case, threads: int) -> None:
    tensors = make_tensors(case)
    before = fusedstats.get_num_threads()
    try:
        fusedstats.set_num_threads(1)
        one = _extended(tensors)
        fusedstats.set_num_threads(threads)
        many = _extended(tensors)
    finally:
        fusedstats.set_num_threads(before)
    assert_bitwise_equal(one.as_tensor(), many.as_tensor(), f"1 vs {threads} threads")
    assert np.array_equal(to_numpy(one.exponent_histogram), to_numpy(many.exponent_histogram))


def _nextafter(x: float, toward: float) -> float:
    return float(np.nextafter(x, toward))


@pytest.mark.parametrize("fmt", sorted(FORMAT_MAX))
def test_values_exactly_at_the_format_limits(fmt: str) -> None:
    lo, hi = FORMAT_MIN_NORMAL[fmt], FORMAT_MAX[fmt]
    values = [lo, -lo, hi, -hi, _nextafter(lo, 0.0), -_nextafter(lo, 0.0), _nextafter(hi, math.inf)]
    values += [0.0, 1.0, 5e-324, -math.inf, math.nan]
    x = torch.tensor(values, dtype=torch.float64)
    row = _extended([x]).global_
    n_finite = 10  # all but -inf and nan
    # below the smallest normal: the two next-below values and the float64 subnormal
    assert row[f"underflow_{fmt}"] == 3 / n_finite
    assert row[f"overflow_{fmt}"] == 1 / n_finite  # only the next-above value
    assert row["min_abs_nonzero"] == 5e-324
    assert_extended_close(*_buffers(_extended([x])), [x])


def _buffers(stats: fusedstats.TensorStats) -> tuple:
    return stats.as_tensor(), stats.exponent_histogram


def test_histogram_bins_of_float32_subnormals_and_float64_extremes() -> None:
    x = torch.tensor(
        [2.0**-149, 2.0**-127, 2.0**-126, 1.5, -3.0, 2.0**127, 0.0, -0.0], dtype=torch.float32
    )
    y = torch.tensor([2.0**-150, 1e-320, 2.0**128, 1e300, math.inf], dtype=torch.float64)
    hist = to_numpy(_extended([x, y]).exponent_histogram)
    expect_x = {0: 2}
    for e in (-149, -127, -126, 0, 1, 127):
        expect_x[e + HIST_BIN_OFFSET] = 1
    assert {int(b): int(c) for b, c in enumerate(hist[0]) if c} == expect_x
    assert {int(b): int(c) for b, c in enumerate(hist[1]) if c} == {1: 2, HIST_BINS - 1: 2}
    assert hist[2].tolist() == (hist[0] + hist[1]).tolist()


@pytest.mark.parametrize("dtype", [torch.float8_e4m3fn, torch.float8_e5m2])
def test_float8_inputs_are_widened_exactly(dtype: torch.dtype) -> None:
    every = torch.arange(256, dtype=torch.uint8).view(dtype)
    exact = every.to(torch.float64)
    for extended in (False, True):
        got = fusedstats.tensor_stats([every, every[7:200]], extended=extended)
        want = fusedstats.tensor_stats([exact, exact[7:200]], extended=extended)
        assert_bitwise_equal(got.as_tensor(), want.as_tensor(), f"{dtype} vs its float64 values")
    assert_extended_close(*_buffers(_extended([every])), [every])


@pytest.mark.parametrize(
    "values",
    [[], [math.nan] * 5, [math.inf, -math.inf], [3.0], [0.0, 0.0], [2.0] * 7],
    ids=["empty", "all_nan", "only_inf", "one", "zeros", "constant"],
)
def test_nasty_cases(values: list[float]) -> None:
    x = torch.tensor(values, dtype=torch.float64)
    stats = _extended([x])
    assert_extended_close(stats.as_tensor(), stats.exponent_histogram, [x])
    row = stats.global_
    if len([v for v in values if math.isfinite(v)]) < 2 or len(set(values)) == 1:
        assert math.isnan(row["kurtosis"])


@pytest.mark.parametrize("offset", [1e4, 1e6, -1e6])
def test_kurtosis_at_large_offsets(offset: float) -> None:
    rng = np.random.default_rng()
    # A Laplace sample: excess kurtosis 3; the offset must not cost the moments digits.
    base = rng.laplace(0.0, 1e-3, 200_003)
    x = torch.from_numpy(base + offset)
    got = _extended([x]).global_["kurtosis"]
    d = base - base.mean()
    want = len(d) * np.sum(d**4) / np.sum(d**2) ** 2 - 3.0
    assert abs(got - want) <= 1e-7 * (abs(want) + 3), (got, want)


def test_histogram_requires_the_extended_pass() -> None:
    with pytest.raises(ValueError, match="extended=True"):
        _ = fusedstats.tensor_stats([torch.ones(3)]).exponent_histogram


def test_extended_dict_and_model_stats_keys() -> None:
    model = torch.nn.Linear(3, 2)
    model(torch.ones(4, 3)).sum().backward()
    grads = fusedstats.grad_stats(model, extended=True)
    weights = fusedstats.weight_stats(model, extended=True)
    for field in EXTENDED_FIELDS:
        assert f"grad/{field}" in grads
        assert f"weights/{field}" in weights
    stats = _extended([torch.ones(2)], names=["w"])
    assert set(stats.per_tensor["w"]) == set(fusedstats.FIELDS) | set(EXTENDED_FIELDS)


def test_hist_out_and_out_buffers_are_filled_in_place() -> None:
    x = torch.randn(1000)
    out = torch.full((2, NUM_EXTENDED_COLUMNS), -1.0, dtype=torch.float64)
    hist = torch.full((2, HIST_BINS), -1, dtype=torch.int64)
    stats = fusedstats.tensor_stats([x], out=out, hist_out=hist, extended=True)
    assert stats.as_tensor() is out and stats.exponent_histogram is hist
    assert int(hist[0].sum()) == 1000
    with pytest.raises(ValueError, match="hist_out"):
        fusedstats.tensor_stats([x], hist_out=torch.zeros(2, 3, dtype=torch.int64), extended=True)
    with pytest.raises(ValueError, match="out"):
        fusedstats.tensor_stats(
            [x], out=torch.zeros(2, NUM_COLUMNS, dtype=torch.float64), extended=True
        )


# ---- F14: data near the end of the float64 range never gives NaN -----------------------


@pytest.mark.parametrize("extended", [False, True])
def test_huge_values_give_the_right_mean_and_no_nan(extended: bool) -> None:
    big = torch.tensor([1e308, 1e308], dtype=torch.float64)
    row = fusedstats.tensor_stats([big], extended=extended).global_
    assert row["mean"] == 1e308 and row["var"] == 0.0 and row["min"] == 1e308
    assert row["sum"] == math.inf and row["norm"] == math.inf and row["l1"] == math.inf

    mixed = torch.tensor([1.5e308] * 3 + [-1.5e308] * 3, dtype=torch.float64)
    row = fusedstats.tensor_stats([mixed], extended=extended).global_
    assert row["mean"] == 0.0 and row["sum"] == 0.0
    assert row["var"] == math.inf and row["std"] == math.inf
    for name in fusedstats.FIELDS:  # kurtosis needs 4th powers: NaN once they overflow
        assert not math.isnan(row[name]), f"{name} is NaN"


def test_huge_values_in_different_tiles_and_tensors_merge_without_nan() -> None:
    # Tiles (and tensors) whose shifts are +-1.5e308 apart: the merge's delta overflows.
    n = 3 * 2048
    x = torch.cat(
        [
            torch.full((n,), 1.5e308, dtype=torch.float64),
            torch.full((n,), -1.5e308, dtype=torch.float64),
        ]
    )
    for tensors in ([x], [x[:n], x[n:]]):
        row = fusedstats.tensor_stats(tensors).global_
        assert row["mean"] == 0.0, row
        assert row["sum"] == 0.0
        assert row["var"] == math.inf
        assert not any(math.isnan(v) for v in row.values()), row
