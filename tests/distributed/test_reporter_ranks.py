"""StatsReporter across 2 real gloo ranks: rank 0 reports every rank's environments."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import pytest
from tests.distributed import scenarios
from tests.distributed.world import fresh_seed, run_world, skip_without_gloo

from fusedstats.reporter import StatsReporter, StatsReporterConfig

CONFIG = {"report_to_wandb": False, "report_to_stats_client": False, "report_to_console": False}


def _env_payload(infos_per_step: list[list[dict[str, Any]]], epoch: int) -> dict[str, float]:
    reporter = StatsReporter(StatsReporterConfig(**CONFIG))
    for infos in infos_per_step:
        reporter.on_step(infos)
    reporter.report_epoch(epoch=epoch, agent_step=100 * epoch, losses_stats={}, experience={})
    payload = reporter.get_latest_payload() or {}
    reporter.finalize()
    return {k: v for k, v in payload.items() if k.startswith("env_")}


def _assert_close(got: dict[str, float], want: dict[str, float]) -> None:
    assert list(got) == list(want)
    for key, value in want.items():
        assert math.isclose(got[key], value, rel_tol=1e-12, abs_tol=1e-12), (key, got[key], value)


@pytest.fixture(scope="module")
def two_ranks() -> dict[str, Any]:
    skip_without_gloo()
    seed = fresh_seed()
    return {
        "seed": seed,
        "outs": run_world("tests.distributed.scenarios:reporter_checks", 2, (seed,)),
    }


def test_rank0_payload_holds_every_ranks_environments(two_ranks: dict[str, Any]) -> None:
    seed, outs = two_ranks["seed"], two_ranks["outs"]
    for i, epoch in enumerate((1, 2)):  # the second epoch: merged from fresh stats again
        every = [s for r in range(2) for s in scenarios.rollout_infos(seed + epoch, r)]
        _assert_close(outs[0]["merged"][i], _env_payload(every, epoch))
        # Rank 1 keeps reporting its own environments.
        _assert_close(
            outs[1]["merged"][i], _env_payload(scenarios.rollout_infos(seed + epoch, 1), epoch)
        )


def test_with_merging_off_each_rank_reports_its_own(two_ranks: dict[str, Any]) -> None:
    seed, outs = two_ranks["seed"], two_ranks["outs"]
    for rank in range(2):
        for i, epoch in enumerate((1, 2)):
            own = _env_payload(scenarios.rollout_infos(seed + epoch, rank), epoch)
            _assert_close(outs[rank]["local"][i], own)


def test_without_torch_nothing_imports_it() -> None:
    """A reporter (merging on, the default) in a process that never imported torch stays
    local and does not import torch; neither does fusedstats.distributed."""
    code = (
        "import sys\n"
        "from fusedstats.reporter import StatsReporter, StatsReporterConfig\n"
        "from fusedstats.distributed import sync_logger, world_size\n"
        "r = StatsReporter(StatsReporterConfig(report_to_wandb=False, "
        "report_to_stats_client=False, report_to_console=False))\n"
        "r.on_step([{'game/score': 1.0}, {'game/score': 2.0}])\n"
        "r.report_epoch(epoch=1, agent_step=1, losses_stats={}, experience={})\n"
        "assert r.get_latest_payload()['env_game/score'] == 1.5\n"
        "assert world_size() == 1\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "r.finalize()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
