"""The exact pure-torch fallback (CUDA tensors without a usable fusedstats._cuda) against
the reference, run here on CPU tensors: the same code runs on the device."""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers import (
    assert_extended_close,
    assert_matches_reference,
    cases,
    make_tensors,
    property_settings,
    reference_buffer,
)

from fusedstats.kernels import fallback
from fusedstats.kernels.columns import COLUMN_INDEX


@property_settings(max_examples=60)
@given(case=cases(max_tensors=40, libs=("torch",)))
def test_matches_reference(case) -> None:
    tensors = make_tensors(case)
    rows, hist = fallback.stats_buffers(tensors)
    assert hist is None and rows.device == tensors[0].device
    assert_matches_reference(rows, tensors)


@property_settings(max_examples=20)
@given(case=cases(max_tensors=8, libs=("torch",)))
def test_extended_matches_reference(case) -> None:
    tensors = make_tensors(case)
    rows, hist = fallback.stats_buffers(tensors, extended=True)
    assert_extended_close(rows, hist, tensors)


@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 30),
    dead=st.sets(st.integers(0, 39)),
    threshold=st.sampled_from([0.0, 1e-6, 0.5]),
)
@property_settings(max_examples=40)
def test_dormant_rows(rows: int, cols: int, dead: set[int], threshold: float) -> None:
    w = torch.randn(rows, cols, dtype=torch.float64)
    for r in dead:
        if r < rows:
            w[r] = 0.0
    w[0, 0] = math.nan
    got, _ = fallback.stats_buffers([w, torch.randn(5)], [cols, 0], threshold)
    want = reference_buffer([w], [cols], threshold)
    col = COLUMN_INDEX["n_dormant_rows"]
    assert got[0, col].item() == want[0, col]
    assert got[-1, col].item() == want[0, col]


def test_float8_inputs() -> None:
    x = torch.randn(100).to(torch.float8_e4m3fn)
    rows, _ = fallback.stats_buffers([x])
    assert_matches_reference(rows, [x.to(torch.float64)])


@property_settings(max_examples=15)
@given(case=cases(max_tensors=10, libs=("torch",)), extended=st.booleans())
def test_dispatch_torch_path_is_the_fallback(case, extended: bool) -> None:
    # What CUDA tensors without a usable _cuda get, run here on CPU tensors: the same
    # buffers as the CPU kernel's, to the tolerance.
    from fusedstats.kernels import dispatch, inputs

    tensors = make_tensors(case)
    prep = inputs.prepare(tensors, None)
    out, hist = dispatch.output_buffers(prep, extended, None, None)
    dispatch.torch_path(prep, out, hist, 0.0, extended)
    if extended:
        assert_extended_close(out, hist, tensors)
    else:
        assert_matches_reference(out, tensors)
