"""Bad inputs raise the documented exception, naming the offending item (index and name)."""

import numpy as np
import pytest
import torch

import fusedstats
from fusedstats import NUM_COLUMNS

GOOD = [torch.ones(3), torch.zeros(2, 2)]
NAMES = ["w", "b", "bad"]


def _raises(exc, bad, match=r"item 2 \('bad'\)"):
    """``bad`` placed third in a list of good tensors, with names, must raise ``exc``
    naming it by index and name; without names, by index."""
    with pytest.raises(exc, match=match):
        fusedstats.tensor_stats([*GOOD, bad], names=NAMES)
    with pytest.raises(exc, match=r"item 2\b"):
        fusedstats.tensor_stats([*GOOD, bad])


@pytest.mark.parametrize(
    "bad",
    [
        torch.ones(3, dtype=torch.int32),
        torch.ones(3, dtype=torch.int64),
        torch.ones(3, dtype=torch.uint8),
        torch.ones(3, dtype=torch.bool),
        torch.ones(3, dtype=torch.complex64),
        torch.ones(3, dtype=torch.int16),
        np.ones(3, dtype=np.int32),
        np.ones(3, dtype=np.complex128),
        np.ones(3, dtype=bool),
        np.array(["a", "b"]),
    ],
    ids=lambda x: str(x.dtype),
)
def test_unsupported_dtype_is_a_type_error(bad):
    _raises(TypeError, bad, match=r"item 2 \('bad'\) has dtype")


@pytest.mark.parametrize(
    "bad", [[1.0, 2.0], None, "abc", 3.0, np.float32(1.0)], ids=lambda x: type(x).__name__
)
def test_item_that_is_not_a_tensor_is_a_type_error(bad):
    _raises(TypeError, bad)


@pytest.mark.parametrize(
    "bad",
    [torch.ones(3), np.ones(3), 3.0, None, "abc", {"w": torch.ones(3)}],
    ids=["tensor", "array", "float", "none", "str", "dict"],
)
def test_not_a_list_of_tensors_is_a_type_error(bad):
    with pytest.raises(TypeError, match="tensor_stats expects a list"):
        fusedstats.tensor_stats(bad)


def test_sparse_tensor_is_a_type_error():
    _raises(TypeError, torch.eye(3).to_sparse())


def test_meta_tensor_is_a_type_error():
    # A meta tensor has no data to read (a TypeError, like the other data-less inputs).
    _raises(TypeError, torch.ones(3, device="meta"), match=r"item 2 \('bad'\).*meta")
    with pytest.raises(TypeError, match="item 0"):
        fusedstats.tensor_stats([torch.ones(3, device="meta")])


def test_numpy_with_a_meta_tensor_is_a_type_error():
    with pytest.raises(TypeError, match=r"item 1 \('m'\)"):
        fusedstats.tensor_stats([np.ones(3), torch.ones(3, device="meta")], names=["a", "m"])


def test_names_of_the_wrong_length():
    with pytest.raises(ValueError, match="1 names for 2 tensors"):
        fusedstats.tensor_stats(GOOD, names=["only"])
    with pytest.raises(ValueError, match="3 names for 2 tensors"):
        fusedstats.tensor_stats(GOOD, names=NAMES)


def test_duplicate_names():
    with pytest.raises(ValueError, match="duplicate tensor name 'w'"):
        fusedstats.tensor_stats([*GOOD, torch.ones(1)], names=["w", "b", "w"])


def _torch_out(**kwargs):
    return torch.zeros(len(GOOD) + 1, NUM_COLUMNS, dtype=torch.float64, **kwargs)


@pytest.mark.parametrize(
    "out",
    [
        torch.zeros(len(GOOD), NUM_COLUMNS, dtype=torch.float64),  # one row short
        torch.zeros(len(GOOD) + 1, NUM_COLUMNS - 1, dtype=torch.float64),
        torch.zeros((len(GOOD) + 1) * NUM_COLUMNS, dtype=torch.float64),  # flat
        torch.zeros(len(GOOD) + 1, NUM_COLUMNS, dtype=torch.float32),
        torch.zeros(NUM_COLUMNS, len(GOOD) + 1, dtype=torch.float64).t(),  # not contiguous
        _torch_out(device="meta"),
        np.zeros((len(GOOD) + 1, NUM_COLUMNS)),  # numpy buffer for torch inputs
        [[0.0] * NUM_COLUMNS] * (len(GOOD) + 1),
    ],
    ids=["short", "narrow", "flat", "float32", "transposed", "meta", "numpy", "list"],
)
def test_bad_out_buffer_for_torch_inputs(out):
    with pytest.raises(ValueError, match="out must be"):
        fusedstats.tensor_stats(GOOD, out=out)


def test_bad_out_buffer_for_numpy_inputs():
    arrays = [np.ones(4), np.ones(5, dtype=np.float32)]
    good = np.zeros((3, NUM_COLUMNS))
    read_only = good.copy()
    read_only.flags.writeable = False
    for out in (
        _torch_out(),  # torch buffer for numpy inputs
        np.zeros((3, NUM_COLUMNS), dtype=np.float32),
        np.zeros((2, NUM_COLUMNS)),
        np.zeros((NUM_COLUMNS, 3)).T,
        read_only,
    ):
        with pytest.raises(ValueError, match="out must be"):
            fusedstats.tensor_stats(arrays, out=out)
    assert fusedstats.tensor_stats(arrays, out=good).as_tensor() is good


@pytest.mark.parametrize("n", [0, -1, "2", 2.0, True, None])
def test_set_num_threads_rejects_non_positive_and_non_int(n):
    before = fusedstats.get_num_threads()
    with pytest.raises(ValueError, match="set_num_threads"):
        fusedstats.set_num_threads(n)
    assert fusedstats.get_num_threads() == before
