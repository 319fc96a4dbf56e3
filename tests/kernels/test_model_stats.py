"""grad_stats and weight_stats on small torch models, against float64 math done by hand."""

import math

import pytest
import torch
from tests.helpers import field_mismatch, reference_buffer, rtol_for
from torch import nn

import fusedstats
from fusedstats import COLUMNS, FIELDS

METTA_NAME = {"var": "variance"}


def by_hand(tensors) -> dict[str, float]:
    """All FIELDS of the concatenation of ``tensors``, in float64."""
    x = torch.cat([t.detach().reshape(-1).double() for t in tensors])
    f = x[torch.isfinite(x)]
    return {
        "numel": x.numel(),
        "n_nan": int(x.isnan().sum()),
        "n_inf": int(x.isinf().sum()),
        "n_zero": int((f == 0).sum()),
        "n_finite": f.numel(),
        "sum": float(f.sum()),
        "mean": float(f.mean()),
        "var": float(f.var()),
        "var_pop": float(f.var(correction=0)),
        "std": float(f.std()),
        "min": float(f.min()),
        "max": float(f.max()),
        "abs_max": float(f.abs().max()),
        "l1": float(f.abs().sum()),
        "norm": float(f.norm()),
    }


def keys(prefix: str, suffix: str = "") -> set[str]:
    return {f"{prefix}{METTA_NAME.get(f, f)}{suffix}" for f in FIELDS}


def assert_keyed_close(got, expected, prefix, rtol, suffix=""):
    problems = []
    for field in FIELDS:
        key = f"{prefix}{METTA_NAME.get(field, field)}{suffix}"
        why = field_mismatch(field, got[key], expected, rtol)
        if why:
            problems.append(f"{key}: {why}")
    assert not problems, "\n".join(problems)


def mlp(dtype=torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3)).to(dtype)


def backward(model: nn.Module) -> None:
    first = next(model.parameters())
    x = torch.randn(7, 5, dtype=first.dtype)
    (model(x) ** 2).sum().backward()


# ---- grad_stats --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_grad_stats_is_the_stats_of_all_gradients(dtype):
    model = mlp(dtype)
    model[0].bias.requires_grad_(False)  # no gradient: skipped
    backward(model)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) == 3

    got = fusedstats.grad_stats(model)
    assert set(got) == keys("grad/")
    assert {"grad/mean", "grad/variance", "grad/norm"} <= set(got)
    assert "grad/var" not in got
    assert got["grad/numel"] == sum(g.numel() for g in grads)
    assert_keyed_close(got, by_hand(grads), "grad/", rtol_for(grads[0]))


def test_grad_stats_per_parameter():
    model = mlp()
    model[0].bias.requires_grad_(False)
    backward(model)
    got = fusedstats.grad_stats(model, per_parameter=True)
    with_grad = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
    expected_keys = keys("grad/").union(*(keys("grad/", f"/{n}") for n, _ in with_grad))
    assert set(got) == expected_keys
    assert not any(k.endswith("/0.bias") for k in got)
    for name, p in with_grad:
        assert_keyed_close(got, by_hand([p.grad]), "grad/", 1e-6, f"/{name}")


def test_grad_stats_without_gradients_is_empty():
    model = mlp()
    assert fusedstats.grad_stats(model) == {}
    assert fusedstats.grad_stats(model, per_parameter=True) == {}
    assert fusedstats.grad_stats({}) == {}


def test_grad_stats_accepts_dicts_pairs_and_generators():
    model = mlp()
    backward(model)
    expected = fusedstats.grad_stats(model, per_parameter=True)
    for given in (
        dict(model.named_parameters()),
        list(model.named_parameters()),
        model.named_parameters(),
    ):
        assert fusedstats.grad_stats(given, per_parameter=True) == expected


def test_grad_stats_prefix():
    model = mlp()
    backward(model)
    got = fusedstats.grad_stats(model, per_parameter=True, prefix="train/g_")
    assert "train/g_norm" in got
    assert "train/g_variance/2.weight" in got
    assert all(k.startswith("train/g_") for k in got)


def test_grad_stats_counts_non_finite_gradients():
    model = mlp()
    backward(model)
    model[2].weight.grad[0, 0] = math.nan
    model[2].bias.grad[1] = -math.inf
    got = fusedstats.grad_stats(model)
    assert (got["grad/n_nan"], got["grad/n_inf"]) == (1, 1)
    grads = [p.grad for p in model.parameters()]
    assert_keyed_close(got, by_hand(grads), "grad/", 1e-6)


@pytest.mark.parametrize(
    "bad",
    [42, None, [1, 2], "abc", [("w",)], [(0, torch.ones(2))]],
    ids=["int", "none", "ints", "str", "one_tuple", "int_name"],
)
def test_grad_stats_rejects_what_is_not_parameters(bad):
    with pytest.raises(TypeError):
        fusedstats.grad_stats(bad)


@pytest.mark.parametrize("stats", [fusedstats.grad_stats, fusedstats.weight_stats])
@pytest.mark.parametrize(
    "bad",
    [[("w", 1.0)], {"w": None}, [("w", [0.5, 1.0])]],
    ids=["float_value", "none_value", "list_value"],
)
def test_pairs_whose_value_is_not_a_tensor_are_a_type_error(stats, bad):
    # BUG (kernels/model_stats.py): `p.grad` / `p.detach()` is read before any check, so
    # these raise AttributeError instead of a TypeError that names the parameter.
    with pytest.raises(TypeError, match=r"'w'|item 0"):
        stats(bad)


# ---- weight_stats ------------------------------------------------------------------


def test_weight_stats_is_the_stats_of_all_parameters():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.Flatten(), nn.LayerNorm(4), nn.Linear(4, 6), nn.Embedding(9, 6)
    )
    model[0].weight.requires_grad_(False)  # frozen weights still count
    params = dict(model.named_parameters())
    got = fusedstats.weight_stats(model)
    matrices = ["3.weight", "4.weight"]  # Linear and Embedding; conv is 4-D
    assert set(got) == keys("weights/") | {"weights/dormant_frac"} | {
        f"weights/dormant_frac/{n}" for n in matrices
    }
    assert got["weights/numel"] == sum(p.numel() for p in params.values())
    assert_keyed_close(got, by_hand(params.values()), "weights/", 1e-6)


def test_dormant_fraction_of_linear_layers():
    first, second = nn.Linear(8, 6), nn.Linear(6, 4)
    with torch.no_grad():
        first.weight[0].zero_()
        first.weight[3].zero_()
        first.weight[5].fill_(1e-7)  # mean |w| 1e-7 < 1e-6: dormant
        first.weight[4].fill_(1e-5)  # above the threshold: alive
        second.weight[2] = torch.tensor([math.nan, 0.0, 0.0, 0.0, 0.0, 0.0])  # NaN counts as 0
    model = nn.Sequential(first, nn.ReLU(), second)
    got = fusedstats.weight_stats(model)
    assert got["weights/dormant_frac/0.weight"] == 3 / 6
    assert got["weights/dormant_frac/2.weight"] == 1 / 4
    assert got["weights/dormant_frac"] == 4 / 10
    assert got["weights/n_nan"] == 1
    assert "weights/dormant_frac/0.bias" not in got

    strict = fusedstats.weight_stats(model, dormant_threshold=1e-8)
    assert strict["weights/dormant_frac/0.weight"] == 2 / 6
    loose = fusedstats.weight_stats(model, dormant_threshold=1e-3)
    assert loose["weights/dormant_frac/0.weight"] == 4 / 6


@pytest.mark.parametrize(
    "shape",
    [(150, 1000), (2, 70_000), (3, 1)],
    ids=["rows_across_chunks", "row_longer_than_chunk", "one_column"],
)
def test_dormant_rows_match_the_reference(shape):
    torch.manual_seed(2)
    w = torch.randn(shape) * 1e-6
    w[::3] = 0.0  # every third row dead
    w[1::7] *= 1e3
    b = torch.randn(shape[0])
    model = nn.ParameterDict({"w": nn.Parameter(w), "b": nn.Parameter(b)})
    got = fusedstats.weight_stats(model, dormant_threshold=5e-7, per_parameter=True)

    expected = int((w.abs().double().mean(dim=1) < 5e-7).sum())
    reference = reference_buffer([w, b], [shape[1], 0], 5e-7)
    assert reference[0, COLUMNS.index("n_dormant_rows")] == expected
    assert got["weights/dormant_frac/w"] == expected / shape[0]
    assert got["weights/dormant_frac"] == expected / shape[0]
    # rows are reduced one by one in this mode: the other fields must not suffer
    assert_keyed_close(got, by_hand([w]), "weights/", 1e-6, "/w")
    assert_keyed_close(got, by_hand([w, b]), "weights/", 1e-6)


def test_weight_stats_accepts_dicts_and_pairs():
    model = mlp()
    expected = fusedstats.weight_stats(model, per_parameter=True)
    assert fusedstats.weight_stats(dict(model.named_parameters()), per_parameter=True) == expected
    assert fusedstats.weight_stats(list(model.named_parameters()), per_parameter=True) == expected


def test_weight_stats_per_parameter_and_prefix():
    model = mlp()
    got = fusedstats.weight_stats(model, prefix="w/", per_parameter=True)
    for name, p in model.named_parameters():
        assert_keyed_close(got, by_hand([p]), "w/", 1e-6, f"/{name}")


def test_weight_stats_edge_models():
    assert fusedstats.weight_stats(nn.ReLU()) == {}
    got = fusedstats.weight_stats(nn.LayerNorm(5))  # no 2-D weight
    assert not any("dormant" in k for k in got)
    assert got["weights/numel"] == 10


@pytest.mark.parametrize("bad", [42, None, [1, 2], "abc"], ids=repr)
def test_weight_stats_rejects_what_is_not_parameters(bad):
    with pytest.raises(TypeError):
        fusedstats.weight_stats(bad)
