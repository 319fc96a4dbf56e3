"""Infos that cannot poison the reporter's rollout stats (docs/reporter.md, rollout infos): a
cyclic or ~1,000-deep info is skipped and counted while the call's other infos are
kept, a single dict is one info, a non-list is refused with a warning, and keys that
embed ever-new ids do not grow the key table forever."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from fusedstats.reporter import StatsReporter
from fusedstats.rollout import RolloutStats


def _deep(levels: int) -> dict[str, Any]:
    info: dict[str, Any] = {"score": 9.0}
    for _ in range(levels - 1):
        info = {"level": info}
    return info


def _cyclic() -> dict[str, Any]:
    info: dict[str, Any] = {"game": {"score": 100.0}}
    info["game"]["parent"] = info
    return info


def _env_keys(reporter: StatsReporter) -> dict[str, float]:
    payload = reporter.get_latest_payload() or {}
    return {k: v for k, v in payload.items() if k.startswith("env_")}


@pytest.mark.parametrize("bad", [_cyclic, lambda: _deep(1000)], ids=["cyclic", "1000_deep"])
def test_a_bad_info_is_skipped_and_the_call_kept(
    make_reporter: Callable[..., StatsReporter],
    caplog: pytest.LogCaptureFixture,
    bad: Callable[[], dict[str, Any]],
) -> None:
    reporter = make_reporter()
    with caplog.at_level(logging.WARNING, logger="fusedstats.reporter"):
        reporter.process_rollout([{"game": {"score": 1.0}}, bad(), {"game": {"score": 3.0}}])
        reporter.process_rollout([bad(), {"game": {"score": 5.0}}])
    stats = reporter.state.rollout_stats
    assert stats.means() == {"game/score": 3.0}  # 1, 3 and 5: the good infos all kept
    assert sum(stats.rejected.values()) == 2
    warnings = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(warnings) == 1  # once per reason, not per call
    assert "the other infos were kept" in warnings[0] and "info 1 of an add() call" in warnings[0]
    reporter.report_epoch(1, 10, {}, {})
    assert _env_keys(reporter) == {"env_game/score": 3.0}
    assert reporter.state.rollout_stats.rejected == {}  # cleared with the stats


@pytest.mark.parametrize("bad", [_cyclic, lambda: _deep(1000)], ids=["cyclic", "1000_deep"])
def test_rollout_stats_add_never_raises_recursion_error(bad: Callable[[], Any]) -> None:
    stats = RolloutStats()
    stats.add([bad(), {"x": 1.0}])
    stats.add(bad())  # as the one info of a call
    assert stats.means() == {"x": 1.0}
    assert sum(stats.rejected.values()) == 2


def test_process_rollout_takes_a_single_dict_as_one_info(
    make_reporter: Callable[..., StatsReporter],
) -> None:
    reporter = make_reporter()
    reporter.process_rollout({"game": {"score": 2.0}, "agent": {"hp": [3.0, 5.0]}})
    reporter.process_rollout([{"game": {"score": 4.0}}])
    reporter.report_epoch(1, 10, {}, {})
    assert _env_keys(reporter) == {"env_game/score": 3.0, "env_agent/hp": 4.0}


@pytest.mark.parametrize("bad", ["game/score", b"x", 3.5, None], ids=repr)
def test_process_rollout_refuses_what_is_not_infos_clearly(
    make_reporter: Callable[..., StatsReporter], caplog: pytest.LogCaptureFixture, bad: Any
) -> None:
    reporter = make_reporter()
    with caplog.at_level(logging.WARNING, logger="fusedstats.reporter"):
        reporter.process_rollout(bad)
        reporter.process_rollout(bad)
    messages = [r.getMessage() for r in caplog.records if "process_rollout" in r.getMessage()]
    assert len(messages) == 1 and f"got {type(bad).__name__}" in messages[0]
    assert "refused" in messages[0] and len(reporter.state.rollout_stats) == 0


def test_keys_with_ever_new_ids_do_not_grow_the_key_table(
    make_reporter: Callable[..., StatsReporter],
) -> None:
    """Episode ids in keys: 200 epochs of new keys; the table holds only the recent ones
    (forgotten after 10 reports unseen), and each epoch's payload is still complete."""
    reporter = make_reporter()
    sizes = []
    for epoch in range(1, 201):
        reporter.process_rollout(
            [
                {"game": {"score": 1.0}, f"episode_{epoch}_{env}": {"return": float(env)}}
                for env in range(4)
            ]
        )
        reporter.report_epoch(epoch, epoch * 10, {}, {})
        env = _env_keys(reporter)
        assert env[f"env_episode_{epoch}_3/return"] == 3.0 and len(env) == 5
        sizes.append(len(reporter.state.rollout_stats._flattener.names))
    assert sizes[-1] == max(sizes[20:])  # stopped growing
    assert sizes[-1] <= 1 + 4 * 10  # game/score + 10 reports' episode keys
