"""The pure-torch reference itself: known values, and the inputs tensor_stats accepts."""

import math

import numpy as np
import torch
from tests.helpers import assert_bitwise_equal, to_numpy

import fusedstats
from fusedstats import COLUMNS
from fusedstats.kernels import reference


def test_known_values():
    buf = reference.stats_buffer([torch.tensor([1.0, -3.0, math.nan]), torch.zeros(0)])
    row = dict(zip(COLUMNS, buf[0].tolist(), strict=True))
    assert (row["numel"], row["n_nan"], row["n_finite"], row["sum"]) == (3, 1, 2, -2.0)
    assert (row["var"], row["var_pop"], row["abs_max"]) == (8.0, 4.0, 3.0)
    assert buf.shape == (3, len(COLUMNS))
    assert_bitwise_equal(buf[0], buf[2], "single non-empty tensor: row vs global")


def test_global_dict_matches_the_buffer():
    tensors = [torch.randn(50), torch.randn(7, dtype=torch.float64)]
    as_dict = reference.tensor_stats(tensors)
    last = reference.stats_buffer(tensors)[-1].tolist()
    assert as_dict == {f: last[COLUMNS.index(f)] for f in fusedstats.FIELDS}


def test_accepts_byte_swapped_numpy_arrays():
    # BUG (kernels/reference.py, _as_torch): torch.from_numpy rejects non-native byte
    # order ("given numpy array has byte order different from the native byte order"),
    # although tensor_stats accepts such arrays.
    native = np.arange(10.0)
    swapped = native.astype(native.dtype.newbyteorder("S"))
    expected = to_numpy(reference.stats_buffer([native]))
    assert_bitwise_equal(to_numpy(reference.stats_buffer([swapped])), expected)
