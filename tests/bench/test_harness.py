"""The race harness every benchmark uses: order, what is on the clock, outputs, errors,
repetition caps, the slowest rank, the machine, the checkout, the JSON.

Times are made deterministic with a fake clock that setups, runs and syncs advance by
known amounts, so what the harness puts on the clock is asserted exactly.
"""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fusedstats
from fusedstats.bench.harness import (
    Method,
    Race,
    call,
    checkout_state,
    gloo_world,
    init_gloo,
    jsonable,
    machine_info,
    output_path,
    race,
    save_report,
    slowest_rank,
    version,
    with_threads,
    write_json,
)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def spend(self, seconds: float) -> None:
        self.now += seconds


def test_rounds_rotate_the_starting_method_after_one_warm_up_each():
    calls: list[str] = []
    methods = {name: call(lambda name=name: calls.append(name)) for name in "abc"}
    race(methods, reps=4)
    warm_up, rounds = calls[:3], calls[3:]
    assert warm_up == ["a", "b", "c"]
    assert rounds == list("abcbcacababc")


def test_setup_collect_and_before_run_off_the_clock_and_sync_on_it():
    clock = FakeClock()
    events: list[str] = []

    def setup() -> int:
        events.append("setup")
        clock.spend(100.0)
        return 7

    def run(state: int) -> int:
        events.append(f"run {state}")
        clock.spend(1.0)
        return state * 2

    def sync() -> None:
        events.append("sync")
        clock.spend(5.0)

    def before() -> None:
        events.append("before")
        clock.spend(50.0)

    r = race(
        {"m": Method(run=run, setup=setup)},
        reps=3,
        warmup=2,
        sync=sync,
        before=before,
        clock=clock,
    )
    # The run and the sync that waits for its work are timed; nothing else is.
    assert r.times["m"] == [6.0, 6.0, 6.0]
    assert events[:5] == ["setup", "before", "sync", "run 7", "sync"]
    assert events.count("setup") == 5 and events.count("run 7") == 5
    assert r.outputs["m"] == 14


@pytest.mark.parametrize("collect", ["before_setup", "after_setup"])
def test_a_full_collection_runs_where_collect_says(collect):
    events: list[str] = []

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            events.append("gc")

    method = Method(run=lambda _: events.append("run"), setup=lambda: events.append("setup"))
    was_enabled = gc.isenabled()
    gc.disable()  # no collection of the interpreter's own in between
    gc.callbacks.append(on_gc)
    try:
        race({"m": method}, reps=2, warmup=1, collect=collect)
    finally:
        gc.callbacks.remove(on_gc)
        if was_enabled:
            gc.enable()
    one = ["gc", "setup", "run"] if collect == "before_setup" else ["setup", "gc", "run"]
    assert events == one * 3


def test_no_collection_unless_asked_and_a_bad_collect_is_refused():
    count = [0]

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            count[0] += 1

    was_enabled = gc.isenabled()
    gc.disable()
    gc.callbacks.append(on_gc)
    try:
        race({"m": lambda: None}, reps=5)
    finally:
        gc.callbacks.remove(on_gc)
        if was_enabled:
            gc.enable()
    assert count[0] == 0
    with pytest.raises(ValueError, match="collect"):
        race({"m": lambda: None}, reps=1, collect="sometimes")  # type: ignore[arg-type]


def test_the_output_is_the_first_calls_check_of_its_state():
    states = iter(range(100))
    seen: list[int] = []
    method = Method(run=seen.append, setup=lambda: next(states), check=lambda s: f"state {s}")
    r = race({"m": method}, reps=3, warmup=2)
    assert r.outputs["m"] == "state 0"
    assert seen == [0, 1, 2, 3, 4]
    # Without a warm-up the first timed call gives it.
    r = race({"n": call(lambda: "first")}, reps=2, warmup=0)
    assert r.outputs["n"] == "first" and len(r.times["n"]) == 2


def test_max_reps_and_the_budget_cap_slow_methods():
    clock = FakeClock()
    methods = {
        "fast": call(lambda: clock.spend(1.0)),
        "capped": call(lambda: clock.spend(1.0), max_reps=2),
        "slow": call(lambda: clock.spend(10.0), budget_s=25.0),
        "too_slow": call(lambda: clock.spend(100.0), budget_s=25.0),
    }
    r = race(methods, reps=6, clock=clock)
    assert {n: len(t) for n, t in r.times.items()} == {
        "fast": 6,
        "capped": 2,
        "slow": 2,  # 25 s of budget at 10 s a call
        "too_slow": 1,  # always one timed call
    }


def test_a_failing_method_leaves_the_race_with_keep_going_and_raises_without():
    calls = [0]

    def flaky() -> None:
        calls[0] += 1
        if calls[0] == 3:
            raise RuntimeError("broke on call 3")

    r = race({"flaky": call(flaky), "fine": call(lambda: 1)}, reps=5, keep_going=True)
    assert r.errors == {"flaky": "RuntimeError: broke on call 3"}
    assert r.names == ["fine"] and len(r.times["fine"]) == 5
    assert len(r.times["flaky"]) == 1  # the warm-up, then one timed call, then the error
    assert r.medians() == {"fine": r.median("fine")}
    calls[0] = 0
    with pytest.raises(RuntimeError, match="broke on call 3"):
        race({"flaky": call(flaky)}, reps=5)


def test_a_timer_replaces_the_clock_and_sync():
    timed: list[str] = []

    def timer(fn):
        timed.append("timer")
        return 7.0, fn()

    r = race({"m": call(lambda: "x")}, reps=3, timer=timer)
    assert r.times["m"] == [7.0] * 3 and r.outputs["m"] == "x"
    assert len(timed) == 4


def test_cpu_time_and_page_faults_are_recorded_for_the_timed_calls():
    def touch_new_memory() -> int:
        block = np.ones(4 * 2**20 // 8)  # 4 MiB, written: its pages fault in
        return int(block.size)

    r = race({"alloc": call(touch_new_memory)}, reps=4, measure_cpu=True)
    assert len(r.cpu_times["alloc"]) == 4 and len(r.minor_faults["alloc"]) == 4
    assert all(c >= 0 for c in r.cpu_times["alloc"])
    assert max(r.minor_faults["alloc"]) > 0
    summary = r.summary("alloc")
    assert summary["reps"] == 4 and "median_cpu_s" in summary
    assert race({"x": lambda: 1}, reps=2).cpu_times == {}


def test_summary_ratio_and_fastest_read_the_times():
    r = Race(times={"a": [3.0, 1.0, 2.0, 10.0, 4.0], "b": [1.0, 1.0, 1.0]})
    assert r.summary("a") == {"median_s": 3.0, "min_s": 1.0, "p90_s": 4.0, "reps": 5}
    assert r.ratio("a", "b") == 3.0
    assert r.fastest(["a", "b"]) == "b"


def test_method_output_is_one_untimed_call():
    assert Method(run=lambda s: s + 1, setup=lambda: 1).output() == 2
    assert Method(run=lambda s: None, setup=lambda: [1], check=len).output() == 1


@given(
    st.integers(1, 5).flatmap(
        lambda reps: st.lists(
            st.fixed_dictionaries(
                {
                    "x": st.lists(st.floats(0, 1e3), min_size=reps, max_size=reps),
                    "y": st.lists(st.floats(0, 1e3), min_size=reps, max_size=reps),
                }
            ),
            min_size=1,
            max_size=6,
        )
    )
)
def test_slowest_rank_takes_the_maximum_per_repetition(per_rank):
    slowest = slowest_rank(per_rank)
    for name in ("x", "y"):
        for i, value in enumerate(slowest[name]):
            assert value == max(rank[name][i] for rank in per_rank)
            assert any(rank[name][i] == value for rank in per_rank)


def test_slowest_rank_refuses_ranks_that_raced_differently():
    assert slowest_rank([]) == {}
    with pytest.raises(ValueError, match="rank 1 raced 'x'"):
        slowest_rank([{"x": [1.0, 2.0]}, {"x": [1.0]}])
    with pytest.raises(ValueError, match="rank 1 raced 'x'"):
        slowest_rank([{"x": [1.0]}, {"y": [1.0]}])


def test_with_threads_sets_both_counts_and_restores_them_even_on_error():
    import torch

    before = torch.get_num_threads(), fusedstats.get_num_threads()
    seen = with_threads(lambda: (torch.get_num_threads(), fusedstats.get_num_threads()), 1)()
    assert seen == (1, 1)

    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        with_threads(boom, 1)()
    assert (torch.get_num_threads(), fusedstats.get_num_threads()) == before


def test_machine_info_names_the_machine_the_libraries_and_the_installed_package():
    import numpy

    info = machine_info(libraries=("numpy", "no-such-distribution-here"))
    assert info["numpy"] == numpy.__version__
    assert info["no-such-distribution-here"] is None
    assert info["fusedstats"] == fusedstats.__version__
    assert Path(info["fusedstats_file"]) == Path(fusedstats.__file__)
    assert info["fusedstats_build"]["simd_level"] == fusedstats.build_info()["simd_level"]
    assert info["cpu_cores"] == os.cpu_count() and info["device"] == "cpu"
    assert info["date_utc"].endswith("+00:00")
    load = info["load_average_1_5_15"]
    assert load is None or (len(load) == 3 and all(x >= 0 for x in load))
    assert version("numpy") == numpy.__version__


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


def test_checkout_state_reads_the_commit_and_changes_outside_results(tmp_path):
    root = tmp_path / "repo"
    (root / "bench" / "results").mkdir(parents=True)
    _git(root, "init", "-q")
    (root / "code.py").write_text("x = 1\n")
    (root / "bench" / "results" / "r.json").write_text("{}\n")
    _git(root, "add", ".")
    _git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = _git(root, "rev-parse", "HEAD")
    assert checkout_state(root) == {"commit": head, "dirty": False, "changed_files": []}
    # A benchmark's own results and untracked files do not make it dirty ...
    (root / "bench" / "results" / "r.json").write_text('{"new": 1}\n')
    (root / "scratch.txt").write_text("notes\n")
    assert checkout_state(root)["dirty"] is False
    # ... a change to tracked code does.
    (root / "code.py").write_text("x = 2\n")
    state = checkout_state(root)
    assert state["dirty"] is True and state["changed_files"] == ["code.py"]
    # A folder inside the repository is not a checkout's root; no repository: nothing.
    assert checkout_state(root / "bench") == {}
    assert checkout_state(tmp_path) == {}


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.floats(),
    st.text(max_size=5),
    st.floats(width=32).map(np.float32),
    st.integers(-1000, 1000).map(np.int64),
)
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), inner, max_size=4),
    ),
    max_leaves=20,
)


@given(trees)
def test_jsonable_makes_anything_strict_json(tree):
    text = json.dumps(jsonable(tree), allow_nan=False)
    assert isinstance(json.loads(text), (dict, list, str, int, float, bool, type(None)))


def test_jsonable_keeps_numbers_and_spells_out_the_rest():
    out = jsonable({"a": (1, 2.5, math.inf, -math.inf, math.nan), 3: np.float64(0.25)})
    assert out == {"a": [1, 2.5, "inf", "-inf", "nan"], "3": 0.25}
    assert jsonable(np.arange(3)) == [0, 1, 2]
    assert jsonable(object).startswith("<class")


def test_write_json_creates_the_folder_and_output_path_keeps_quick_runs_apart(tmp_path):
    path = write_json({"x": math.nan, ("k",): [1]}, tmp_path / "deep" / "r.json")
    assert json.loads(path.read_text()) == {"x": "nan", "('k',)": [1]}
    assert output_path(None, quick=True, default="d.json") is None
    assert output_path(None, quick=False, default="d.json") == Path("d.json")
    assert output_path("o.json", quick=True, default="d.json") == Path("o.json")


def test_save_report_writes_where_output_path_says(tmp_path, capsys):
    default = tmp_path / "d.json"
    assert save_report({"x": 1}, None, True, default) is None  # quick: nothing written
    assert not default.exists() and "wrote" not in capsys.readouterr().out
    assert save_report({"x": 1}, None, False, default) == default
    assert json.loads(default.read_text()) == {"x": 1}
    assert f"wrote {default}" in capsys.readouterr().out


def _sum_of_ranks(rank, world, init_file, cfg, queue):
    import torch
    import torch.distributed as dist

    init_gloo(rank, world, init_file, timeout_s=60)
    t = torch.tensor([float(rank + cfg["add"])])
    dist.all_reduce(t)
    if rank == 0:
        queue.put({"sum": t.item(), "world": dist.get_world_size()})
    dist.barrier()
    dist.destroy_process_group()


def test_gloo_world_spawns_the_ranks_and_returns_rank_0s_report():
    got = gloo_world(_sum_of_ranks, 3, {"add": 10}, timeout_s=120)
    assert got == {"sum": 0 + 1 + 2 + 3 * 10, "world": 3}
