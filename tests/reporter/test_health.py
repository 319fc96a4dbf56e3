"""The reporter's model-health options: extended grad/weight stats, exponent histograms,
activation watching and optimizer stats in the payload, and in TensorBoard."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from tensorboard.backend.event_processing.event_accumulator import (
    DEFAULT_SIZE_GUIDANCE,
    EventAccumulator,
)
from tests.health.compare import Capture, assert_stats_match, expected
from torch import nn

import fusedstats
from fusedstats import EXTENDED_FIELDS
from fusedstats.health.keys import exponent_histogram_keys
from fusedstats.reporter import StatsReporterConfig

HEALTH = {
    "extended_grad_stats": True,
    "extended_weight_stats": True,
    "exponent_histograms": True,
    "activation_stats_interval": 2,
    "activation_stats_every": 1,
    "activation_grad_stats": True,
    "activation_dormant_tau": 0.1,
    "activation_extended": True,
    "optimizer_stats_interval": 1,
    "grad_mean_variance_interval": 1,
    "analyze_weights_interval": 1,
}
LEAVES = ["0", "1", "2"]


def policy_and_optimizer(seed: int = 0):
    torch.manual_seed(seed)
    policy = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    return policy, torch.optim.Adam(policy.parameters(), lr=1e-2)


def train_epoch(policy, optimizer, batches: int = 2) -> None:
    for _ in range(batches):
        optimizer.zero_grad()
        policy(torch.randn(5, 4)).pow(2).mean().backward()
        optimizer.step()


def test_every_health_key_reaches_the_payload(make_reporter):
    policy, optimizer = policy_and_optimizer()
    reporter = make_reporter(**HEALTH)
    assert reporter.watch_activations(policy) is reporter.activation_watch is not None
    cap = Capture(policy, LEAVES, grads=True)
    payloads = []
    for epoch in range(1, 5):
        train_epoch(policy, optimizer)
        reporter.report_epoch(epoch, 100 * epoch, {}, {}, policy=policy, optimizer=optimizer)
        payloads.append(reporter.get_latest_payload())
        if epoch == 2:  # the activation keys cover epochs 1 and 2
            for name in LEAVES:
                assert_stats_match(payloads[-1], f"act/{name}", cap.acts[name], extended=True)
                assert_stats_match(payloads[-1], f"act_grad/{name}", cap.grads[name], True)
                _, hist = expected(cap.acts[name], extended=True)
                for key, count in exponent_histogram_keys(f"act/{name}", hist).items():
                    assert payloads[-1][key] == count
            assert payloads[-1]["act/0/calls"] == 4
            assert "act/1/dormant_frac" in payloads[-1]
    first, _, third, fourth = payloads
    assert not any(k.startswith("act") for k in first | third)
    assert fourth["act/0/calls"] == 4  # epochs 3 and 4 only: a new window
    # Gradients: the extended fields and the histogram, from the last backward.
    for f in EXTENDED_FIELDS:
        assert f"grad/{f}" in fourth and f"weights/{f}" in fourth
    grads = [p.grad for p in policy.parameters()]
    want = fusedstats.grad_stats(policy, extended=True)
    assert {k: fourth[k] for k in want} == pytest.approx(want, nan_ok=True)
    _, hist = expected(grads, extended=True)
    assert {k: v for k, v in fourth.items() if k.startswith("exp_hist/grad/")} == (
        exponent_histogram_keys("grad", hist)
    )
    # Optimizer state: every epoch.
    want_optim = fusedstats.optimizer_stats(optimizer)
    assert {k: fourth[k] for k in want_optim} == pytest.approx(want_optim)
    assert "optim/exp_avg_sq/norm" in first
    cap.remove()
    reporter.finalize()
    assert reporter.activation_watch is None and not policy[0]._forward_hooks


def test_the_watch_starts_at_the_first_report_when_not_started_before(make_reporter):
    policy, optimizer = policy_and_optimizer()
    reporter = make_reporter(activation_stats_interval=1, activation_stats_every=2)
    train_epoch(policy, optimizer)
    reporter.report_epoch(1, 10, {}, {}, policy=policy)
    assert not any(k.startswith("act/") for k in reporter.get_latest_payload())
    watch = reporter.activation_watch
    assert watch is not None and watch.every == 2
    train_epoch(policy, optimizer, batches=4)
    reporter.report_epoch(2, 20, {}, {}, policy=policy)
    payload = reporter.get_latest_payload()
    assert payload["act/0/calls"] == 2  # forwards 0 and 2 of 4
    assert not any(k.startswith(("act_grad/", "exp_hist/", "optim/")) for k in payload)
    assert "grad/kurtosis" not in payload  # extended stats are off by default


def test_a_report_without_the_policy_still_reads_the_watch(make_reporter):
    policy, optimizer = policy_and_optimizer()
    other, _ = policy_and_optimizer(1)
    reporter = make_reporter(activation_stats_interval=1, activation_stats_every=1)
    first = reporter.watch_activations(policy)
    train_epoch(policy, optimizer)
    reporter.report_epoch(1, 10, {}, {})  # no policy given: the watched one is read
    assert reporter.get_latest_payload()["act/0/calls"] == 2
    reporter.report_epoch(2, 20, {}, {}, policy=other)  # a new policy: watched from now on
    assert reporter.activation_watch is not first and not policy[0]._forward_hooks
    other(torch.randn(3, 4))
    reporter.report_epoch(3, 30, {}, {}, policy=other)
    assert reporter.get_latest_payload()["act/0/calls"] == 1


def test_health_is_off_by_default_and_bad_settings_are_refused(make_reporter):
    policy, optimizer = policy_and_optimizer()
    reporter = make_reporter(grad_mean_variance_interval=1)
    assert reporter.watch_activations(policy) is None
    train_epoch(policy, optimizer)
    reporter.report_epoch(1, 10, {}, {}, policy=policy, optimizer=optimizer)
    payload = reporter.get_latest_payload()
    assert not any(k.startswith(("act", "optim/", "exp_hist/")) for k in payload)
    assert "grad/norm" in payload and "grad/kurtosis" not in payload
    for bad in (
        {"activation_stats_every": 0},
        {"activation_dormant_tau": -0.1},
        {"activation_dormant_tau": float("nan")},
    ):
        with pytest.raises(ValidationError):
            StatsReporterConfig(**bad)


def test_tensorboard_draws_activation_and_exponent_histograms(make_reporter, tmp_path):
    policy, optimizer = policy_and_optimizer()
    reporter = make_reporter(**HEALTH, tensorboard_dir=str(tmp_path))
    reporter.watch_activations(policy)
    for epoch in (1, 2):
        train_epoch(policy, optimizer)
        reporter.report_epoch(epoch, 100 * epoch, {}, {}, policy=policy, optimizer=optimizer)
    payload = reporter.get_latest_payload()
    reporter.finalize()
    acc = EventAccumulator(str(tmp_path), size_guidance=dict.fromkeys(DEFAULT_SIZE_GUIDANCE, 0))
    acc.Reload()
    histograms = set(acc.Tags()["histograms"])
    assert {"act_hist/mean", "act_hist/dormant_frac", "act_grad_hist/norm"} <= histograms
    assert {"exp_hist/grad", "exp_hist/act/0", "exp_hist/act_grad/2"} <= histograms
    scalars = set(acc.Tags()["scalars"])
    assert not any(tag.startswith("exp_hist/") for tag in scalars)
    assert "act/0/mean" in scalars
    means = [payload[f"act/{m}/mean"] for m in LEAVES]
    drawn = acc.Histograms("act_hist/mean")[-1].histogram_value
    assert drawn.num == 3 and drawn.min == min(means) and drawn.max == max(means)
    # The exponent histogram of the gradients counts every nonzero gradient element.
    grads = torch.cat([p.grad.reshape(-1) for p in policy.parameters()])
    exp_grad = acc.Histograms("exp_hist/grad")[-1].histogram_value
    assert exp_grad.num == int((grads != 0).sum())
    edges = np.array(exp_grad.bucket_limit)
    assert (np.diff(edges) == 1).all()  # one bucket per power of two
    top = int(np.floor(np.log2(float(grads.abs().max()))))
    assert edges[-1] == top + 1
