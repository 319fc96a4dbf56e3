"""optimizer_stats against float64 statistics of the optimizer's state tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tests.health.compare import expected
from tests.helpers import field_mismatch, property_settings
from torch import nn

import fusedstats
from fusedstats import FIELDS
from fusedstats.health import optimizer as optimizer_module
from fusedstats.health.optimizer import merge_rows, state_tensors

OPTIMIZERS = {
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, amsgrad=True),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9),
    "adagrad": lambda p: torch.optim.Adagrad(p, lr=1e-2),
    "rmsprop": lambda p: torch.optim.RMSprop(p, lr=1e-2, momentum=0.5, centered=True),
}
KINDS = {
    "adam": ["exp_avg", "exp_avg_sq"],
    "adamw": ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
    "sgd_momentum": ["momentum_buffer"],
    "adagrad": ["sum"],
    "rmsprop": ["square_avg", "momentum_buffer", "grad_avg"],
}


def model_for(seed: int, dtype=torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 3, bias=False)).to(dtype)


def train(model: nn.Module, opt, rng: np.random.Generator, steps: int, nan_grad: bool = False):
    for step in range(steps):
        x = torch.from_numpy(rng.normal(0, 3, (8, 7))).to(next(model.parameters()).dtype)
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        if nan_grad and step == steps - 1:
            model[0].bias.grad[1] = float("nan")
        opt.step()


def assert_matches(stats, key_prefix, tensors, suffix=""):
    want, _ = expected(tensors)
    rtol = 1e-9 if all(t.dtype == torch.float64 for t in tensors) else 1e-6
    problems = []
    for f in FIELDS:
        why = field_mismatch(f, stats[f"{key_prefix}{f}{suffix}"], want, rtol)
        if why:
            problems.append(f"{key_prefix}{f}{suffix}: {why}")
    assert not problems, "\n".join(problems)


@property_settings(30)
@given(
    name=st.sampled_from(list(OPTIMIZERS)),
    seed=st.integers(0, 2**31 - 1),
    steps=st.integers(1, 4),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    nan_grad=st.booleans(),
)
def test_every_kind_and_the_total_match_float64(name, seed, steps, dtype, nan_grad):
    model = model_for(seed % 1000, dtype)
    opt = OPTIMIZERS[name](model.parameters())
    train(model, opt, np.random.default_rng(seed), steps, nan_grad)
    stats = fusedstats.optimizer_stats(opt, per_parameter=True, model=model)
    params = dict(model.named_parameters())
    everything = []
    for kind in KINDS[name]:
        tensors = [opt.state[p][kind] for p in params.values()]
        everything += tensors
        assert_matches(stats, f"optim/{kind}/", tensors)
        for pname, p in params.items():
            assert_matches(stats, f"optim/{kind}/", [opt.state[p][kind]], f"/{pname}")
    assert_matches(stats, "optim/", everything)
    assert {k.split("/")[1] for k in stats if k.count("/") >= 2} == set(KINDS[name])
    assert "optim/step/numel" not in stats  # the step counter is bookkeeping
    if nan_grad and name != "sgd_momentum":
        assert stats["optim/n_nan"] > 0


def test_no_state_gives_nothing():
    model = model_for(0)
    assert fusedstats.optimizer_stats(torch.optim.SGD(model.parameters(), lr=0.1)) == {}
    adam = torch.optim.Adam(model.parameters())
    assert fusedstats.optimizer_stats(adam) == {}  # before the first step
    model(torch.randn(2, 7)).sum().backward()
    plain_sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    plain_sgd.step()  # momentum 0: momentum_buffer is None
    assert fusedstats.optimizer_stats(plain_sgd) == {}
    assert not adam.state  # reading did not create state entries


def test_one_fused_call_over_all_state(monkeypatch):
    calls = []
    real = optimizer_module.tensor_stats

    def counting(tensors, names=None, **kwargs):
        calls.append(len(list(tensors)))
        return real(tensors, names, **kwargs)

    monkeypatch.setattr(optimizer_module, "tensor_stats", counting)
    model = model_for(0)
    opt = torch.optim.AdamW(model.parameters(), amsgrad=True)
    train(model, opt, np.random.default_rng(0), 2)
    fusedstats.optimizer_stats(opt, per_parameter=True)
    assert calls == [3 * 3]  # 3 parameters x 3 kinds, one call


def test_parameter_names():
    model = model_for(0)
    opt = torch.optim.Adam(model.parameters())
    train(model, opt, np.random.default_rng(0), 1)
    by_index = fusedstats.optimizer_stats(opt, per_parameter=True, prefix="o/")
    assert "o/exp_avg/norm/0.2" in by_index  # <group>.<index>
    named = fusedstats.optimizer_stats(opt, per_parameter=True, model=model)
    assert "optim/exp_avg/norm/2.weight" in named
    opt2 = torch.optim.Adam(model.named_parameters())
    train(model, opt2, np.random.default_rng(0), 1)
    assert "optim/exp_avg_sq/mean/0.bias" in fusedstats.optimizer_stats(opt2, per_parameter=True)
    assert by_index["o/exp_avg/norm/0.2"] == named["optim/exp_avg/norm/2.weight"]


def test_complex_and_list_state():
    w = nn.Parameter(torch.randn(4, dtype=torch.complex64))
    opt = torch.optim.Adam([w])
    (w.abs() ** 2).sum().backward()
    opt.step()
    stats = fusedstats.optimizer_stats(opt, per_parameter=True)
    assert stats["optim/exp_avg/numel"] == 8.0  # real and imaginary parts
    assert_matches(stats, "optim/exp_avg/", [torch.view_as_real(opt.state[w]["exp_avg"])])
    lin = nn.Linear(3, 1)
    lbfgs = torch.optim.LBFGS(lin.parameters(), history_size=3, max_iter=4)
    x, y = torch.randn(16, 3), torch.randn(16, 1)

    def closure():
        lbfgs.zero_grad()
        loss = (lin(x) - y).pow(2).mean()
        loss.backward()
        return loss

    lbfgs.step(closure)
    kinds = {kind for kind, _, _ in state_tensors(lbfgs)}
    assert {"d", "old_dirs", "old_stps"} <= kinds
    found = [t for kind, _, t in state_tensors(lbfgs) if kind == "old_dirs"]
    assert len(found) == len(lbfgs.state[lin.weight]["old_dirs"])
    assert_matches(fusedstats.optimizer_stats(lbfgs), "optim/old_dirs/", found)


def test_not_an_optimizer():
    with pytest.raises(TypeError, match=r"torch\.optim\.Optimizer"):
        fusedstats.optimizer_stats(object())


@property_settings(40)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 8),
    offset=st.sampled_from([0.0, 1e4, -1e6, 1e150]),
    nan=st.sampled_from([0.0, 0.3, 1.0]),
)
def test_merge_rows_is_the_stats_of_the_union(seed, n, offset, nan):
    rng = np.random.default_rng(seed)
    tensors = []
    for _ in range(n):
        x = rng.normal(offset, 1e-2 * max(1.0, abs(offset)) ** 0.5, int(rng.integers(0, 50)))
        x[rng.random(x.size) < nan] = np.nan
        tensors.append(torch.from_numpy(x))
    rows = fusedstats.tensor_stats(tensors).host()
    merged = merge_rows(rows[:-1])
    want, _ = expected(tensors)
    problems = [
        f"{f}: {why}"
        for f in FIELDS
        if (why := field_mismatch(f, float(merged[fusedstats.COLUMNS.index(f)]), want, 1e-9))
    ]
    assert not problems, "\n".join(problems)
