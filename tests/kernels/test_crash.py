"""No input crashes the process: each exotic input runs tensor_stats in a subprocess,
which must exit normally with a clear error or the right numbers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.kernels.crash_cases import CASES

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(CASES))
def test_exotic_input_does_not_crash(name: str) -> None:
    expected = CASES[name][1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "tests.kernels.crash_cases", name],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, (
        f"{name}: the process died (exit code {done.returncode}):\n{done.stderr[-2000:]}"
    )
    line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if expected == "match":
        assert line == "result match", f"{name}: {line}\n{done.stderr[-1000:]}"
    else:
        assert line.startswith(f"raised {expected}:"), f"{name}: {line}\n{done.stderr[-1000:]}"
        named = re.search(r"item \d+", line) or "out must be" in line
        assert named, f"{name}: the message names no item: {line}"
