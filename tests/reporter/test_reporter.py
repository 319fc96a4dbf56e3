"""StatsReporter end to end: hand-made infos, losses, experience, a real optimizer and a
stopwatch on a clock the test moves, against payloads written out in full."""

import logging
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fusedstats.reporter import (
    EvalRewardSummary,
    NoOpStatsReporter,
    StatsReporter,
    StatsReporterConfig,
    TrainerComponent,
)

INFOS = [
    {
        "game": {"score": 1.0, "level": "easy"},
        "agent": {
            "reward": np.array([1.0, 2.0, 3.0]),
            "movement.direction.up": 0.5,
            "movement.facing.left": 1.0,
        },
        "episode_length": 10,
        "note": None,
    },
    {
        "game": {"score": 3.0},
        "agent": {"reward": np.array([5.0]), "movement.direction.up": 1.5},
    },
]


class Experience:
    """Metta's experience buffer: stats() and num_minibatches."""

    num_minibatches = 4

    def stats(self):
        return {"rewards": 0.75, "advantages": np.float32(0.5), "per_env": np.ones(3)}


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))


def _backward(model):
    model.zero_grad()
    model(torch.linspace(-1, 1, 8).reshape(2, 4)).square().sum().backward()


def test_a_full_epoch_payload(make_reporter, stopwatch, clock):
    reporter = make_reporter()
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    reporter.update_eval_scores(EvalRewardSummary({"nav": 0.5}, {("nav", "maze"): 0.25}))
    reporter.update_grad_stats({"grad/norm": 1.25, "grad/mean": 0.01})
    with stopwatch("_rollout"):
        reporter.on_step(INFOS)
        clock.advance(2.0)
    with stopwatch("_train"):
        clock.advance(3.0)
    clock.advance(1.0)
    reporter.report_epoch(
        epoch=1,
        agent_step=600,
        losses_stats={
            "policy_loss": 0.25,
            "value_loss": np.float32(0.5),
            "entropy": torch.tensor(1.5),
            "explained_variance": "n/a",
        },
        experience=Experience(),
        policy=None,
        timer=stopwatch,
        trainer_cfg=SimpleNamespace(hyperparameters={"ppo": {"clip_coef": 0.2}, "gamma": 0.99}),
        optimizer=optimizer,
        system_stats={"monitor/cpu_percent": 12.0},
        memory_stats={"experience_bytes": 1024},
    )
    payload = reporter.get_latest_payload()
    assert payload == {
        "metric/agent_step": 600.0,
        "metric/epoch": 1.0,
        "metric/total_time": 6.0,
        "metric/train_time": 5.0,
        "overview/sps": 100.0,
        "overview/steps_per_second": 100.0,
        "overview/epoch_steps_per_second": 100.0,
        "overview/reward": 0.75,
        "overview/reward_vs_total_time": 0.75,
        "overview/nav_score": 0.5,
        "losses/policy_loss": 0.25,
        "losses/value_loss": 0.5,
        "losses/entropy": 1.5,
        "experience/rewards": 0.75,
        "experience/advantages": 0.5,
        "experience/area_under_reward": 0.75,
        "env_game/score": 2.0,
        "env_agent/reward": 2.75,  # per-agent arrays count every element: (1+2+3+5)/4
        "env_agent/movement.direction.up": 1.0,
        "parameters/learning_rate": 3e-4,
        "parameters/epoch_steps": 600.0,
        "parameters/num_minibatches": 4.0,
        "hyperparameters/ppo/clip_coef": 0.2,
        "hyperparameters/gamma": 0.99,
        "eval_nav/score": 0.5,
        "eval_nav/maze": 0.25,
        "monitor/cpu_percent": 12.0,
        "trainer_memory/experience_bytes": 1024.0,
        "grad/norm": 1.25,
        "grad/mean": 0.01,
        # _process_stats is running (0 s so far: the clock stands still in report_epoch)
        "timing_per_epoch/frac/_rollout": 2.0 / 6.0,
        "timing_per_epoch/frac/_train": 0.5,
        "timing_per_epoch/frac/_process_stats": 0.0,
        "timing_per_epoch/msec/_rollout": 2000.0,
        "timing_per_epoch/msec/_train": 3000.0,
        "timing_per_epoch/msec/_process_stats": 0.0,
        "timing_per_epoch/sps": 100.0,
        "timing_cumulative/frac/_rollout": 2.0 / 6.0,
        "timing_cumulative/frac/_train": 0.5,
        "timing_cumulative/frac/_process_stats": 0.0,
        "timing_cumulative/sps": 100.0,
    }
    assert all(type(v) is float for v in payload.values())
    assert not stopwatch.is_running("_process_stats")
    # Rollout and grad stats are cleared; the eval scores stay.
    assert len(reporter.state.rollout_stats) == 0
    assert reporter.state.grad_stats == {}

    # Epoch 2: 400 steps in 4 s, no infos, a schedule-free-like param group.
    optimizer.param_groups[0]["scheduled_lr"] = 1e-4
    optimizer.param_groups[0]["lr_max"] = 5e-4
    with stopwatch("_train"):
        clock.advance(4.0)
    reporter.report_epoch(2, 1000, {}, {"rewards": 0.25}, timer=stopwatch, optimizer=optimizer)
    payload = reporter.get_latest_payload()
    assert payload == {
        "metric/agent_step": 1000.0,
        "metric/epoch": 2.0,
        "metric/total_time": 10.0,
        "metric/train_time": 9.0,
        "overview/sps": 100.0,
        "overview/steps_per_second": 100.0,
        "overview/epoch_steps_per_second": 100.0,
        "overview/reward": 0.25,
        "overview/reward_vs_total_time": 0.25,
        "overview/nav_score": 0.5,
        "experience/rewards": 0.25,
        "experience/area_under_reward": 1.0,
        "parameters/learning_rate": 3e-4,
        "parameters/schedulefree_scheduled_lr": 1e-4,
        "parameters/schedulefree_lr_max": 5e-4,
        "parameters/epoch_steps": 400.0,
        "eval_nav/score": 0.5,
        "eval_nav/maze": 0.25,
        "timing_per_epoch/frac/_rollout": 0.0,
        "timing_per_epoch/frac/_train": 1.0,
        "timing_per_epoch/frac/_process_stats": 0.0,
        "timing_per_epoch/msec/_rollout": 0.0,
        "timing_per_epoch/msec/_train": 4000.0,
        "timing_per_epoch/msec/_process_stats": 0.0,
        "timing_per_epoch/sps": 100.0,
        "timing_cumulative/frac/_rollout": 0.2,
        "timing_cumulative/frac/_train": 0.7,
        "timing_cumulative/frac/_process_stats": 0.0,
        "timing_cumulative/sps": 100.0,
    }


def test_without_timer_policy_config_or_optimizer(make_reporter):
    reporter = make_reporter()
    reporter.on_step({"game": {"score": 4}})
    reporter.report_epoch(3, 300, {"policy_loss": 1}, None)
    assert reporter.get_latest_payload() == {
        "metric/agent_step": 300.0,
        "metric/epoch": 3.0,
        "losses/policy_loss": 1.0,
        "env_game/score": 4.0,
    }


def test_a_plain_timer_only_times_the_processing(make_reporter):
    """A timer that is not a Stopwatch (the Timer protocol only) gives no timing keys."""
    entered = []

    class Plain:
        def __call__(self, name):
            entered.append(name)
            return torch.no_grad()  # any context manager

    reporter = make_reporter()
    reporter.report_epoch(1, 10, {}, {}, timer=Plain())
    assert entered == ["_process_stats"]
    assert reporter.get_latest_payload() == {"metric/agent_step": 10.0, "metric/epoch": 1.0}


def test_on_step_takes_a_dict_or_a_list_and_drops_falsy_infos(make_reporter):
    reporter = make_reporter()
    reporter.on_step({"a/b": 1.0})
    reporter.on_step([{"a/b": 3.0}, {}, None])
    reporter.accumulate_infos([{"a/c": 2.0}])
    reporter.accumulate_infos({})
    reporter.on_step([])
    reporter.on_step(None)
    reporter.on_step("a/b")
    reporter.on_step(np.array([{"a/b": 2.0}, None, np.ones(2)], dtype=object))  # gym-style
    stats = reporter.state.rollout_stats
    assert np.mean(stats.get("a/b")) == 2.0
    assert np.mean(stats.get("a/c")) == 2.0
    assert sorted(stats.keys()) == ["a/b", "a/c"]


def test_process_rollout_skips_what_is_not_a_number(make_reporter):
    reporter = make_reporter()
    reporter.process_rollout(
        [{"a": {"x": 1.0, "s": "text", "n": None, "o": object()}}, {"a": {"x": np.float32(3)}}]
    )
    reporter.report_epoch(1, 1, {}, {})
    payload = reporter.get_latest_payload()
    assert {k: v for k, v in payload.items() if k.startswith("env_")} == {"env_a/x": 2.0}


def test_area_under_reward(make_reporter):
    reporter = make_reporter()
    seen = []
    for epoch, rewards in enumerate([1.0, 2.0, None, math.nan, 0.5], start=1):
        experience = {} if rewards is None else {"rewards": rewards}
        reporter.report_epoch(epoch, epoch * 10, {}, experience)
        seen.append(reporter.get_latest_payload().get("experience/area_under_reward"))
    assert seen == [1.0, 3.0, None, 3.0, 3.5]  # NaN reported, but not added
    assert reporter.state.area_under_reward == 3.5


def test_default_zero_metrics_with_a_rolling_mean(make_reporter):
    reporter = make_reporter(
        default_zero_metrics=("env_game/score", "env_game/wins"), rolling_window=3
    )
    scores, avgs = [], []
    for epoch, score in enumerate([1.0, 2.0, None, 6.0], start=1):
        if score is not None:
            reporter.on_step({"game": {"score": score}})
        reporter.report_epoch(epoch, epoch, {}, {})
        payload = reporter.get_latest_payload()
        scores.append(payload["env_game/score"])
        avgs.append(payload["env_game/score.avg"])
        assert payload["env_game/wins"] == 0.0
        assert payload["env_game/wins.avg"] == 0.0
    assert scores == [1.0, 2.0, 0.0, 6.0]
    assert avgs == [1.0, 1.5, 1.0, 8.0 / 3.0]


def test_eval_scores_are_kept_and_formatted(make_reporter):
    scores = EvalRewardSummary(
        category_scores={"nav": 0.5, "memory": 1.0},
        simulation_scores={("nav", "maze"): 0.25, ("nav", "open"): 0.75, ("memory", "a"): 1.0},
    )
    assert scores.to_wandb_metrics_format() == {
        "nav/score": 0.5,
        "memory/score": 1.0,
        "nav/maze": 0.25,
        "nav/open": 0.75,
        "memory/a": 1.0,
    }
    assert scores.avg_category_score == 0.75
    assert scores.avg_simulation_score == 2.0 / 3.0
    empty = EvalRewardSummary()
    assert (empty.avg_category_score, empty.avg_simulation_score) == (0.0, 0.0)
    assert empty.to_wandb_metrics_format() == {}

    reporter = make_reporter()
    context = SimpleNamespace()
    reporter.register(context)
    reporter.update_eval_scores(scores)
    assert reporter.state.eval_scores is scores
    assert context.latest_eval_scores is scores
    reporter.report_epoch(1, 1, {}, {})
    payload = reporter.get_latest_payload()
    assert {k: v for k, v in payload.items() if "eval_" in k or "_score" in k} == {
        "overview/nav_score": 0.5,
        "overview/memory_score": 1.0,
        "eval_nav/score": 0.5,
        "eval_memory/score": 1.0,
        "eval_nav/maze": 0.25,
        "eval_nav/open": 0.75,
        "eval_memory/a": 1.0,
    }


def test_grad_stats_every_interval_from_the_fused_kernel(make_reporter):
    model = _model()
    reporter = make_reporter(grad_mean_variance_interval=2)
    got = {}
    for epoch in range(1, 7):
        _backward(model)
        reporter.report_epoch(epoch, epoch * 10, {}, {}, policy=model)
        got[epoch] = {k: v for k, v in reporter.get_latest_payload().items() if "grad/" in k}
    assert [e for e, g in got.items() if g] == [2, 4, 6]
    grads = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double()
    g = got[6]
    assert g["grad/norm"] == pytest.approx(grads.norm().item(), rel=1e-6)
    assert g["grad/mean"] == pytest.approx(grads.mean().item(), rel=1e-6, abs=1e-9)
    assert g["grad/variance"] == pytest.approx(grads.var().item(), rel=1e-6)
    assert g["grad/numel"] == float(grads.numel())
    assert all(type(v) is float for v in g.values())


def test_given_grad_stats_replace_the_computed_ones(make_reporter):
    model = _model()
    _backward(model)
    reporter = make_reporter(grad_mean_variance_interval=1)
    reporter.update_grad_stats({"grad/norm": 123.0})
    reporter.update_grad_stats({"grad/norm": 9.0})  # replaces
    reporter.report_epoch(1, 10, {}, {}, policy=model)
    assert {k: v for k, v in reporter.get_latest_payload().items() if "grad/" in k} == {
        "grad/norm": 9.0
    }
    reporter.update_grad_stats({"grad/norm": 1.0})
    reporter.clear_grad_stats()
    reporter.report_epoch(2, 20, {}, {})
    assert "grad/norm" not in reporter.get_latest_payload()


def test_grad_stats_off_at_interval_zero(make_reporter):
    model = _model()
    _backward(model)
    reporter = make_reporter(grad_mean_variance_interval=0)
    reporter.report_epoch(0, 10, {}, {}, policy=model)
    assert not any(k.startswith("grad/") for k in reporter.get_latest_payload())


def test_weight_stats_every_interval_from_the_fused_kernel(make_reporter):
    model = _model()
    with torch.no_grad():
        model[0].weight[1].zero_()  # one dormant row of three
    reporter = make_reporter(grad_mean_variance_interval=0, analyze_weights_interval=3)
    got = {}
    for epoch in range(1, 7):
        reporter.report_epoch(epoch, epoch, {}, {}, policy=model)
        got[epoch] = {
            k: v for k, v in reporter.get_latest_payload().items() if k.startswith("weights/")
        }
    assert [e for e, w in got.items() if w] == [3, 6]
    w = got[3]
    assert w["weights/dormant_frac/0.weight"] == 1.0 / 3.0
    assert w["weights/dormant_frac/2.weight"] == 0.0
    first = model[0].weight.detach().double()
    assert w["weights/norm/0.weight"] == pytest.approx(first.norm().item(), rel=1e-6)
    assert w["weights/max/2.bias"] == model[2].bias.max().item()
    everything = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()
    assert w["weights/norm"] == pytest.approx(everything.norm().item(), rel=1e-6)
    assert all(type(v) is float for v in w.values())


def test_weight_stats_from_the_policy_when_it_has_them(make_reporter):
    class Policy:
        def compute_weight_metrics(self):
            return [
                {"name": "fc1", "effective_rank": 3, "avg_abs_weight": np.float32(0.5)},
                {"name": "fc2", "effective_rank": 2.0, "note": "text"},
            ]

    reporter = make_reporter(grad_mean_variance_interval=0, analyze_weights_interval=1)
    reporter.report_epoch(1, 1, {}, {}, policy=Policy())
    assert {k: v for k, v in reporter.get_latest_payload().items() if k.startswith("weights/")} == {
        "weights/effective_rank/fc1": 3.0,
        "weights/avg_abs_weight/fc1": 0.5,
        "weights/effective_rank/fc2": 2.0,
    }


def test_a_policy_without_parameters_only_logs(make_reporter, caplog):
    reporter = make_reporter(grad_mean_variance_interval=1, analyze_weights_interval=1)
    with caplog.at_level(logging.WARNING, logger="fusedstats.reporter"):
        reporter.report_epoch(1, 1, {}, {}, policy=object())
    assert reporter.get_latest_payload() == {"metric/agent_step": 1.0, "metric/epoch": 1.0}
    messages = [r.getMessage() for r in caplog.records]
    assert any("gradient stats skipped" in m for m in messages)
    assert any("weight stats skipped" in m for m in messages)


def test_num_minibatches_from_the_trainer_config(make_reporter):
    reporter = make_reporter()
    cfg = {"batch_size": 4096, "minibatch_size": 1024}
    reporter.report_epoch(1, 1, {}, {}, trainer_cfg=cfg)
    assert reporter.get_latest_payload()["parameters/num_minibatches"] == 4.0
    reporter.report_epoch(2, 2, {}, {}, trainer_cfg=SimpleNamespace(num_minibatches=8))
    assert reporter.get_latest_payload()["parameters/num_minibatches"] == 8.0


def test_get_latest_payload_is_a_copy(make_reporter):
    reporter = make_reporter()
    assert reporter.get_latest_payload() is None
    reporter.report_epoch(1, 1, {}, {})
    reporter.get_latest_payload()["metric/epoch"] = 99.0
    assert reporter.get_latest_payload()["metric/epoch"] == 1.0
    reporter.finalize()
    assert reporter.get_latest_payload() is None


# ---- trainer component ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "epoch", "prev", "expected"),
    [
        (0, 0, None, False),
        (0, 10, None, False),
        (-1, 5, None, False),
        (-3, 6, 2, False),
        (1, 0, None, True),
        (1, 7, None, True),
        (1, 7, 7, False),  # nothing new since prev
        (1, 7, 9, False),  # prev after epoch
        (3, 0, None, True),
        (3, 3, None, True),
        (3, 4, None, False),
        (3, 7, 5, True),  # skipped epochs still cross the boundary at 6
        (3, 8, 6, False),
        (3, 9, 2, True),  # crossed two boundaries: handled once
        (5, 4, -1, True),  # the boundary at 0 lies in (-1, 4]
        (5, 9, 5, False),
    ],
)
def test_should_handle_epoch(interval, epoch, prev, expected):
    assert TrainerComponent(interval).should_handle_epoch(epoch, prev) is expected


def test_the_reporter_interval_is_the_config_interval(make_reporter):
    reporter = make_reporter(interval=4)
    assert reporter.epoch_interval == 4
    assert [e for e in range(1, 13) if reporter.should_handle_epoch(e)] == [4, 8, 12]


def test_register_and_on_epoch_end_read_the_context(make_reporter, stopwatch, clock):
    model = _model()
    _backward(model)
    context = SimpleNamespace(
        agent_step=500,
        latest_losses_stats={"policy_loss": 0.5},
        experience=Experience(),
        policy=model,
        stopwatch=stopwatch,
        config=SimpleNamespace(hyperparameters={"gamma": 0.9}),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        system_monitor=SimpleNamespace(stats=lambda: {"monitor/gpu_util": 50}),
        memory_monitor=SimpleNamespace(stats=lambda: {"buffer": 8.0}),
    )
    reporter = make_reporter(grad_mean_variance_interval=5)
    reporter.register(context)
    assert context.stats_reporter is reporter
    assert reporter.context is context
    with stopwatch("_rollout"):
        reporter.on_step({"game": {"score": 1.0}})
        clock.advance(5.0)
    reporter.on_epoch_end(5)
    payload = reporter.get_latest_payload()
    assert payload["metric/epoch"] == 5.0
    assert payload["metric/agent_step"] == 500.0
    assert payload["losses/policy_loss"] == 0.5
    assert payload["experience/rewards"] == 0.75
    assert payload["env_game/score"] == 1.0
    assert payload["parameters/learning_rate"] == 0.1
    assert payload["parameters/num_minibatches"] == 4.0
    assert payload["hyperparameters/gamma"] == 0.9
    assert payload["monitor/gpu_util"] == 50.0
    assert payload["trainer_memory/buffer"] == 8.0
    assert payload["overview/sps"] == 100.0
    assert payload["grad/norm"] > 0


def test_on_epoch_end_before_register_only_logs(make_reporter, caplog):
    reporter = make_reporter()
    with caplog.at_level(logging.WARNING, logger="fusedstats.reporter"):
        reporter.on_epoch_end(1)
    assert reporter.get_latest_payload() is None
    assert "before register" in caplog.text


def test_training_complete_and_failure_finalize(make_reporter):
    reporter = make_reporter()
    reporter.report_epoch(1, 1, {}, {})
    reporter.on_training_complete()
    assert reporter.get_latest_payload() is None
    reporter.report_epoch(2, 2, {}, {})  # a reporter still works after finalize
    reporter.on_failure()
    assert reporter.get_latest_payload() is None


def test_wandb_run_property(make_reporter):
    run = SimpleNamespace(name="r")
    reporter = make_reporter(wandb_run=run)
    assert reporter.wandb_run is run
    other = SimpleNamespace(name="s")
    reporter.wandb_run = other
    assert reporter.wandb_run is other
    reporter.wandb_run = None
    assert reporter.wandb_run is None


# ---- no-op ------------------------------------------------------------------------------


def test_from_config_none_is_a_noop_reporter():
    reporter = StatsReporter.from_config(None)
    assert isinstance(reporter, NoOpStatsReporter)
    assert isinstance(reporter, StatsReporter)
    assert reporter.epoch_interval == 999999
    assert reporter.wandb_run is None
    assert reporter.stats_run_id is None
    assert not reporter.should_handle_epoch(1)
    assert not reporter.should_handle_epoch(1000)

    calls = []

    class Client:
        def __getattr__(self, name):
            calls.append(name)
            raise AssertionError(f"the no-op reporter called {name}")

    noop = StatsReporter.from_config(None, stats_client=Client(), wandb_run=object())
    assert noop.wandb_run is None
    noop.wandb_run = object()
    assert noop.wandb_run is None
    context = SimpleNamespace()
    noop.register(context)
    assert context.stats_reporter is noop
    noop.on_step([{"a/b": 1.0}])
    noop.accumulate_infos({"a/b": 1.0})
    noop.process_rollout([{"a/b": 1.0}])
    noop.update_grad_stats({"grad/norm": 1.0})
    noop.update_eval_scores(EvalRewardSummary({"nav": 1.0}))
    assert not hasattr(context, "latest_eval_scores")
    noop.report_epoch(1, 10, {"policy_loss": 1.0}, {"rewards": 1.0}, policy=_model())
    noop.on_epoch_end(1)
    assert noop.get_latest_payload() is None
    assert noop.create_epoch(None, 0, 1) is None
    noop.clear_rollout_stats()
    noop.clear_grad_stats()
    noop.on_training_complete()
    noop.on_failure()
    noop.finalize("failed")
    assert len(noop.state.rollout_stats) == 0
    assert noop.state.grad_stats == {}
    assert calls == []


def test_from_config_builds_a_reporter(make_reporter):
    config = StatsReporterConfig(report_to_console=False, report_to_wandb=False, interval=2)
    reporter = StatsReporter.from_config(config)
    try:
        assert type(reporter) is StatsReporter
        assert reporter.config is config
        assert reporter.epoch_interval == 2
    finally:
        reporter.finalize()
