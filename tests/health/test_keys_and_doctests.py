"""The exponent-histogram payload keys, and the doctests of fusedstats.health."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers import property_settings

import fusedstats
from fusedstats.health.keys import (
    EXP_HIST_PREFIX,
    exponent_histogram_keys,
    exponent_histograms_of,
    log2_buckets,
)
from fusedstats.kernels import reference
from fusedstats.kernels.columns import HIST_BINS, hist_bin_exponents


@property_settings(40)
@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([1e-45, 1e-30, 1.0, 1e30, 1e300]))
def test_histogram_keys_round_trip_and_buckets_count_every_nonzero(seed, scale):
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.normal(0, scale, 500) * (rng.random(500) < 0.8))
    counts = reference.exponent_histogram(x).numpy()
    keys = exponent_histogram_keys("act/fc", counts)
    assert all(k.startswith(EXP_HIST_PREFIX + "act/fc/") for k in keys)
    assert len(keys) == int((counts > 0).sum())
    back = exponent_histograms_of({**keys, "act/fc/mean": 1.0})["act/fc"]
    labels = {
        0: "zero",
        1: "below",
        HIST_BINS - 1: "above",
        **{b: str(e) for b, e in enumerate(hist_bin_exponents()) if e is not None},
    }
    rebuilt = np.zeros(HIST_BINS, dtype=np.int64)
    for b, label in labels.items():
        rebuilt[b] = int(back.get(label, 0))
    np.testing.assert_array_equal(rebuilt, counts)
    edges, buckets = log2_buckets(back)
    assert sum(buckets) == int(counts[1:].sum())  # every nonzero finite element
    assert all(b - a == 1.0 for a, b in itertools.pairwise(edges))
    with pytest.raises(ValueError, match="280 bins"):
        exponent_histogram_keys("grad", counts[:-1])


def test_the_public_names():
    assert fusedstats.watch is fusedstats.health.watch
    assert fusedstats.optimizer_stats is fusedstats.health.optimizer_stats
    assert fusedstats.WatchHandle is fusedstats.health.WatchHandle
