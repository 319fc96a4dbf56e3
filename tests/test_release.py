"""The release recipe stays consistent with the code it ships: the cibuildwheel section of
pyproject.toml, the smoke subset it runs, and the CUDA toolkit it pins. (The recipe itself
runs on a public forge, not here: .github/workflows/wheels.yml.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    not (REPO / "pyproject.toml").is_file(), reason="not run from a source checkout"
)


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _x86_override(cibw: dict) -> dict:
    (override,) = [o for o in cibw["overrides"] if o["select"] == "*-manylinux_x86_64"]
    return override


def test_wheels_for_every_supported_python():
    project = _pyproject()
    cibw = project["tool"]["cibuildwheel"]
    assert project["project"]["requires-python"] == ">=3.10"
    assert cibw["build"] == ["cp310-*", "cp311-*", "cp312-*", "cp313-*"]
    assert cibw["linux"]["archs"] == ["x86_64", "aarch64"]
    assert cibw["manylinux-x86_64-image"] == cibw["manylinux-aarch64-image"] == "manylinux_2_28"


def test_the_smoke_subset_exists():
    cibw = _pyproject()["tool"]["cibuildwheel"]
    assert cibw["test-command"] == "bash {project}/scripts/smoke_tests.sh {project}"
    script = (REPO / "scripts" / "smoke_tests.sh").read_text()
    listed = re.findall(r'"\$checkout/(tests/[\w/]+\.py)"', script)
    assert "tests/test_wheel.py" in listed and len(listed) >= 5
    missing = [p for p in listed if not (REPO / p).is_file()]
    assert not missing, f"scripts/smoke_tests.sh runs test files that do not exist: {missing}"


def test_x86_64_wheels_pin_one_cuda_that_knows_every_target_gpu():
    cibw = _pyproject()["tool"]["cibuildwheel"]
    assert cibw["environment"]["FUSEDSTATS_CUDA"] == "OFF"  # aarch64: CPU-only
    x86 = _x86_override(cibw)
    assert x86["environment"]["FUSEDSTATS_CUDA"] == "ON"  # a CUDA problem fails the release
    assert x86["test-environment"]["FUSEDSTATS_TEST_EXPECT_CUDA"] == "1"
    installed = {
        m.group(1).replace("-", ".")
        for cmd in x86["before-all"]
        for m in re.finditer(r"cuda-(?:nvcc|cudart-devel)-(\d+-\d+)", cmd)
    }
    (version,) = installed  # nvcc and the runtime of one release
    assert x86["environment"]["CUDACXX"] == f"/usr/local/cuda-{version}/bin/nvcc"

    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    done = subprocess.run(
        [cmake, f"-DFS_NVCC_VERSION={version}", "-P", str(REPO / "cmake" / "FusedstatsCuda.cmake")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    archs = re.search(r"^archs=(.*)$", done.stdout, re.MULTILINE)
    assert archs is not None
    # Blackwell (sm_100, sm_120) machine code needs the pinned nvcc to be 12.8 or newer.
    assert archs.group(1) == "75-real;80-real;90-real;100-real;120", (version, archs.group(1))
