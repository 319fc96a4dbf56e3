"""Stopwatch and compute_timing_stats, on a clock the test moves."""

import pytest

from fusedstats.reporter import Stopwatch, Timer, compute_timing_stats


def test_named_timers_time_blocks(stopwatch, clock):
    with stopwatch("_rollout"):
        clock.advance(2.0)
    with stopwatch.time("_train"):
        clock.advance(3.0)
    with stopwatch("_rollout"):
        clock.advance(0.5)
    clock.advance(1.0)
    assert stopwatch.elapsed("_rollout") == 2.5
    assert stopwatch.elapsed("_train") == 3.0
    assert stopwatch.elapsed() == 6.5  # the global timer runs since construction
    assert stopwatch.elapsed("never") == 0.0
    assert stopwatch.all_elapsed() == {"_rollout": 2.5, "_train": 3.0}
    assert stopwatch.all_elapsed(include_global=True)["global"] == 6.5
    assert stopwatch.names() == ["global", "_rollout", "_train"]
    assert isinstance(stopwatch, Timer)


def test_a_running_timer_counts_its_open_interval(stopwatch, clock):
    stopwatch.start("_train")
    clock.advance(1.5)
    assert stopwatch.is_running("_train")
    assert stopwatch.elapsed("_train") == 1.5
    clock.advance(0.5)
    assert stopwatch.stop("_train") == 2.0
    assert not stopwatch.is_running("_train")


def test_a_nested_block_of_the_same_name_counts_once(stopwatch, clock):
    with stopwatch("_train"):
        clock.advance(1.0)
        with stopwatch("_train"):
            clock.advance(1.0)
        assert stopwatch.is_running("_train")
        clock.advance(1.0)
    assert stopwatch.elapsed("_train") == 3.0


def test_stopping_a_timer_that_is_not_running_raises(stopwatch):
    with pytest.raises(ValueError, match="not running"):
        stopwatch.stop("_train")


def test_an_exception_in_a_block_still_stops_the_timer(stopwatch, clock):
    with pytest.raises(RuntimeError), stopwatch("_train"):
        clock.advance(1.0)
        raise RuntimeError("boom")
    assert not stopwatch.is_running("_train")
    assert stopwatch.elapsed("_train") == 1.0


def test_laps_return_the_time_since_the_last_lap(stopwatch, clock):
    with stopwatch("_rollout"):
        clock.advance(2.0)
    clock.advance(2.0)
    assert stopwatch.lap_all(100) == {"global": 4.0, "_rollout": 2.0}
    assert stopwatch.lap_steps() == 100
    with stopwatch("_train"):
        clock.advance(1.0)
    clock.advance(1.0)
    assert stopwatch.lap_all(250) == {"global": 2.0, "_rollout": 0.0, "_train": 1.0}
    assert stopwatch.lap_steps() == 150
    assert stopwatch.last_lap() == 2.0
    assert stopwatch.last_lap("_train") == 1.0
    assert stopwatch.last_lap("never") == 0.0
    assert stopwatch.rate(250) == 250 / 6.0


def test_reset_forgets_everything(stopwatch, clock):
    with stopwatch("_train"):
        clock.advance(1.0)
    stopwatch.lap_all(10)
    stopwatch.reset()
    clock.advance(2.0)
    assert stopwatch.names() == ["global"]
    assert stopwatch.elapsed() == 2.0
    assert stopwatch.lap_all(5) == {"global": 2.0}
    assert stopwatch.lap_steps() == 5


def test_compute_timing_stats_keys_and_values(stopwatch, clock):
    with stopwatch("_rollout"):
        clock.advance(2.0)
    with stopwatch("_train"):
        clock.advance(3.0)
    clock.advance(1.0)
    info = compute_timing_stats(stopwatch, agent_step=600)
    assert info.wall_time == 6.0
    assert info.train_time == 5.0
    assert info.epoch_steps == 600
    assert info.epoch_steps_per_second == 100.0
    assert info.steps_per_second == 100.0
    assert info.timing_stats == {
        "timing_per_epoch/frac/_rollout": 2.0 / 6.0,
        "timing_per_epoch/frac/_train": 0.5,
        "timing_per_epoch/msec/_rollout": 2000.0,
        "timing_per_epoch/msec/_train": 3000.0,
        "timing_per_epoch/sps": 100.0,
        "timing_cumulative/frac/_rollout": 2.0 / 6.0,
        "timing_cumulative/frac/_train": 0.5,
        "timing_cumulative/sps": 100.0,
    }
    # Second epoch: the lap covers only its own 4 s and 200 steps; totals keep growing.
    with stopwatch("_rollout"):
        clock.advance(1.0)
    clock.advance(3.0)
    info = compute_timing_stats(stopwatch, agent_step=800)
    assert info.wall_time == 10.0
    assert info.train_time == 6.0
    assert info.epoch_steps == 200
    assert info.epoch_steps_per_second == 50.0
    assert info.steps_per_second == 80.0
    assert info.timing_stats == {
        "timing_per_epoch/frac/_rollout": 0.25,
        "timing_per_epoch/frac/_train": 0.0,
        "timing_per_epoch/msec/_rollout": 1000.0,
        "timing_per_epoch/msec/_train": 0.0,
        "timing_per_epoch/sps": 50.0,
        "timing_cumulative/frac/_rollout": 0.3,
        "timing_cumulative/frac/_train": 0.3,
        "timing_cumulative/sps": 80.0,
    }


def test_every_ratio_is_zero_when_no_time_passed(stopwatch):
    with stopwatch("_train"):
        pass
    info = compute_timing_stats(stopwatch, agent_step=100)
    assert info.epoch_steps_per_second == 0.0
    assert info.steps_per_second == 0.0
    assert info.timing_stats == {
        "timing_per_epoch/frac/_train": 0.0,
        "timing_per_epoch/msec/_train": 0.0,
        "timing_per_epoch/sps": 0.0,
        "timing_cumulative/frac/_train": 0.0,
        "timing_cumulative/sps": 0.0,
    }


def test_resume_from_state_counts_only_steps_and_time_since_the_resume(clock):
    before = Stopwatch(clock=clock)
    with before("_rollout"):
        clock.advance(40.0)
    clock.advance(10.0)
    before.lap_all(10_000)
    state = before.state_dict()
    assert state == {"elapsed": {"global": 50.0, "_rollout": 40.0}, "step": 10_000}

    clock.now = 1000.0  # a new process: its clock has nothing to do with the old one
    after = Stopwatch(clock=clock)
    after.load_state_dict(state)
    with after("_rollout"):
        clock.advance(4.0)
    clock.advance(1.0)
    info = compute_timing_stats(after, agent_step=10_500)
    assert info.wall_time == 55.0  # totals include the first run
    assert info.train_time == 44.0
    assert info.timing_stats["timing_cumulative/frac/_rollout"] == 44.0 / 55.0
    # 500 steps in 5 s, not 10,500 steps in 55 s (191/s)
    assert info.epoch_steps == 500
    assert info.epoch_steps_per_second == 100.0
    assert info.steps_per_second == 100.0
    assert info.timing_stats["timing_per_epoch/frac/_rollout"] == 0.8


def test_resume_step_overrides_the_checkpoint_step(clock):
    sw = Stopwatch(clock=clock)
    sw.load_state_dict({"elapsed": {"global": 20.0}, "step": 10}, resume_step=2_000)
    clock.advance(2.0)
    assert sw.rate(2_400) == 200.0
    sw.lap_all(2_400)
    assert sw.lap_steps() == 400


def test_a_baseline_on_a_fresh_stopwatch(clock):
    sw = Stopwatch(clock=clock)
    clock.advance(3.0)  # start-up before training resumes: not part of any rate
    sw.set_resume_baseline(5_000)
    clock.advance(10.0)
    info = compute_timing_stats(sw, agent_step=6_000)
    assert info.steps_per_second == 100.0  # not 6,000 / 13
    assert info.epoch_steps == 1_000
    assert info.epoch_steps_per_second == 100.0  # the first lap starts at the baseline too


def test_loading_state_keeps_a_running_timer_running(clock):
    sw = Stopwatch(clock=clock)
    sw.start("_train")
    clock.advance(1.0)
    sw.load_state_dict({"elapsed": {"global": 10.0, "_train": 5.0}, "step": 0})
    clock.advance(2.0)
    assert sw.stop("_train") == 2.0
    assert sw.elapsed("_train") == 7.0
    assert sw.elapsed() == 12.0


def test_the_default_clock_is_real_time():
    sw = Stopwatch()
    with sw("_x"):
        sum(range(1000))
    assert 0.0 < sw.elapsed("_x") <= sw.elapsed()
