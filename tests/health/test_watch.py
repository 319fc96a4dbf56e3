"""fusedstats.watch against float64 statistics of the same outputs captured by plain
hooks: an MLP, a conv net, a module reused in one step, checkpointed blocks; dormant
fractions against a direct computation; steps, warnings, memory, removal."""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tests.health.compare import (
    Capture,
    ambiguous_units,
    assert_stats_match,
    dormant_fraction,
    expected,
)
from tests.helpers import property_settings
from torch import nn
from torch.utils.checkpoint import checkpoint

import fusedstats
from fusedstats.health import WatchWarning
from fusedstats.health.activations import default_unit_dim


def mlp(seed: int, dtype: torch.dtype = torch.float32, width: int = 16) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(5, width), nn.ReLU(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 3)
    ).to(dtype)


def inputs(rng: np.random.Generator, rows: int, cols: int, dtype, offset=0.0, scale=1.0, nan=0.0):
    x = rng.normal(offset, scale, (rows, cols))
    x[rng.random(x.shape) < nan] = np.nan
    return torch.from_numpy(x).to(dtype)


LEAVES = ["0", "1", "2", "3", "4"]


@property_settings(25)
@given(
    seed=st.integers(0, 2**31 - 1),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]),
    steps=st.integers(1, 6),
    every=st.integers(1, 3),
    extended=st.booleans(),
    offset=st.sampled_from([0.0, 3.0, -1e3]),
    nan=st.sampled_from([0.0, 0.0, 0.05]),
)
def test_mlp_activations_and_gradients_match_float64(
    seed, dtype, steps, every, extended, offset, nan
):
    rng = np.random.default_rng(seed)
    model = mlp(seed % 1000, dtype)
    cap = Capture(model, LEAVES, grads=True)
    handle = fusedstats.watch(model, activation_grads=True, every=every, extended=extended)
    recorded = []
    for step in range(steps):
        before = {n: len(cap.acts[n]) for n in LEAVES}
        before_g = {n: len(cap.grads[n]) for n in LEAVES}
        x = inputs(rng, int(rng.integers(1, 40)), 5, dtype, offset, 1.0, nan)
        model(x).float().pow(2).mean().backward()
        if step % every == 0:
            recorded.append((before, before_g))
    stats = handle.stats()
    handle.remove()
    cap.remove()
    for name in LEAVES:
        acts = [cap.acts[name][before[name]] for before, _ in recorded]
        grads = [cap.grads[name][before_g[name]] for _, before_g in recorded]
        assert stats[f"act/{name}/calls"] == len(acts)
        assert_stats_match(stats, f"act/{name}", acts, extended)
        assert stats[f"act_grad/{name}/calls"] == len(grads)
        assert_stats_match(stats, f"act_grad/{name}", grads, extended)
    assert handle.steps == steps


def test_exponent_histograms_match_the_reference():
    rng = np.random.default_rng(1)
    model = mlp(1)
    with torch.no_grad():
        model[0].bias.zero_()
    cap = Capture(model, LEAVES, grads=True)
    with fusedstats.watch(model, activation_grads=True, extended=True) as handle:
        for _ in range(3):
            x = inputs(rng, 9, 5, torch.float32, scale=1e-38)  # subnormal activations
            model(x).sum().backward()
        report = handle.report()
    for name in LEAVES:
        _, hist = expected(cap.acts[name], extended=True)
        np.testing.assert_array_equal(report.histograms[f"act/{name}"], hist)
        _, hist = expected(cap.grads[name], extended=True)
        np.testing.assert_array_equal(report.histograms[f"act_grad/{name}"], hist)
    assert report.scalars["act/0/underflow_bf16"] > 0


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(8 * 4 * 4, 6)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.fc(self.flat(self.pool(self.relu(self.bn(self.conv(x)))))))


CONV_UNIT_DIMS = {"conv": 1, "bn": 1, "relu": 1, "pool": 1, "flat": 1, "fc": 1, "act": 1}


@property_settings(15)
@given(seed=st.integers(0, 2**31 - 1), tau=st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_conv_net_activations_and_dormant_channels(seed, tau):
    torch.manual_seed(seed % 1000)
    model = ConvNet()
    with torch.no_grad():
        model.fc.bias[:2] = -100.0  # two output units dead after the ReLU
    names = list(CONV_UNIT_DIMS)
    cap = Capture(model, names, grads=True)
    rng = np.random.default_rng(seed)
    with fusedstats.watch(model, activation_grads=True, dormant_tau=tau) as handle:
        for _ in range(2):
            x = torch.from_numpy(rng.normal(0, 1, (int(rng.integers(1, 5)), 3, 8, 8))).float()
            model(x).sum().backward()
        stats = handle.stats()
    for name in names:
        assert_stats_match(stats, f"act/{name}", cap.acts[name])
        assert_stats_match(stats, f"act_grad/{name}", cap.grads[name])
        dim = CONV_UNIT_DIMS[name]
        want = dormant_fraction(cap.acts[name], dim, tau)
        units = cap.acts[name][0].shape[dim]
        slack = ambiguous_units(cap.acts[name], dim, tau) / units
        assert abs(stats[f"act/{name}/dormant_frac"] - want) <= slack + 1e-12, name
    assert stats["act/act/dormant_frac"] >= 2 / 6  # the two dead units at least


def test_unit_dims_follow_the_module_kind():
    conv1, conv2 = nn.Conv1d(2, 3, 1), nn.Conv2d(2, 3, 1)
    assert default_unit_dim(conv1, torch.zeros(4, 3, 5)) == 1
    assert default_unit_dim(conv1, torch.zeros(3, 5)) == 0  # unbatched
    assert default_unit_dim(conv2, torch.zeros(3, 5, 5)) == 0  # unbatched
    assert default_unit_dim(nn.BatchNorm1d(3), torch.zeros(4, 3, 5)) == 1
    assert default_unit_dim(nn.BatchNorm1d(3), torch.zeros(4, 3)) == 1
    assert default_unit_dim(nn.ReLU(), torch.zeros(4, 3, 5, 5)) == 1
    assert default_unit_dim(nn.ReLU(), torch.zeros(4, 7, 3)) == 2
    assert default_unit_dim(nn.Linear(2, 3), torch.zeros(3)) == 0
    assert default_unit_dim(nn.Linear(2, 3), torch.zeros(())) is None


@property_settings(20)
@given(
    seed=st.integers(0, 2**31 - 1),
    tau=st.sampled_from([0.0, 0.025, 0.1, 0.5, 2.0]),
    dead=st.integers(0, 16),
    calls=st.integers(1, 4),
)
def test_dormant_fraction_matches_a_direct_computation(seed, tau, dead, calls):
    torch.manual_seed(seed % 1000)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU())
    with torch.no_grad():
        model[0].bias[:dead] = -1e3  # exactly dead after the ReLU
        model[0].weight[dead:] *= torch.rand(16 - dead, 1) * 3  # units of varied size
    rng = np.random.default_rng(seed)
    cap = Capture(model, ["0", "1"])
    with fusedstats.watch(model, dormant_tau=tau) as handle:
        for _ in range(calls):
            model(torch.from_numpy(rng.normal(0, 1, (int(rng.integers(1, 30)), 6))).float())
        stats = handle.stats()
    for name in ("0", "1"):
        want = dormant_fraction(cap.acts[name], 1, tau)
        slack = ambiguous_units(cap.acts[name], 1, tau) / 16
        assert abs(stats[f"act/{name}/dormant_frac"] - want) <= slack + 1e-12
    if tau == 0.0:  # exactly-dead units: no slack
        assert stats["act/1/dormant_frac"] == dormant_fraction(cap.acts["1"], 1, 0.0)
        assert stats["act/1/dormant_frac"] >= dead / 16


def test_dormant_fraction_of_3d_outputs_and_overrides():
    torch.manual_seed(0)
    lin = nn.Linear(4, 5)
    with torch.no_grad():
        lin.weight[1:3] = 0
        lin.bias[1:3] = 0
    model = nn.Sequential(lin)
    x = torch.randn(2, 7, 4)
    with fusedstats.watch(model) as handle:
        model(x)
        assert handle.stats()["act/0/dormant_frac"] == 2 / 5  # units on the last dim
    with fusedstats.watch(model, unit_dims={"0": 1}) as handle:
        model(x)
        want = dormant_fraction([lin(x).detach()], 1, 0.0)
        assert handle.stats()["act/0/dormant_frac"] == want == 0.0  # 7 positions, none dead
    with pytest.raises(ValueError, match="not watched"):
        fusedstats.watch(model, unit_dims={"nope": 1})


def test_a_module_reused_in_one_step_accumulates_every_call():
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = nn.Linear(4, 8)
            self.block = nn.Linear(8, 8)  # called twice per forward
            self.act = nn.ReLU()  # called twice per forward

        def forward(self, x):
            return self.block(self.act(self.block(self.act(self.inp(x)))))

    model = Shared()
    cap = Capture(model, ["inp", "block", "act"], grads=True)
    with fusedstats.watch(model, activation_grads=True) as handle:
        for batch in (3, 5):
            model(torch.randn(batch, 4)).sum().backward()
        stats = handle.stats()
    assert stats["act/block/calls"] == 4 and stats["act/inp/calls"] == 2
    assert stats["act_grad/block/calls"] == 4
    for name in ("inp", "block", "act"):
        assert_stats_match(stats, f"act/{name}", cap.acts[name])
        assert_stats_match(stats, f"act_grad/{name}", cap.grads[name])
        assert stats[f"act/{name}/numel"] == sum(t.numel() for t in cap.acts[name])


class Blocks(nn.Module):
    def __init__(self, mode: str | None) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.mode = mode
        self.inp = nn.Linear(6, 12)
        self.block = nn.Sequential(nn.Linear(12, 12), nn.GELU(), nn.Linear(12, 12), nn.Tanh())
        self.out = nn.Linear(12, 2)

    def forward(self, x):
        h = self.inp(x)
        if self.mode is None:
            h = self.block(h)
        else:
            h = checkpoint(self.block, h, use_reentrant=self.mode == "reentrant")
        return self.out(h)


@pytest.mark.parametrize("mode", ["reentrant", "non_reentrant"])
def test_checkpointed_block_is_counted_once(mode):
    plain, checkpointed = Blocks(None), Blocks(mode)
    checkpointed.load_state_dict(plain.state_dict())
    names = ["inp", "block.0", "block.1", "block.2", "block.3", "out"]
    cap_plain = Capture(plain, names, grads=True)
    cap_ckpt = Capture(checkpointed, names)  # plain hooks see the recompute too
    x = torch.randn(2, 9, 6, requires_grad=True)
    with fusedstats.watch(checkpointed, activation_grads=True) as handle:
        for _ in range(2):
            checkpointed(x).pow(2).sum().backward()
            plain(x).pow(2).sum().backward()
        stats = handle.stats()
        assert handle.steps == 2  # the recompute is not a step
    assert cap_ckpt.calls["block.0"] > cap_plain.calls["block.0"]  # it did recompute
    for name in names:
        assert stats[f"act/{name}/calls"] == 2, name
        assert stats[f"act_grad/{name}/calls"] == 2, name
        assert_stats_match(stats, f"act/{name}", cap_plain.acts[name])
        assert_stats_match(stats, f"act_grad/{name}", cap_plain.grads[name])


def test_every_and_manual_steps():
    model = mlp(0)
    with fusedstats.watch(model, every=3, step_by="manual") as handle:
        for step in range(7):
            for _ in range(2):  # two forwards per step, both recorded on recorded steps
                model(torch.randn(4, 5))
            assert handle.recording == (step % 3 == 0)
            handle.step()
        stats = handle.stats()
        assert handle.steps == 7
    assert stats["act/0/calls"] == 2 * 3  # steps 0, 3, 6
    with fusedstats.watch(model) as handle, pytest.raises(RuntimeError, match="step_by='manual'"):
        handle.step()


def test_reset_and_windows():
    model = mlp(0)
    with fusedstats.watch(model) as handle:
        model(torch.randn(4, 5))
        first = handle.stats(reset=False)
        model(torch.randn(6, 5))
        both = handle.stats()  # resets
        assert first["act/0/numel"] == 4 * 16 and both["act/0/numel"] == 10 * 16
        assert handle.stats() == {}  # nothing since the reset
        model(torch.randn(2, 5))
        after = handle.stats()
        assert after["act/0/numel"] == 2 * 16 and after["act/0/calls"] == 1


def test_tuple_and_dict_outputs_by_their_leaves():
    class DictOut(nn.Module):
        def forward(self, x):
            return {"logits": x * 2, "aux": [x + 1, torch.ones(3, dtype=torch.int64)]}

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(4, 6, batch_first=True)
            self.heads = DictOut()

        def forward(self, x):
            out, (h, c) = self.lstm(x)
            return self.heads(out)["logits"].sum() + h.sum() + c.sum()

    model = Model()
    x = torch.randn(2, 5, 4)
    with fusedstats.watch(model) as handle:
        model(x)
        stats = handle.stats()
    out, (h, c) = model.lstm(x)
    assert_stats_match(stats, "act/lstm[0]", [out.detach()])
    assert_stats_match(stats, "act/lstm[1][0]", [h.detach()])
    assert_stats_match(stats, "act/lstm[1][1]", [c.detach()])
    assert_stats_match(stats, "act/heads[logits]", [out.detach() * 2])
    assert_stats_match(stats, "act/heads[aux][0]", [out.detach() + 1])
    assert not any(k.startswith("act/heads[aux][1]") for k in stats)  # int64: not a float


def test_a_module_without_tensor_output_warns_once_naming_it():
    class NoTensor(nn.Module):
        def forward(self, x):
            return None

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.side = NoTensor()

        def forward(self, x):
            self.side(x)
            return self.fc(x)

    model = Model()
    with fusedstats.watch(model) as handle:
        with pytest.warns(WatchWarning, match="'side' returned a NoneType"):
            model(torch.randn(2, 3))
        model(torch.randn(2, 3))  # no second warning (filterwarnings=error would raise)
        stats = handle.stats()
    assert stats["act/fc/calls"] == 2 and not any("side" in k for k in stats)


def test_a_reused_module_on_different_widths_has_no_dormant_frac():
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.relu = nn.Linear(3, 4), nn.Linear(4, 5), nn.ReLU()

        def forward(self, x):
            return self.relu(self.b(self.relu(self.a(x))))

    model = Model()
    with fusedstats.watch(model) as handle:
        with pytest.warns(WatchWarning, match="act/relu had 5 units"):
            model(torch.randn(2, 3))
        stats = handle.stats()
    assert "act/relu/dormant_frac" not in stats and stats["act/relu/calls"] == 2
    assert "act/a/dormant_frac" in stats


def test_named_modules_and_errors():
    model = mlp(0)
    with fusedstats.watch(model, modules=["2", ""]) as handle:
        model(torch.randn(3, 5))
        stats = handle.stats()
        assert handle.modules == ["2", "Sequential"]
    assert {k.split("/")[1] for k in stats} == {"2", "Sequential"}
    with pytest.raises(ValueError, match="no module named 'nope'"):
        fusedstats.watch(model, modules=["nope"])
    with pytest.raises(TypeError, match="list of module names"):
        fusedstats.watch(model, modules="2")
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        fusedstats.watch(object())
    with pytest.raises(ValueError, match="every"):
        fusedstats.watch(model, every=0)
    with pytest.raises(ValueError, match="dormant_tau"):
        fusedstats.watch(model, dormant_tau=float("nan"))
    with pytest.raises(ValueError, match="step_by"):
        fusedstats.watch(model, step_by="epoch")
    with pytest.raises(ValueError, match="nothing to watch"):
        fusedstats.watch(model, activations=False)


def test_gradients_only_and_no_grad_forwards():
    model = mlp(0)
    with fusedstats.watch(model, activations=False, activation_grads=True) as handle:
        with torch.no_grad():
            model(torch.randn(3, 5))  # no gradients flow: nothing recorded
        assert handle.stats() == {}
        model(torch.randn(3, 5)).sum().backward()
        stats = handle.stats()
    assert stats["act_grad/4/calls"] == 1 and not any(k.startswith("act/") for k in stats)


def test_remove_stops_recording_and_keeps_what_was_accumulated():
    model = mlp(0)
    handle = fusedstats.watch(model, activation_grads=True)
    out = model(torch.randn(3, 5))
    handle.remove()
    out.sum().backward()  # the gradient hooks on live outputs now do nothing
    model(torch.randn(3, 5)).sum().backward()
    stats = handle.stats()
    assert stats["act/0/calls"] == 1 and not any(k.startswith("act_grad/") for k in stats)
    assert not model[0]._forward_hooks and not model._forward_pre_hooks


def test_memory_is_bounded_and_no_activation_outlives_its_step():
    model = mlp(0, width=64)
    refs = []

    def keep_ref(module, args, out):
        refs.append(weakref.ref(out))

    model[2].register_forward_hook(keep_ref)
    with fusedstats.watch(model, activation_grads=True, extended=True) as handle:
        sizes = []
        for _ in range(30):
            model(torch.randn(4096, 5)).sum().backward()  # 1 MiB per 64-wide output
            sizes.append(handle.memory_bytes)
            if len(sizes) % 10 == 0:
                handle.stats()
        gc.collect()
        assert len(set(sizes)) == 1, sizes  # allocated once, at the first step
        # Rows and unit sums only: far less than one activation.
        assert sizes[0] < 1 << 20
        assert all(r() is None for r in refs), "an activation is still alive"


def test_hook_time_is_counted():
    model = mlp(0)
    with fusedstats.watch(model, every=2) as handle:
        model(torch.randn(3, 5))
        spent = handle.seconds
        assert spent > 0
        model(torch.randn(3, 5))  # not recorded, but the step's bookkeeping is counted
        assert handle.seconds > spent
    with fusedstats.watch(model, every=2, step_by="manual") as handle:
        model(torch.randn(3, 5))
        before_step = handle.seconds
        assert before_step > 0
        handle.step()  # detaches the hooks: counted too
        spent = handle.seconds
        assert spent > before_step
        model(torch.randn(3, 5))  # not recorded and no hook attached: no time at all
        assert handle.seconds == spent


def test_stats_are_floats_and_nan_rules_hold():
    model = nn.Sequential(nn.Identity())
    with fusedstats.watch(model) as handle:
        model(torch.full((2, 3), float("nan")))
        stats = handle.stats()
    assert all(type(v) is float for v in stats.values())
    assert stats["act/0/n_nan"] == 6 and math.isnan(stats["act/0/mean"])
    assert stats["act/0/dormant_frac"] == 0.0  # no finite unit: none dormant


def test_paused_forwards_are_neither_recorded_nor_steps():
    model = mlp(0)
    with fusedstats.watch(model, every=2) as handle:
        model(torch.randn(3, 5))  # step 0: recorded
        with handle.paused():
            for _ in range(5):
                model(torch.randn(7, 5))
            assert not model[0]._forward_hooks  # nothing attached while paused
        model(torch.randn(3, 5))  # step 1: not recorded
        model(torch.randn(3, 5))  # step 2: recorded
        assert handle.steps == 3
        stats = handle.stats()
    assert stats["act/0/calls"] == 2 and stats["act/0/numel"] == 2 * 3 * 16


def test_module_hooks_are_attached_only_during_recorded_steps():
    model = mlp(0)
    with fusedstats.watch(model, every=3, step_by="manual") as handle:
        attached = []
        for _ in range(6):
            attached.append(bool(model[2]._forward_hooks))
            handle.step()
        assert attached == [True, False, False, True, False, False]
    with fusedstats.watch(model, every=2) as handle:
        seen = []
        model[2].register_forward_pre_hook(lambda m, a: seen.append(bool(m._forward_hooks)))
        for _ in range(4):
            model(torch.randn(2, 5))
        assert seen == [True, False, True, False]  # attached by the model's pre-hook


def test_activation_stats_are_the_same_bits_at_any_thread_count():
    before = fusedstats.get_num_threads()
    model = mlp(5, width=64)
    x = torch.randn(3000, 5)
    results = []
    try:
        for threads in (1, 2, 1):
            fusedstats.set_num_threads(threads)
            with fusedstats.watch(model, activation_grads=True, extended=True) as handle:
                model(x).sum().backward()
                report = handle.report()
            results.append(report)
    finally:
        fusedstats.set_num_threads(before)
    first = results[0]
    for other in results[1:]:
        for key, value in first.scalars.items():
            if key.endswith("/dormant_frac"):
                continue  # from torch's per-unit sums, compared with a tolerance elsewhere
            got = other.scalars[key]
            assert np.float64(value).tobytes() == np.float64(got).tobytes(), key
        for key, hist in first.histograms.items():
            np.testing.assert_array_equal(hist, other.histograms[key])


def test_empty_and_special_outputs():
    model = nn.Sequential(nn.Identity())
    with fusedstats.watch(model) as handle:
        model(torch.zeros(0, 3))  # an empty batch
        stats = handle.stats()
        assert stats["act/0/numel"] == 0 and math.isnan(stats["act/0/mean"])
        assert math.isnan(stats["act/0/dormant_frac"])  # no element: undefined
        x = torch.tensor([[1e-45, -3.0, float("inf")], [0.0, 448.0, 65504.0]])
        model(x)
        stats = handle.stats()
    want, _ = expected([x])
    assert stats["act/0/n_inf"] == 1 and stats["act/0/n_zero"] == 1
    assert_stats_match(stats, "act/0", [x])
    assert want["abs_max"] == stats["act/0/abs_max"] == 65504.0
    # Units (last dim): mean |x| ~7e-46, 225.5 and inf. The inf unit is neither dormant nor
    # in the layer mean; tau = 0 counts exactly-zero units only: none.
    assert stats["act/0/dormant_frac"] == 0.0
