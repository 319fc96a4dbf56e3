"""The CUDA kernels' own code (csrc/cuda/kernel_body.h), run on the host by
fusedstats._cuda_emu, against an exact oracle: every dtype (float8 included), every
alignment of the data pointer modulo 16, chunk edges, row mode, NaN/Inf mixtures, data
near ±1.8e308, the extended pass and its histogram, the finishing kernel's global
merge, the records API, and the ticket re-arm. These run on every commit; the GPU's own
buffers are compared with the emulation bit for bit when a recording from a GPU exists
(tests/kernels/data/, made by scripts/gpu_check.sh)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers import property_settings
from tests.kernels.emulation import (
    ALL_DTYPES,
    CHUNK,
    RECORDING,
    THREADS,
    Spec,
    assert_rows_match,
    column,
    emu,
    emu_finalize,
    emu_merge,
    emu_records,
    emu_stats,
    fsum_abs,
    make,
    oracle,
    place,
    record_bytes,
    record_gpu,
    recording_cases,
    replay_recording,
    run_emulated,
    same_bits,
)

from fusedstats import _native
from fusedstats.kernels.columns import EXTENDED_COLUMN_INDEX, HIST_BINS, NUM_COLUMNS

# ---- data -------------------------------------------------------------------------------


@st.composite
def specs(draw: st.DrawFn, row_mode: bool) -> Spec:
    dtype = draw(st.sampled_from(list(ALL_DTYPES)))
    es = ALL_DTYPES[dtype].itemsize
    if row_mode:
        row_len = draw(st.sampled_from([1, 3, 17, 255, 300, 4097, 40_000, CHUNK + 5]))
        max_rows = max(1, (2 * CHUNK + 300) // row_len)
        shape: tuple[int, ...] = (draw(st.integers(0, max_rows)), row_len)
    else:
        numel = draw(
            st.one_of(
                st.integers(0, 40),
                st.integers(0, 5000),
                st.builds(
                    lambda k, r: max(k * CHUNK + r, 0),
                    st.integers(1, 2),
                    st.one_of(st.sampled_from([-1, 0, 1]), st.integers(-300, 300)),
                ),
            )
        )
        shape = (numel,)
    offset_mean = draw(st.sampled_from([0.0, 1.0, -3.0, 100.0, 1e4, -1e4, 1e6]))
    return Spec(
        dtype=dtype,
        shape=shape,
        offset=draw(st.sampled_from(range(0, 16, es))),
        seed=draw(st.integers(0, 2**32 - 1)),
        mean=offset_mean,
        scale=abs(offset_mean) * 10.0 ** draw(st.integers(-6, 0)) if offset_mean else 1.0,
        nan_frac=draw(st.sampled_from([0.0, 0.0, 1e-4, 0.05])),
        inf_frac=draw(st.sampled_from([0.0, 0.0, 1e-4, 0.02])),
        zero_rows=draw(st.sampled_from([0.0, 0.3])) if row_mode else 0.0,
        outliers=draw(st.sampled_from([0.0, 0.0, 1e-3])),
        huge=dtype == "float64" and draw(st.sampled_from([False, False, False, True])),
    )


@dataclass(frozen=True)
class Case:
    specs: tuple[Spec, ...]
    row_mode: bool
    extended: bool


@st.composite
def cases(draw: st.DrawFn) -> Case:
    row_mode = draw(st.booleans())
    n = draw(st.integers(1, 4))
    return Case(
        specs=tuple(draw(specs(row_mode)) for _ in range(n)),
        row_mode=row_mode,
        extended=draw(st.booleans()),
    )


def dormant_threshold(tensors: list[torch.Tensor], row_lens: list[int]) -> float:
    """A threshold in the widest gap between the rows' mean |x|: no row sits near it,
    so rounding cannot decide a row's side."""
    means = []
    for x, r in zip(tensors, row_lens, strict=True):
        if r and x.numel():
            v = x.reshape(-1, r).to(torch.float64)
            v = torch.where(torch.isfinite(v), v.abs(), torch.zeros_like(v))
            means += [fsum_abs(row) / r for row in v.tolist()]
    u = sorted(set(m for m in means if math.isfinite(m)))
    if len(u) < 2:
        return (u[0] * 2 + 1.0) if u else 1.0
    gaps = [(b - a) / max(abs(b), 1e-300) for a, b in itertools.pairwise(u)]
    i = int(np.argmax(gaps))
    return (u[i] + u[i + 1]) / 2


# ---- the main property ------------------------------------------------------------------


@property_settings(max_examples=30)
@given(case=cases())
def test_emulated_kernels_match_the_exact_oracle(case: Case) -> None:
    tensors = [make(s) for s in case.specs]
    row_lens = [s.shape[1] for s in case.specs] if case.row_mode else None
    threshold = dormant_threshold(tensors, row_lens) if row_lens else 0.0
    rows, hist = emu_stats(tensors, row_lens, threshold, case.extended)
    want, want_hist = oracle(tensors, row_lens, threshold)
    assert_rows_match(rows, want)
    if case.extended:
        np.testing.assert_array_equal(hist, want_hist)


# ---- each way a thread's span can go ----------------------------------------------------


def _outliers_at_thread_starts(numel: int, every: int) -> torch.Tensor:
    """float32 data where thread t's first element (element 4t of an aligned chunk) is
    1000 standard deviations away, for every `every`-th thread."""
    rng = np.random.default_rng(7)
    v = rng.normal(5.0, 1e-3, numel)
    for t in range(0, THREADS, every):
        for chunk_start in range(0, numel, CHUNK):
            if chunk_start + 4 * t < numel:
                v[chunk_start + 4 * t] = 5.0 + 1.0
    return place(torch.from_numpy(v).float(), 0)


@pytest.mark.parametrize(
    ("what", "extended", "path"),
    [
        ("normal data", False, "fast"),
        ("NaN and Inf", False, "slow"),
        ("first element an outlier, extended", True, "two_pass"),
        ("first element an outlier in a long row", False, "two_pass"),
        ("values near 1.8e308", False, "slow"),
    ],
)
def test_every_span_path_is_taken_and_exact(what: str, extended: bool, path: str) -> None:
    rng = np.random.default_rng(3)
    row_lens = None
    if what == "normal data":
        tensors = [place(torch.from_numpy(rng.normal(1e4, 1e-2, 3 * CHUNK + 7)), 8)]
    elif what == "NaN and Inf":
        v = rng.normal(0, 1, 2 * CHUNK)
        v[::997] = np.nan
        v[5::1009] = -np.inf
        tensors = [place(torch.from_numpy(v).half(), 6)]
    elif what.startswith("first element an outlier, extended"):
        tensors = [_outliers_at_thread_starts(2 * CHUNK, 3)]
    elif what.endswith("long row"):
        # 400,000-element rows: one chunk per row, ~1560 elements per thread, so the
        # one-sweep check can fire (it cannot with <= 1000 per thread: span.h); each
        # thread's first element (element 4t of the row) is its only outlier.
        v = rng.normal(5.0, 1e-3, (2, 400_000))
        v[:, 4 * np.arange(THREADS)] = 6.0
        tensors, row_lens = [place(torch.from_numpy(v).float(), 0)], [400_000]
    else:
        v = rng.choice([1.5e308, -1.5e308, 1e308, -1e308, 3.0], 4 * THREADS + 3)
        tensors = [place(torch.from_numpy(v), 8)]
    emu.reset_span_outcomes()
    rows, hist = emu_stats(tensors, row_lens, 0.5, extended)
    outcomes = emu.span_outcomes()
    assert outcomes[path] > 0, f"{what}: no thread took the {path} path ({outcomes})"
    want, want_hist = oracle(tensors, row_lens, 0.5)
    assert_rows_match(rows, want, what)
    if extended:
        np.testing.assert_array_equal(hist, want_hist)


def test_huge_values_never_give_nan() -> None:
    """Review F14 on the device code: representable answers stay exact, overflow is ±inf."""
    cases = {
        "two 1e308": ([1e308, 1e308], {"mean": 1e308, "var": 0.0, "sum": math.inf}),
        "±1.5e308 x3": ([1.5e308] * 3 + [-1.5e308] * 3, {"sum": 0.0, "mean": 0.0}),
        "±1e308": ([1e308, -1e308], {"mean": 0.0, "sum": 0.0}),
    }
    for name, (values, expected) in cases.items():
        x = place(torch.tensor(values, dtype=torch.float64), 0)
        rows, _ = emu_stats([x], extended=True)
        assert not np.isnan(rows[0, : NUM_COLUMNS - 1]).any(), f"{name}: NaN in {rows[0]}"
        for field, value in expected.items():
            assert rows[0, EXTENDED_COLUMN_INDEX[field]] == value, f"{name}: {field}"
        want, _ = oracle([x])
        assert_rows_match(rows, want, name)


# ---- many tensors: the finishing kernel's global merge ----------------------------------


def test_global_merge_over_many_tensors() -> None:
    rng = np.random.default_rng(11)
    dtypes = list(ALL_DTYPES.values())
    tensors = []
    for i in range(700):  # > 2 x 256 tensors: the strided per-thread merge, then the tree
        n = int(rng.integers(0, 60))
        v = rng.normal(float(rng.choice([0.0, 1e3])), 2.0, n)
        dtype = dtypes[i % len(dtypes)]
        es = dtype.itemsize
        tensors.append(place(torch.from_numpy(v).to(dtype), es * int(rng.integers(0, 16 // es))))
    tensors.append(place(torch.from_numpy(rng.normal(1e4, 1e-2, CHUNK + 3)), 8))
    for extended in (False, True):
        for xs in (tensors, []):  # and no tensor at all: one block, the empty global row
            rows, hist = emu_stats(xs, extended=extended)
            want, want_hist = oracle(xs)
            assert_rows_match(rows, want, f"{len(xs)} tensors, extended={extended}")
            if extended:
                np.testing.assert_array_equal(hist, want_hist)


# ---- the ticket re-arm (review F5) ------------------------------------------------------


def test_a_stale_ticket_does_not_corrupt_the_next_launch() -> None:
    rng = np.random.default_rng(5)
    tensors = [place(torch.from_numpy(rng.normal(0, 1, n)), 0) for n in (10, CHUNK + 1, 3)]
    table = emu.plan(
        [t.data_ptr() for t in tensors], [t.numel() for t in tensors], [1] * 3, [0] * 3
    )
    workspace = torch.zeros(emu.workspace_bytes(table[1], 3, False), dtype=torch.uint8)
    fresh, _ = emu_stats(tensors, workspace=workspace)
    # As after a launch that shared the workspace and was cut short or overlapped:
    for stale in (1, 2, 3, 7, 2**32 - 1):
        workspace[:4] = torch.tensor([stale], dtype=torch.int64).view(torch.uint8)[:4]
        again, _ = emu_stats(tensors, workspace=workspace)
        assert same_bits(again, fresh), f"stale ticket {stale} changed the result"
    # The controls, without the memset of the launch sequence: a ticket past the grid
    # means no block is ever last (the global row is never written); a ticket of 1
    # makes block 1 "last" while block 2's slot still holds another call's record.
    workspace[:4] = torch.tensor([7], dtype=torch.int64).view(torch.uint8)[:4]
    broken, _ = emu_stats(tensors, workspace=workspace, rearm=False)
    assert np.isnan(broken[-1]).all(), "the global row was written although no block was last"
    assert same_bits(broken[:-1], fresh[:-1])
    others = [place(torch.from_numpy(rng.normal(5, 1, t.numel())), 0) for t in tensors]
    emu_stats(others, workspace=workspace)
    workspace[:4] = torch.tensor([1], dtype=torch.int64).view(torch.uint8)[:4]
    broken, _ = emu_stats(tensors, workspace=workspace, rearm=False)
    assert not same_bits(broken[-1], fresh[-1])
    assert same_bits(broken[:-1], fresh[:-1])


# ---- records: fresh, accumulated, merged, finalized --------------------------------------


def _records_case(rng: np.random.Generator, n: int, base: int) -> list[torch.Tensor]:
    dtypes = list(ALL_DTYPES)
    out = []
    for i in range(n):
        numel = int(rng.choice([0, 1, 7, 300, CHUNK - 1, CHUNK + 9]))
        v = rng.normal(float(rng.choice([0.0, 50.0])), 3.0, numel)
        if i % 3 == 1 and numel > 10:
            v[rng.integers(0, numel, 2)] = [np.nan, np.inf]
        dtype = dtypes[(i + base) % len(dtypes)]
        out.append(place(torch.from_numpy(v).to(ALL_DTYPES[dtype]), 0))
    return out


@pytest.mark.parametrize("extended", [False, True])
def test_records_accumulate_then_finalize(extended: bool) -> None:
    rng = np.random.default_rng(21)
    a = _records_case(rng, 5, 0)
    b = [place(torch.from_numpy(rng.normal(-2.0, 1.0, x.numel())).to(x.dtype), 0) for x in a]
    records = emu_records(a, extended=extended)
    records = emu_records(b, records, extended=extended)
    rows, hist = emu_finalize(records, extended)
    both = [torch.cat([x.reshape(-1), y.reshape(-1)]) for x, y in zip(a, b, strict=True)]
    want, want_hist = oracle(both)
    assert_rows_match(rows, want, "accumulated records")
    if extended:
        np.testing.assert_array_equal(hist, want_hist)


@pytest.mark.parametrize("extended", [False, True])
def test_tensor_stats_rows_equal_finalized_records_bit_for_bit(extended: bool) -> None:
    tensors = _records_case(np.random.default_rng(2), 9, 1)
    stats, stats_hist = emu_stats(tensors, extended=extended)
    rows, hist = emu_finalize(emu_records(tensors, extended=extended), extended)
    assert same_bits(stats, rows)
    if extended:
        np.testing.assert_array_equal(stats_hist, hist)


@pytest.mark.parametrize("extended", [False, True])
def test_finalize_matches_the_cpu_core_per_tensor_bit_for_bit(extended: bool) -> None:
    tensors = _records_case(np.random.default_rng(4), 8, 2)
    records = emu_records(tensors, extended=extended)
    rows, hist = emu_finalize(records, extended)
    core = _native.core
    cpu_rows = np.full_like(rows, np.nan)
    cpu_hist = np.full_like(hist, -1)
    core.finalize_records(
        records.data_ptr(),
        len(tensors),
        extended,
        cpu_rows.ctypes.data,
        cpu_hist.ctypes.data if extended else 0,
    )
    # Same finalize functions on the same records: identical rows; the global row merges
    # in another order (a tree here, sequential on the CPU), so it is checked exactly
    # where exact and against the oracle elsewhere.
    assert same_bits(rows[:-1], cpu_rows[:-1])
    want, want_hist = oracle(tensors)
    assert_rows_match(rows, want)
    if extended:
        np.testing.assert_array_equal(hist, cpu_hist)
        np.testing.assert_array_equal(hist, want_hist)


@pytest.mark.parametrize("extended", [False, True])
def test_merge_matches_the_cpu_core_bit_for_bit(extended: bool) -> None:
    rng = np.random.default_rng(9)
    n, n_sources = 6, 4
    shards = [_records_case(rng, n, s) for s in range(n_sources)]
    src = torch.cat([emu_records(s, extended=extended) for s in shards])
    include = torch.from_numpy((rng.random((n_sources, n)) < 0.7).astype(np.uint8))
    include[:, 0] = 0  # a tensor no source counts: an empty record
    for mask in (include, None):
        merged = emu_merge(src, n_sources, n, extended, mask)
        cpu = torch.full_like(merged, 0xA5)
        _native.core.merge_records(
            src.data_ptr(),
            n_sources,
            n,
            extended,
            mask.data_ptr() if mask is not None else 0,
            cpu.data_ptr(),
        )
        assert torch.equal(merged, cpu), "merge differs from the CPU core's"
        rows, _ = emu_finalize(merged, extended)
        parts = [
            torch.cat(
                [
                    shards[s][t].reshape(-1).double()
                    for s in range(n_sources)
                    if mask is None or mask[s, t]
                ]
                or [torch.zeros(0, dtype=torch.float64)]
            )
            for t in range(n)
        ]
        want, _ = oracle(parts)
        assert_rows_match(rows, want, f"merged (mask: {mask is not None})")
        expected_numel = 0 if mask is not None else sum(s[0].numel() for s in shards)
        assert column(rows, "numel")[0] == expected_numel


def test_record_layout_matches_the_cpu_core() -> None:
    assert record_bytes(False) == 14 * 8
    assert record_bytes(True) == 14 * 8 + 7 * 8 + HIST_BINS * 8


# ---- against a GPU --------------------------------------------------------------------


@pytest.mark.skipif(
    not RECORDING.exists(),
    reason="no GPU recording committed yet: on a machine with a GPU, scripts/gpu_check.sh "
    "records the device's buffers into tests/kernels/data/gpu_emulation_record.npz",
)
def test_emulation_reproduces_the_recorded_gpu_buffers_bit_for_bit() -> None:
    replay_recording(RECORDING)


def test_the_recorder_and_the_replay_round_trip(tmp_path: Path) -> None:
    """The recording's format, its shared inputs and the replay, with the emulation in
    the GPU's place; one flipped bit must then fail the replay."""
    path = tmp_path / "recording.npz"
    summary = record_gpu(path, run=run_emulated)
    assert summary["cases"] == len(recording_cases()) == summary["bitwise_equal"]
    replay_recording(path)
    data = dict(np.load(path, allow_pickle=False))
    rows = data["case4_rows"].copy()
    rows.view(np.int64)[0, EXTENDED_COLUMN_INDEX["var"]] ^= 1  # the last bit of one value
    data["case4_rows"] = rows
    np.savez(path, **data)
    with pytest.raises(AssertionError, match="rows differ"):
        replay_recording(path)
