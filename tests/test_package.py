"""The package face: light import, version, build info, names shared with the core, doctests."""

import importlib
import importlib.metadata
import importlib.resources
import json
import subprocess
import sys

import pytest

import fusedstats
from fusedstats import _core
from fusedstats.kernels import columns, inputs

HEAVY_MODULES = ("torch", "numba", "wandb", "tensorboard")


def test_import_does_not_load_heavy_modules():
    code = (
        "import json, sys, fusedstats; "
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_numpy_inputs_do_not_load_torch():
    code = (
        "import sys, numpy as np, fusedstats; "
        "s = fusedstats.tensor_stats([np.arange(4.0)]); "
        "assert s.global_['sum'] == 6.0; "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "False"


def test_version_matches_installed_metadata():
    assert isinstance(fusedstats.__version__, str)
    assert fusedstats.__version__ == importlib.metadata.version("fusedstats")


def test_build_info():
    info = fusedstats.build_info()
    assert {"compiler", "openmp", "simd_level", "cuda_built"} <= set(info)
    assert isinstance(info["compiler"], str) and info["compiler"]
    assert isinstance(info["openmp"], bool)
    assert isinstance(info["cuda_built"], bool)
    assert info["simd_level"] in _core.simd_levels()
    assert info["version"] == fusedstats.__version__


def test_build_info_keeps_the_cpu_core_entries():
    # BUG (__init__.py, build_info): info.update(_cuda.build_info()) overwrites the CPU
    # core's "chunk_elems" (65536) with the CUDA one (32768) when _cuda is built.
    info = fusedstats.build_info()
    for key, value in _core.build_info().items():
        assert info[key] == value, f"build_info()[{key!r}] is {info[key]!r}, core says {value!r}"


def test_build_info_says_whether_and_why_cuda_was_built():
    info = fusedstats.build_info()
    status = info["cuda_status"]
    if info["cuda_built"]:
        # The archs CMake chose for this nvcc (cmake/FusedstatsCuda.cmake), as compiled in.
        assert status == f"built: nvcc {info['cuda_version']}, archs {info['cuda_archs']}"
    else:
        assert status.startswith("not built: ") and len(status) > len("not built: ")


def test_columns_and_dtype_codes_match_the_core():
    assert fusedstats.COLUMNS == tuple(_core.COLUMNS)
    assert fusedstats.NUM_COLUMNS == _core.NUM_COLUMNS == len(fusedstats.COLUMNS)
    assert fusedstats.FIELDS == fusedstats.COLUMNS[: len(fusedstats.FIELDS)]
    assert inputs.DTYPE_CODES == dict(_core.DTYPE_CODES)
    assert fusedstats.EXTENDED_COLUMNS == (*fusedstats.COLUMNS, *_core.EXTENDED_COLUMNS)
    assert fusedstats.NUM_EXTENDED_COLUMNS == _core.NUM_EXT_COLUMNS
    assert fusedstats.EXTENDED_FIELDS == tuple(_core.EXTENDED_COLUMNS)
    assert (columns.HIST_BINS, columns.HIST_MIN_EXP, columns.HIST_MAX_EXP) == (
        _core.HIST_BINS,
        _core.HIST_MIN_EXP,
        _core.HIST_MAX_EXP,
    )


def test_series_op_codes_match_the_core():
    from fusedstats.logger import ops

    python_side = {"mean": ops.MEAN, "ema": ops.EMA, "min": ops.MIN, "max": ops.MAX}
    python_side.update({"sum": ops.SUM, "none": ops.NONE})
    assert python_side == dict(_core.SERIES_OPS)


@pytest.mark.parametrize("module", ["fusedstats", "fusedstats.kernels"])
def test_all_names_exist(module):
    mod = importlib.import_module(module)
    assert mod.__all__, f"{module}.__all__ is empty"
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing, f"{module}.__all__ names missing attributes: {missing}"


def test_py_typed_ships():
    assert importlib.resources.files("fusedstats").joinpath("py.typed").is_file()
    shipped = {str(f) for f in importlib.metadata.files("fusedstats") or []}
    assert "fusedstats/py.typed" in shipped


def test_missing_core_fails_at_first_use_with_the_rebuild_command():
    # sys.modules[name] = None makes `import name` raise ImportError, as a failed build would.
    code = (
        "import sys, numpy as np; sys.modules['fusedstats._core'] = None; "
        "import fusedstats; print('imported'); "
        "fusedstats.tensor_stats([np.ones(3)])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "imported"
    assert done.returncode != 0
    assert "ImportError" in done.stderr
    assert "fusedstats._core" in done.stderr
    assert "pip install --force-reinstall --no-deps ." in done.stderr


def test_missing_cuda_extension_is_not_an_error():
    code = (
        "import sys, numpy as np; sys.modules['fusedstats._cuda'] = None; "
        "import fusedstats; "
        "print(fusedstats.build_info()['cuda_built'], "
        "fusedstats.tensor_stats([np.ones(3)]).global_['sum'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "False 3.0"
