"""The reporter package's face: names and light imports."""

import json
import subprocess
import sys

import fusedstats.reporter

SPEC_NAMES = (
    "Timer",
    "Stopwatch",
    "StatsReporterConfig",
    "StatsReporterState",
    "NoOpStatsReporter",
    "StatsReporter",
    "build_wandb_payload",
    "compute_timing_stats",
    "EvalRewardSummary",
    "TrainerComponent",
)


def test_the_spec_names_are_exported():
    for name in SPEC_NAMES:
        assert name in fusedstats.reporter.__all__
        assert getattr(fusedstats.reporter, name) is not None


def _loaded_after(code):
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_fusedstats_does_not_load_the_reporter():
    code = (
        "import json, sys, fusedstats; "
        "print(json.dumps([m for m in ('fusedstats.reporter', 'pydantic') if m in sys.modules]))"
    )
    assert _loaded_after(code) == []


def test_the_reporter_and_its_noop_load_no_heavy_module():
    code = (
        "import json, sys; "
        "from fusedstats.reporter import StatsReporter; "
        "r = StatsReporter.from_config(None); "
        "r.on_step([{'a/b': 1.0}]); r.report_epoch(1, 1, {}, {}); r.finalize(); "
        "print(json.dumps([m for m in ('numba', 'torch', 'wandb') if m in sys.modules]))"
    )
    assert _loaded_after(code) == []
