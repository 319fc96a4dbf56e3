"""The package as shipped: OpenMP next to torch's in either import order, the CUDA-built
extension on a machine without a GPU driver, and what a repaired wheel bundles.

These tests are part of the wheel smoke subset (scripts/smoke_tests.sh), which CI runs
against the auditwheel-repaired wheel installed in a virtualenv with no compiler. There
FUSEDSTATS_TEST_WHEEL=1 turns the wheel-only checks from skips into requirements, and
FUSEDSTATS_TEST_EXPECT_CUDA=1 says the wheel must contain fusedstats._cuda.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import fusedstats
from fusedstats import _native

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = Path(fusedstats.__file__).resolve().parent
BUNDLED_LIBS = PACKAGE_DIR.parent / "fusedstats.libs"  # where auditwheel puts libgomp
TESTING_A_WHEEL = os.environ.get("FUSEDSTATS_TEST_WHEEL") == "1"
EXPECT_CUDA = os.environ.get("FUSEDSTATS_TEST_EXPECT_CUDA") == "1"
CHILD_TIMEOUT_S = 300

wheel_only = pytest.mark.skipif(
    not TESTING_A_WHEEL, reason="checks an installed wheel (FUSEDSTATS_TEST_WHEEL=1)"
)


def _run_child(code: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"child failed ({done.returncode}):\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


# The child imports torch and fusedstats in the given order, then makes both OpenMP
# runtimes work: torch's parallel elementwise ops and reductions, fusedstats' kernel at 1
# and 4 threads (bit-identical by contract), both interleaved and at the same time from two
# Python threads (each releases the GIL), checked against numpy and the pure-torch reference.
_OPENMP_CHILD = r"""
import json, os, sys, threading
# Loading, not importing, is what counts: fusedstats loads _core (and its libgomp) at
# first use, torch loads libtorch_cpu (and its OpenMP runtime) at import.
if sys.argv[1] == "torch-first":
    import torch
    torch.set_num_threads(2)
    import fusedstats
    fusedstats.set_num_threads(2)
else:
    import fusedstats
    fusedstats.set_num_threads(2)
    import torch
    torch.set_num_threads(2)
import numpy as np
from fusedstats.kernels import reference

THREADS = 4
torch.set_num_threads(THREADS)
gen = torch.Generator().manual_seed(int(sys.argv[2]))
xs = [
    torch.randn(3_000_001, dtype=torch.float64, generator=gen) * 3 + 1e3,
    torch.randn(1_000_003, dtype=torch.float32, generator=gen),
    torch.randn(70_001, dtype=torch.float64, generator=gen),
]
peak_threads = 0

def os_threads():
    global peak_threads
    peak_threads = max(peak_threads, len(os.listdir("/proc/self/task")))

def torch_work():
    x = xs[0]
    got = float(torch.sqrt(x * x + 1.0).sum())
    want = float(np.sqrt(x.numpy() * x.numpy() + 1.0).sum())
    assert abs(got - want) <= 1e-9 * abs(want), (got, want)
    os_threads()
    return got

def fs_work(n_threads):
    fusedstats.set_num_threads(n_threads)
    buf = fusedstats.tensor_stats(xs).host().copy()
    os_threads()
    return buf

t0 = torch_work()
one = fs_work(1)
four = fs_work(THREADS)
assert np.array_equal(one, four, equal_nan=True), "1 and 4 threads differ"
ref = reference.stats_buffer(xs).numpy()
assert np.allclose(four, ref, rtol=1e-6, atol=1e-6, equal_nan=True), np.abs(four - ref).max()
assert torch_work() == t0

errors = []
def fs_loop():
    try:
        for _ in range(8):
            assert np.array_equal(fs_work(THREADS), four, equal_nan=True)
    except BaseException as err:
        errors.append(repr(err))
worker = threading.Thread(target=fs_loop)
worker.start()
for _ in range(8):
    assert torch_work() == t0
worker.join(timeout=240)
assert not worker.is_alive() and not errors, errors

gomp = sorted({line.split()[-1] for line in open("/proc/self/maps") if "libgomp" in line})
print(json.dumps({
    "gomp": gomp,
    "fs_threads": fusedstats.get_num_threads(),
    "torch_threads": torch.get_num_threads(),
    "peak_threads": peak_threads,
    "openmp": fusedstats.build_info()["openmp"],
}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("order", ["torch-first", "fusedstats-first"])
def test_openmp_work_next_to_torch_in_either_import_order(order):
    seed = int.from_bytes(os.urandom(4), "little")
    out = _run_child(_OPENMP_CHILD, order, str(seed))
    assert out["fs_threads"] == 4 and out["torch_threads"] == 4
    if not out["openmp"]:
        pytest.skip("built without OpenMP")
    assert out["peak_threads"] >= 4, out  # the parallel regions really ran threaded
    assert out["gomp"], "OpenMP build, yet no libgomp is mapped"
    if TESTING_A_WHEEL:
        # Ours is the bundled copy under auditwheel's hashed name, whatever torch loaded:
        # a torch that ships its own libgomp.so.1 cannot take its place, nor we its.
        ours = [p for p in out["gomp"] if Path(p).parent == BUNDLED_LIBS]
        assert len(ours) == 1, out["gomp"]
        assert re.fullmatch(r"libgomp-[0-9a-f]{8}\.so[.0-9]*", Path(ours[0]).name), ours


# Imports the CUDA extension before anything else and checks that it did not load the
# driver (the static runtime loads libcuda at the first CUDA call only); then the package
# on CPU data; and last, whether this machine has a driver at all.
_CUDA_CHILD = r"""
import ctypes, json
def mapped(name):
    return any(name in line for line in open("/proc/self/maps"))
import fusedstats._cuda
driver_after_import = mapped("libcuda")
import numpy as np, torch, fusedstats
info = fusedstats.build_info()
st = fusedstats.tensor_stats([torch.arange(10.0), np.ones(5, dtype=np.float32)])
try:
    ctypes.CDLL("libcuda.so.1")
    has_driver = True
except OSError:
    has_driver = False
print(json.dumps({
    "driver_after_import": driver_after_import,
    "cuda_built": info["cuda_built"],
    "cuda_archs": info.get("cuda_archs"),
    "path": st.path,
    "sum": st.global_["sum"],
    "numel": st.global_["numel"],
    "cuda_available": torch.cuda.is_available(),
    "has_driver": has_driver,
}))
"""


def test_cuda_extension_imports_without_a_driver_and_the_cpu_path_runs():
    if not _native.cuda_built():
        if EXPECT_CUDA:
            pytest.fail(f"fusedstats._cuda is missing: {fusedstats.build_info()['cuda_status']}")
        pytest.skip("fusedstats._cuda is not built")
    out = _run_child(_CUDA_CHILD)
    assert out["driver_after_import"] is False
    assert out["cuda_built"] is True and out["cuda_archs"]
    assert out["path"] == "cpu"
    assert out["sum"] == 50.0 and out["numel"] == 15.0
    if not out["has_driver"]:
        # The machine this case is about: a CUDA-built wheel, no driver, CPU work only.
        assert out["cuda_available"] is False


def test_license_ships_with_the_package():
    dist = importlib.metadata.distribution("fusedstats")
    licenses = [f for f in dist.files or [] if f.name == "LICENSE"]
    assert licenses, "no LICENSE in the installed distribution"
    text = licenses[0].read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert dist.metadata["License"] == "Apache-2.0" or "Apache-2.0" in str(
        dist.metadata.get("License-Expression")
    )


@wheel_only
def test_the_installed_wheel_is_tested_not_the_source_tree():
    installed = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    assert PACKAGE_DIR.parent in installed, (PACKAGE_DIR, installed)
    assert REPO not in PACKAGE_DIR.parents
    assert (REPO / "python") not in [Path(p).resolve() for p in sys.path if p]


@wheel_only
def test_the_repaired_wheel_loads_its_own_libgomp():
    if not fusedstats.build_info()["openmp"]:
        pytest.skip("built without OpenMP")
    bundled = sorted(p.name for p in BUNDLED_LIBS.glob("libgomp*"))
    assert len(bundled) == 1 and re.fullmatch(r"libgomp-[0-9a-f]{8}\.so[.0-9]*", bundled[0])
    maps = Path("/proc/self/maps").read_text()
    assert str(BUNDLED_LIBS / bundled[0]) in maps  # _core is loaded: its libgomp is this one
