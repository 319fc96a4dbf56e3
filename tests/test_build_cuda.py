"""How the build treats CUDA (cmake/FusedstatsCuda.cmake): GPU architectures chosen from the
nvcc version, and with FUSEDSTATS_CUDA=AUTO any CUDA problem means "no _cuda" with a
warning, never a failed configure (FUSEDSTATS_CUDA=ON still fails loudly).

The configure tests run the real CMakeLists.txt against a fake nvcc: a wrapper around the
real one that reports another version (its --version banner and the __CUDACC_VER_*__
macros CMake reads) and, like an old nvcc, rejects the architectures that version does not
know. They need cmake, nvcc and pybind11's CMake files; without them they are skipped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.machinery import ExtensionFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "cmake" / "FusedstatsCuda.cmake"
CMAKE = shutil.which("cmake")
NVCC = shutil.which("nvcc") or next(
    (p for p in ("/usr/local/cuda/bin/nvcc",) if os.access(p, os.X_OK)), None
)
CONFIGURE_TIMEOUT_S = 300
BUILD_TIMEOUT_S = 600

pytestmark = [
    pytest.mark.skipif(CMAKE is None, reason="cmake is not installed"),
    pytest.mark.skipif(not MODULE.is_file(), reason="not run from a source checkout"),
]
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="no nvcc to wrap in a fake one")

# The first CUDA release whose nvcc compiles machine code for each GPU generation
# fusedstats targets (NVIDIA's release notes).
FIRST_CUDA_FOR_ARCH = {75: (10, 0), 80: (11, 0), 90: (11, 8), 100: (12, 8), 120: (12, 8)}
OLDEST_SUPPORTED = (11, 0)


def _choice(version: str) -> tuple[list[str], list[str]]:
    """(archs, flags) the module picks for this nvcc version, from `cmake -P`."""
    assert CMAKE is not None
    done = subprocess.run(
        [CMAKE, f"-DFS_NVCC_VERSION={version}", "-P", str(MODULE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return [a for a in out["archs"].split(";") if a], out["flags"].split(";")


def _check_choice(major: int, minor: int, build: int) -> None:
    version = f"{major}.{minor}.{build}"
    archs, flags = _choice(version)
    if (major, minor) < OLDEST_SUPPORTED:
        assert archs == [], f"nvcc {version} is unsupported, yet archs {archs} were chosen"
        return
    known = sorted(a for a, first in FIRST_CUDA_FOR_ARCH.items() if first <= (major, minor))
    # Machine code for every generation this nvcc knows, PTX only of the newest.
    assert archs == [f"{a}-real" for a in known[:-1]] + [str(known[-1])], version
    assert "--fmad=false" in flags
    assert "-Xfatbin=-compress-all" in flags
    # The denser codec raises CUDA 12's driver floor (525 -> 550): CUDA 13 only.
    assert ("--compress-mode=size" in flags) == (major >= 13), (version, flags)


KNOWN_RELEASES = [(10, 2, 89), (11, 0, 2), (11, 7, 99), (11, 8, 89), (12, 4, 131), (12, 6, 85)]
KNOWN_RELEASES += [(12, 8, 61), (12, 9, 86), (13, 0, 88), (13, 1, 0)]


@pytest.mark.parametrize("version", KNOWN_RELEASES)
def test_archs_for_known_nvcc_versions(version):
    _check_choice(*version)


@settings(max_examples=25, deadline=None)
@given(st.integers(9, 15), st.integers(0, 9), st.integers(0, 300))
def test_archs_for_any_nvcc_version(major, minor, build):
    _check_choice(major, minor, build)


# ---- configuring the real project with a fake nvcc --------------------------------

_FAKE_NVCC = """#!/usr/bin/env bash
# A fake nvcc {version}: the real one underneath, its version reported as {version}, and
# every architecture above sm_{max_arch} rejected as that release's nvcc would.
here="$(cd "$(dirname "$0")" && pwd)"
for arg in "$@"; do
  case "$arg" in
    --version|-V)
      echo "nvcc: NVIDIA (R) Cuda compiler driver"
      echo "Copyright (c) 2005-2024 NVIDIA Corporation"
      echo "Cuda compilation tools, release {major}.{minor}, V{version}"
      echo "Build cuda_{major}.{minor}.r{major}.{minor}/compiler.00000000_0"
      exit 0;;
  esac
done
for n in $(printf '%s\\n' "$@" | grep -oE '(sm|compute)_[0-9]+' | grep -oE '[0-9]+$'); do
  if [ "$n" -gt {max_arch} ]; then
    echo "nvcc fatal   : Unsupported gpu architecture 'compute_$n'" >&2
    exit 1
  fi
done
exec "{real}" --pre-include "$here/fake_version.h" "$@"
"""

_FAKE_VERSION_H = """#undef __CUDACC_VER_MAJOR__
#define __CUDACC_VER_MAJOR__ {major}
#undef __CUDACC_VER_MINOR__
#define __CUDACC_VER_MINOR__ {minor}
#undef __CUDACC_VER_BUILD__
#define __CUDACC_VER_BUILD__ {build}
"""


def _fake_nvcc(where: Path, major: int, minor: int, build: int, max_arch: int) -> Path:
    assert NVCC is not None
    where.mkdir(parents=True)
    fields = {"major": major, "minor": minor, "build": build, "max_arch": max_arch}
    fields.update(version=f"{major}.{minor}.{build}", real=str(Path(NVCC).resolve()))
    (where / "fake_version.h").write_text(_FAKE_VERSION_H.format(**fields))
    nvcc = where / "nvcc"
    nvcc.write_text(_FAKE_NVCC.format(**fields))
    nvcc.chmod(0o755)
    return nvcc


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUDA", "NVCC_"))}
    env.pop("FUSEDSTATS_CUDA", None)
    env.update(extra)
    return env


def _configure(build: Path, *defines: str, env: dict[str, str] | None = None):
    pybind11 = pytest.importorskip("pybind11", reason="pybind11's CMake files are needed")
    assert CMAKE is not None
    generator = "Ninja" if shutil.which("ninja") else "Unix Makefiles"
    cmd = [
        CMAKE,
        "-S",
        str(REPO),
        "-B",
        str(build),
        "-G",
        generator,
        f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
        f"-DPython_EXECUTABLE={sys.executable}",
        "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON",
        *defines,
    ]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=CONFIGURE_TIMEOUT_S,
        env=env if env is not None else _clean_env(),
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def _targets(build: Path) -> set[str]:
    commands = json.loads((build / "compile_commands.json").read_text())
    return {Path(c["file"]).name for c in commands}


def _compile_command(build: Path, source_name: str) -> str:
    commands = json.loads((build / "compile_commands.json").read_text())
    return next(c["command"] for c in commands if Path(c["file"]).name == source_name)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@needs_nvcc
@pytest.mark.slow
def test_auto_builds_cuda_with_an_nvcc_older_than_12_8(tmp_path):
    # CUDA 12.4 knows sm_90 at most: an H100 box with 12.4 used to fail `pip install`.
    nvcc = _fake_nvcc(tmp_path / "nvcc-12.4", 12, 4, 131, max_arch=90)
    build = tmp_path / "build"
    rc, log = _configure(build, f"-DCMAKE_CUDA_COMPILER={nvcc}", "-DFUSEDSTATS_CUDA=AUTO")
    assert rc == 0, log
    assert "building fusedstats._cuda (nvcc 12.4.131, archs 75-real;80-real;90)" in log
    assert "tensor_stats.cu" in _targets(build)
    cuda_cmd = _compile_command(build, "tensor_stats.cu")
    for arch in ("75", "80", "90"):
        assert f"sm_{arch}" in cuda_cmd
    assert "compute_90" in cuda_cmd  # PTX of the newest arch, for newer GPUs
    assert "sm_100" not in cuda_cmd and "sm_120" not in cuda_cmd
    assert "-Xfatbin=-compress-all" in cuda_cmd
    assert "--compress-mode" not in cuda_cmd

    # The extension builds and links with that nvcc, and says what it was built with.
    done = subprocess.run(
        [CMAKE, "--build", str(build), "--target", "_cuda"],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (so,) = build.glob("_cuda*.so")
    loader = ExtensionFileLoader("_cuda", str(so))
    spec = spec_from_loader("_cuda", loader)
    assert spec is not None
    module = module_from_spec(spec)
    loader.exec_module(module)
    info = module.build_info()
    assert info["cuda_version"] == "12.4.131"
    assert info["cuda_archs"] == "75-real,80-real,90"


@needs_nvcc
@pytest.mark.slow
@pytest.mark.parametrize(
    ("version", "archs", "why"),
    [
        # What CMakeLists.txt hard-coded before: sm_100/sm_120 need nvcc 12.8.
        ((12, 4, 131), "75-real;80-real;90-real;100-real;120", "Unsupported gpu architecture"),
        # Older than the oldest nvcc fusedstats supports.
        ((10, 2, 89), None, "nvcc 10.2.89 is older than 11.0"),
    ],
    ids=["archs-the-nvcc-rejects", "nvcc-too-old"],
)
def test_a_cuda_problem_is_a_warning_in_auto_and_an_error_in_on(tmp_path, version, archs, why):
    nvcc = _fake_nvcc(tmp_path / "nvcc", *version, max_arch=90)
    defines = [f"-DCMAKE_CUDA_COMPILER={nvcc}"]
    if archs is not None:
        defines.append(f"-DCMAKE_CUDA_ARCHITECTURES={archs}")

    rc, log = _configure(tmp_path / "auto", *defines, "-DFUSEDSTATS_CUDA=AUTO")
    assert rc == 0, log
    flat = _one_line(log)
    assert "building without fusedstats._cuda" in flat
    assert why in flat
    assert "fusedstats_cuda_probe.log" in flat  # where the full story is
    targets = _targets(tmp_path / "auto")
    assert "core_module.cpp" in targets
    assert "tensor_stats.cu" not in targets
    # build_info() of that build says why; the reason survives the shell (quotes, a ;).
    core_cmd = _compile_command(tmp_path / "auto", "core_module.cpp")
    assert "not built: " in core_cmd
    compiled = subprocess.run(
        core_cmd,
        shell=True,
        cwd=tmp_path / "auto",
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stderr

    rc, log = _configure(tmp_path / "on", *defines, "-DFUSEDSTATS_CUDA=ON")
    assert rc != 0
    flat = _one_line(log)
    assert "FUSEDSTATS_CUDA=ON but fusedstats._cuda cannot be built" in flat
    assert why in flat


@pytest.mark.slow
def test_no_nvcc_at_all(tmp_path):
    # Hide every nvcc from CMake's search (PATH and its system prefixes such as /usr/local).
    hidden = {"/usr/local/cuda/bin"}
    for nvcc in filter(None, [NVCC, shutil.which("nvcc")]):
        hidden |= {str(Path(nvcc).parent), str(Path(nvcc).resolve().parent)}
    path = os.pathsep.join(
        d for d in os.environ.get("PATH", "").split(os.pathsep) if d and d not in hidden
    )
    cxx = shutil.which("c++", path=path) or shutil.which("g++", path=path)
    if cxx is None:
        pytest.skip("the C++ compiler sits next to nvcc: cannot hide nvcc alone")
    env = _clean_env(PATH=path)
    ignore = f"-DCMAKE_IGNORE_PATH={';'.join(sorted(hidden))}"

    rc, log = _configure(tmp_path / "auto", "-DFUSEDSTATS_CUDA=AUTO", ignore, env=env)
    assert rc == 0, log
    assert "no nvcc found, building without fusedstats._cuda" in log
    assert "CMake Warning" not in log  # no nvcc is the normal CPU-only case: no warning
    assert "tensor_stats.cu" not in _targets(tmp_path / "auto")

    rc, log = _configure(tmp_path / "on", "-DFUSEDSTATS_CUDA=ON", ignore, env=env)
    assert rc != 0
    assert "no nvcc found" in _one_line(log)

    rc, log = _configure(tmp_path / "bad", "-DFUSEDSTATS_CUDA=maybe", ignore, env=env)
    assert rc != 0
    assert "FUSEDSTATS_CUDA must be AUTO, ON or OFF, not 'maybe'" in _one_line(log)
