"""policy_grad_stats(per_parameter=True): ``grad_param/<name>/<stat>`` of each gradient of a
real torch model after backward(), against float64 torch; off by default."""

from __future__ import annotations

import logging
import math
import os
import random

import numpy as np
import pytest
import torch

import fusedstats
from fusedstats.reporter.inputs import PER_PARAMETER_GRAD_STATS, policy_grad_stats


@pytest.fixture
def rng() -> np.random.Generator:
    seed = int(os.environ.get("GRAD_TEST_SEED", random.SystemRandom().randrange(2**32)))
    print(f"GRAD_TEST_SEED={seed}")  # shown on failure; set it to replay the run
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


class Policy(torch.nn.Module):
    """Two layers of random width, a 1-element scale, a frozen and an unused layer."""

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__()
        width = int(rng.integers(2, 40))
        self.encoder = torch.nn.Linear(int(rng.integers(1, 20)), width)
        self.norm = torch.nn.LayerNorm(width)
        self.head = torch.nn.Linear(width, int(rng.integers(1, 6)))
        self.scale = torch.nn.Parameter(torch.randn(1))
        self.frozen = torch.nn.Linear(width, width)
        self.frozen.requires_grad_(False)
        self.unused = torch.nn.Linear(3, 3)  # never in forward: no .grad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.frozen(torch.tanh(self.norm(self.encoder(x))))
        return self.head(hidden) * self.scale


def trained_policy(rng: np.random.Generator) -> Policy:
    policy = Policy(rng)
    x = torch.randn(int(rng.integers(1, 16)), policy.encoder.in_features)
    (policy(x) ** 2).sum().backward()
    return policy


def expected_stats(grad: torch.Tensor) -> dict[str, float]:
    """The five stats in float64 over the finite elements, as the spec defines them."""
    g = grad.detach().double().reshape(-1)
    f = g[torch.isfinite(g)]
    n = f.numel()
    return {
        "norm": float(torch.sqrt((f * f).sum())),
        "mean": float(f.mean()) if n else math.nan,
        "std": float(f.std(correction=1)) if n >= 2 else math.nan,
        "abs_max": float(f.abs().max()) if n else math.nan,
        "n_nonfinite": float((~torch.isfinite(g)).sum()),
    }


def assert_close(stat: str, got: float, want: float, scale: float) -> None:
    if math.isnan(want):
        assert math.isnan(got), (stat, got)
    elif stat in ("abs_max", "n_nonfinite"):
        assert got == want, (stat, got, want)  # exact in the kernel
    else:  # a mean cancels towards 0: its tolerance is relative to mean |g|
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12 * scale), (stat, got, want)


def assert_matches_torch(stats: dict[str, float], named: list[tuple[str, torch.Tensor]]) -> None:
    for name, param in named:
        grad = param.grad
        if grad is None:
            assert not any(k.startswith(f"grad_param/{name}/") for k in stats), name
            continue
        finite = grad.double()[torch.isfinite(grad)]
        scale = float(finite.abs().mean()) if finite.numel() else 0.0
        for stat, want in expected_stats(grad).items():
            got = stats[f"grad_param/{name}/{stat}"]
            assert type(got) is float
            assert_close(stat, got, want, scale)


def test_each_parameters_stats_match_float64_torch(rng):
    policy = trained_policy(rng)
    stats = policy_grad_stats(policy, per_parameter=True)
    named = list(policy.named_parameters())
    with_grad = [name for name, p in named if p.grad is not None]
    assert with_grad == [  # a module's own parameters come before its submodules'
        "scale",
        "encoder.weight",
        "encoder.bias",
        "norm.weight",
        "norm.bias",
        "head.weight",
        "head.bias",
    ]
    assert_matches_torch(stats, named)
    assert math.isnan(stats["grad_param/scale/std"])  # one element: no unbiased std
    per_parameter = {k for k in stats if k.startswith("grad_param/")}
    assert per_parameter == {
        f"grad_param/{name}/{stat}" for name in with_grad for stat in PER_PARAMETER_GRAD_STATS
    }
    # The per-parameter rows add up to the global one of the same pass.
    total = sum(stats[f"grad_param/{name}/norm"] ** 2 for name in with_grad)
    assert math.sqrt(total) == pytest.approx(stats["grad/norm"], rel=1e-12)


def test_nan_and_inf_are_counted_and_left_out_of_the_stats(rng):
    policy = trained_policy(rng)
    weight = policy.encoder.weight.grad
    assert weight is not None
    flat = weight.view(-1)
    where = torch.from_numpy(rng.choice(flat.numel(), size=min(3, flat.numel()), replace=False))
    flat[where] = torch.tensor([math.nan, math.inf, -math.inf])[: where.numel()]
    policy.head.bias.grad.fill_(math.nan)  # type: ignore[union-attr]  # nothing finite
    stats = policy_grad_stats(policy, per_parameter=True)
    assert_matches_torch(stats, list(policy.named_parameters()))
    assert stats["grad_param/encoder.weight/n_nonfinite"] == float(where.numel())
    head_bias = {s: stats[f"grad_param/head.bias/{s}"] for s in PER_PARAMETER_GRAD_STATS}
    assert head_bias["norm"] == 0.0 and head_bias["n_nonfinite"] == policy.head.bias.numel()
    assert all(math.isnan(head_bias[s]) for s in ("mean", "std", "abs_max"))


def test_off_by_default_and_the_global_keys_are_unchanged(rng):
    policy = trained_policy(rng)
    default = policy_grad_stats(policy)
    assert default == fusedstats.grad_stats(policy)  # what the reporter sent before
    assert default and all(k.startswith("grad/") and k.count("/") == 1 for k in default)
    with_params = policy_grad_stats(policy, per_parameter=True)
    assert {k: v for k, v in with_params.items() if not k.startswith("grad_param/")} == default
    assert policy_grad_stats(policy, per_parameter=False) == default


def test_names_as_given_by_a_dict_of_parameters(rng):
    first = torch.nn.Parameter(torch.randn(int(rng.integers(1, 50))))
    second = torch.nn.Parameter(torch.randn(3, 2))
    (first.sum() * second.square().sum()).backward()
    named = {"encoder/w": first, "variance": second}  # a "/" and a stat's name as names
    stats = policy_grad_stats(named, per_parameter=True)
    assert_matches_torch(stats, list(named.items()))
    assert stats["grad/numel"] == first.numel() + second.numel()


def test_no_gradients_or_no_parameters_give_nothing(caplog):
    assert policy_grad_stats(torch.nn.Linear(2, 2), per_parameter=True) == {}
    with caplog.at_level(logging.WARNING, logger="fusedstats.reporter"):
        assert policy_grad_stats(object(), per_parameter=True) == {}
    assert "gradient stats skipped" in caplog.text
