"""The non-finite step gate: found_inf written on the device, a fused optimizer skips
the step, nothing synchronizes with the host until the stats are read."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

import fusedstats

# Tensor methods that copy device data to the host (a sync on a GPU).
_SYNCING = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__")


@contextmanager
def no_host_reads() -> Iterator[list[str]]:
    """Records every call of a host-reading Tensor method inside the block."""
    calls: list[str] = []
    originals = {name: getattr(torch.Tensor, name) for name in _SYNCING}

    def counting(name: str):  # type: ignore[no-untyped-def]
        original = originals[name]

        def method(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            calls.append(name)
            return original(self, *args, **kwargs)

        return method

    for name in _SYNCING:
        setattr(torch.Tensor, name, counting(name))
    try:
        yield calls
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def _model_with_grads(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    model(torch.randn(5, 8)).pow(2).mean().backward()
    return model


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_gradient_skips_the_fused_step_with_no_sync(bad: float) -> None:
    model = _model_with_grads(0)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    found_inf = torch.zeros(())
    opt.found_inf = found_inf  # read by the fused kernel, as GradScaler arranges
    model[2].weight.grad[1, 4] = bad
    before = _snapshot(model)
    with no_host_reads() as calls:
        stats = fusedstats.gate_nonfinite(model, found_inf)
        opt.step()
    assert calls == [], f"host reads during gate + step: {calls}"
    assert found_inf.item() == 1.0
    for name, p in model.named_parameters():
        assert torch.equal(p.detach(), before[name]), f"{name} changed although the step was gated"
    assert stats is not None
    assert stats.first_nonfinite() == "2.weight"
    assert stats.global_["n_nan" if math.isnan(bad) else "n_inf"] == 1.0


def test_finite_gradients_let_the_step_through() -> None:
    model = _model_with_grads(1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    found_inf = torch.ones(())  # a stale 1 from an earlier step is overwritten
    opt.found_inf = found_inf
    before = _snapshot(model)
    with no_host_reads() as calls:
        stats = fusedstats.gate_nonfinite(model, found_inf)
        opt.step()
    assert calls == []
    assert found_inf.item() == 0.0
    assert all(not torch.equal(p.detach(), before[n]) for n, p in model.named_parameters())
    assert stats is not None and stats.first_nonfinite() is None


def test_grad_stats_writes_the_gate_too() -> None:
    model = _model_with_grads(2)
    model[0].bias.grad[3] = float("nan")
    flag = torch.zeros(())
    out = fusedstats.grad_stats(model, found_inf=flag)
    assert flag.item() == 1.0
    assert out["grad/n_nan"] == 1.0


def test_no_gradients_clear_the_gate() -> None:
    model = torch.nn.Linear(2, 2)
    flag = torch.ones(1)
    assert fusedstats.gate_nonfinite(model, flag) is None
    assert flag.item() == 0.0


def test_found_inf_must_be_a_float_tensor() -> None:
    model = _model_with_grads(3)
    with pytest.raises(TypeError, match="found_inf"):
        fusedstats.gate_nonfinite(model, torch.zeros(1, dtype=torch.int64))
    with pytest.raises(TypeError, match="found_inf"):
        fusedstats.gate_nonfinite(model, 0.0)
