"""CUDA tensor leaves: the same numbers as their CPU copies, moved to host once per call."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fusedstats.rollout import RolloutStats

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _infos(device: str) -> list[dict[str, object]]:
    g = torch.Generator().manual_seed(0)
    return [
        {
            "reward": torch.randn(1, generator=g).to(device),
            "agents": {"hp": torch.rand(i % 4 + 1, generator=g).to(device)},
            "flag": torch.tensor(i % 2 == 0).to(device),
            "mixed": torch.ones(2).to(device) if i % 3 else 1.5,
        }
        for i in range(64)
    ]


def test_cuda_tensors_match_their_cpu_copies() -> None:
    on_gpu, on_cpu = RolloutStats(), RolloutStats()
    on_gpu.add(_infos("cuda"))
    on_cpu.add(_infos("cpu"))
    keys = on_cpu.keys()
    assert on_gpu.keys() == keys
    for key in keys:
        assert np.array_equal(on_gpu.get(key), on_cpu.get(key))
    assert on_gpu.summary() == on_cpu.summary()


def test_one_device_to_host_copy_per_call() -> None:
    """All tensor leaves reach the host in one copy (a sync per leaf would be slow)."""
    stats = RolloutStats()
    infos = _infos("cuda")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        stats.add(infos)
        torch.cuda.synchronize()
    copies = [e for e in prof.events() if "Memcpy DtoH" in e.name]
    assert len(copies) == 1, [e.name for e in copies]
