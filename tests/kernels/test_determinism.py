"""Same input, same bits: at any thread count, for every SIMD copy of the CPU kernel."""

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from tests.helpers import (
    CPU_CHUNK,
    TILE,
    TORCH_DTYPES,
    assert_bitwise_equal,
    assert_matches_reference,
    kernel_settings,
    property_settings,
)

import fusedstats
from fusedstats import _core

THREAD_COUNTS = (1, 2, 3)


def _tensors(seed: int, dtypes: list[str]) -> list[torch.Tensor]:
    # Over 2**17 elements in all, so that the kernel really runs in parallel, in many
    # chunks, with NaN/Inf in some tiles only (fast and slow tile paths both merge).
    rng = np.random.default_rng(seed)
    out = []
    for i, dtype in enumerate(dtypes):
        numel = int(rng.integers(1, 3)) * CPU_CHUNK + int(rng.integers(0, 3 * TILE))
        values = rng.normal(float(rng.choice([0.0, 1e4])), 2.0, numel)
        if i % 2:
            values[rng.integers(0, numel, 3)] = [np.nan, np.inf, -np.inf]
        out.append(torch.from_numpy(values).to(TORCH_DTYPES[dtype]))
    out.append(torch.zeros(0))
    return out


@property_settings(max_examples=6)
@given(
    seed=st.integers(0, 2**32 - 1),
    dtypes=st.lists(st.sampled_from(list(TORCH_DTYPES)), min_size=2, max_size=4),
)
def test_bit_identical_at_any_thread_count(seed, dtypes):
    tensors = _tensors(seed, dtypes)
    assert sum(t.numel() for t in tensors) >= 2 * CPU_CHUNK
    with kernel_settings():
        for level in _core.simd_levels():
            assert _core.set_simd_level(level)
            buffers = {}
            for n in THREAD_COUNTS:
                fusedstats.set_num_threads(n)
                buffers[n] = fusedstats.tensor_stats(tensors).as_tensor()
            for n in THREAD_COUNTS[1:]:
                assert_bitwise_equal(buffers[1], buffers[n], f"{level}: 1 vs {n} threads")
            assert_matches_reference(buffers[1], tensors)


def test_repeated_calls_are_bit_identical():
    tensors = _tensors(1, ["float32", "bfloat16", "float64"])
    first = fusedstats.tensor_stats(tensors).as_tensor()
    for _ in range(3):
        assert_bitwise_equal(first, fusedstats.tensor_stats(tensors).as_tensor())


def test_simd_levels_are_listed_and_settable():
    levels = _core.simd_levels()
    assert levels[-1] == "baseline"
    assert _core.simd_level() in levels
    assert set(levels) <= {"avx2", "baseline"}
    with kernel_settings():
        assert not _core.set_simd_level("avx9000")
        for level in levels:
            assert _core.set_simd_level(level)
            assert _core.simd_level() == level


def test_thread_count_round_trips():
    with kernel_settings():
        fusedstats.set_num_threads(3)
        assert fusedstats.get_num_threads() == 3
        fusedstats.set_num_threads(1)
        assert fusedstats.get_num_threads() == 1
