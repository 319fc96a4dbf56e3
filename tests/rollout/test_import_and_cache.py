"""What importing and warming up costs: numba only at warm-up, torch never, and the
compiled kernel loaded from numba's on-disk cache by later processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
import fusedstats
seen = {"rollout_after_fusedstats": "fusedstats.rollout" in sys.modules}
import fusedstats.rollout
seen["numba_after_import"] = "numba" in sys.modules
from fusedstats.rollout import RolloutStats
stats = RolloutStats()
stats.add([{"x": 1.0, "y": [1, 2]}])
seen["numba_after_use"] = "numba" in sys.modules
seen["torch_after_use"] = "torch" in sys.modules
from fusedstats.rollout import _kernels
s = _kernels.reduce_segments.stats
seen["cache_hits"] = sum(s.cache_hits.values())
seen["cache_misses"] = sum(s.cache_misses.values())
print(json.dumps(seen))
"""


def _probe(env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.slow
def test_light_import_and_cached_kernels(tmp_path: Path) -> None:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))  # an empty cache: compile
    first = _probe(env)
    assert first == {
        "rollout_after_fusedstats": False,
        "numba_after_import": False,
        "numba_after_use": True,
        "torch_after_use": False,
        "cache_hits": 0,
        "cache_misses": first["cache_misses"],
    }
    assert any(tmp_path.rglob("*.nbi")), "numba wrote no cache index"
    second = _probe(env)  # a later process loads what the first one compiled
    assert second["cache_hits"] == 1 and second["cache_misses"] == 0
