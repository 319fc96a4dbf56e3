"""A tensor of more than 2**31 elements: every index and count must be 64-bit."""

import os

import pytest
import torch

import fusedstats

NUMEL = 2**31 + 1000
NEEDED_BYTES = 10 * 2**30  # the 4 GiB tensor, with room for the rest of the process


def _free_bytes(device: str) -> int:
    if device == "cuda":
        return torch.cuda.mem_get_info()[0] if torch.cuda.is_available() else 0
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on Linux: do not risk it
        return 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)],
)
def test_more_than_2_pow_31_elements(device):
    if _free_bytes(device) < NEEDED_BYTES:
        pytest.skip(f"needs ~10 GiB of free {device} memory")
    x = torch.zeros(NUMEL, dtype=torch.bfloat16, device=device)
    # Known values on both sides of index 2**31, so a 32-bit index would miss or alias them.
    x[0] = 1.5
    x[2**31 - 1] = float("nan")
    x[2**31] = -2.0
    x[2**31 + 5] = float("inf")
    x[NUMEL - 1] = 3.0
    stats = fusedstats.tensor_stats([x])
    row, g = stats.per_tensor["0"], stats.global_
    assert row["numel"] == NUMEL
    assert (row["n_nan"], row["n_inf"]) == (1, 1)
    assert row["n_finite"] == NUMEL - 2
    assert row["n_zero"] == NUMEL - 5
    assert row["sum"] == 2.5
    assert row["l1"] == 6.5
    assert (row["min"], row["max"], row["abs_max"]) == (-2.0, 3.0, 3.0)
    assert row["mean"] == pytest.approx(2.5 / (NUMEL - 2), rel=1e-12)
    assert row["norm"] == pytest.approx((1.5**2 + 2.0**2 + 3.0**2) ** 0.5, rel=1e-12)
    assert g == row
