"""TensorStats: the views of the result buffer (global_, per_tensor, to_dict, out=)."""

import math

import numpy as np
import pytest
import torch
from tests.helpers import assert_bitwise_equal

import fusedstats
from fusedstats import COLUMNS, FIELDS, NUM_COLUMNS


def _stats(**kwargs):
    a = torch.tensor([3.0, 4.0])
    b = torch.tensor([[1.0, math.nan], [0.0, -2.0]], dtype=torch.float64)
    return fusedstats.tensor_stats([a, b], **kwargs)


def test_names_default_to_positions():
    stats = _stats()
    assert stats.names == ("0", "1")
    assert list(stats.per_tensor) == ["0", "1"]
    assert len(stats) == 2
    assert "n_tensors=2" in repr(stats)


def test_views_agree_with_the_buffer():
    stats = _stats(names=["a", "b"])
    buffer = stats.as_tensor()
    assert buffer.shape == (3, NUM_COLUMNS)
    assert buffer.dtype == torch.float64
    host = stats.host()
    assert isinstance(host, np.ndarray)
    assert host.dtype == np.float64
    assert stats.host() is host  # read once, then reused
    assert set(stats.global_) == set(FIELDS)
    for i, name in enumerate(["a", "b", None]):
        row = stats.global_ if name is None else stats.per_tensor[name]
        for field in FIELDS:
            want = float(buffer[i, COLUMNS.index(field)])
            assert row[field] == want or (math.isnan(row[field]) and math.isnan(want))
    assert stats.per_tensor["a"]["norm"] == 5.0
    assert stats.per_tensor["b"]["n_nan"] == 1.0


def test_to_dict():
    stats = _stats(names=["a", "b"])
    flat = stats.to_dict(prefix="p/")
    assert set(flat) == {f"p/{f}" for f in FIELDS}
    assert flat["p/numel"] == 6.0
    full = stats.to_dict(prefix="p/", per_tensor=True)
    assert set(full) == set(flat) | {f"p/{f}/{n}" for f in FIELDS for n in ("a", "b")}
    assert full["p/min/b"] == -2.0
    assert stats.to_dict()["max"] == 4.0  # no prefix by default


@pytest.mark.parametrize("kind", ["torch", "numpy"])
def test_out_is_filled_and_returned(kind):
    if kind == "torch":
        items = [torch.randn(100), torch.randn(3, 5, dtype=torch.bfloat16)]
        out = torch.full((3, NUM_COLUMNS), math.nan, dtype=torch.float64)
    else:
        items = [np.random.default_rng(0).normal(size=100), np.ones(7, dtype=np.float16)]
        out = np.full((3, NUM_COLUMNS), -1.0)
    stats = fusedstats.tensor_stats(items, out=out)
    assert stats.as_tensor() is out
    assert_bitwise_equal(out, fusedstats.tensor_stats(items).as_tensor())
