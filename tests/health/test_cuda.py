"""watch and optimizer_stats on a GPU: the same numbers as on the CPU, and no host sync
in the hooks (skipped without a CUDA GPU; not yet run: no GPU was lent so far)."""

from __future__ import annotations

import math

import pytest
import torch
from tests.gpu import sync_is_an_error
from torch import nn

import fusedstats

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def model_pair():
    torch.manual_seed(0)
    cpu = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Conv1d(64, 32, 1), nn.Tanh())
    gpu = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Conv1d(64, 32, 1), nn.Tanh())
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu.cuda()


class Transpose(nn.Module):
    def forward(self, x):
        return x.transpose(1, 2)


@pytest.mark.parametrize("extended", [False, True])
def test_hooks_do_not_sync_and_match_the_cpu(extended):
    cpu, gpu = model_pair()
    xs = [torch.randn(4, 64, 16) for _ in range(3)]
    results = []
    for model, device in ((cpu, "cpu"), (gpu, "cuda")):
        lin, relu, conv, tanh = model
        seq = nn.Sequential(lin, relu, Transpose(), conv, tanh)
        handle = fusedstats.watch(
            seq, activation_grads=True, extended=extended, dormant_tau=0.1, step_by="manual"
        )
        for host_x in xs:
            x = host_x.to(device)
            if device == "cuda":
                torch.cuda.synchronize()
                with sync_is_an_error():
                    seq(x).pow(2).mean().backward()
            else:
                seq(x).pow(2).mean().backward()
            handle.step()
        results.append(handle.stats())
        handle.remove()
    on_cpu, on_gpu = results
    assert on_cpu.keys() == on_gpu.keys()
    for key, value in on_cpu.items():
        other = on_gpu[key]
        if math.isnan(value):
            assert math.isnan(other), key
        else:  # float32 GEMMs differ between devices in the last bits
            assert other == pytest.approx(value, rel=1e-4, abs=1e-6), key


def test_optimizer_stats_on_the_gpu():
    cpu, gpu = model_pair()
    stats = []
    for model in (cpu, gpu):
        device = next(model.parameters()).device
        opt = torch.optim.Adam(model.parameters())
        model[0](torch.ones(3, 16, device=device)).sum().backward()
        opt.step()
        stats.append(fusedstats.optimizer_stats(opt))
    assert stats[0].keys() == stats[1].keys()
    for key, value in stats[0].items():
        assert stats[1][key] == pytest.approx(value, rel=1e-5, abs=1e-7, nan_ok=True), key
