#!/usr/bin/env bash
# The one GPU check of the CUDA path, for a session that has a GPU (README "On GPU").
# Nothing here has run on hardware yet. In order, each step logged to $OUT (default
# bench/results/gpu_check/):
#   1. build fusedstats with nvcc for the GPU present (CMAKE_CUDA_ARCHITECTURES=native);
#   2. pytest -m cuda (tests/kernels/test_cuda.py and the logger's CUDA tests), which
#      include the review's F1/F2/F5 repros, graph capture, a compiled reduce-overhead
#      step, sync-debug "error" around launches, and the live emulation-vs-GPU compare;
#   3. bench/gpu_check.py: records the GPU's buffers for the bit-for-bit test
#      (tests/kernels/data/gpu_emulation_record.npz: commit it), re-runs the F1/F2/F5
#      repros standalone, and times float32/bfloat16/float64 on >= 1 GiB against
#      torch.aminmax + torch.var_mean and the copy bandwidth
#      (bench/results/gpu_check.json, the device named);
#   4. the emulation test against that recording.
#
# Needs: nvcc, a CUDA build of torch in the interpreter $PYTHON (default .venv/bin/python)
# with scikit-build-core, pybind11, pytest and hypothesis installed (no network needed).
#   PYTHON=/path/to/python bash scripts/gpu_check.sh
# Budget: ~2 min build (one arch), ~3 min tests, ~2 min bench on an H100.
set -uo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-.venv/bin/python}"
out="${OUT:-bench/results/gpu_check}"
mkdir -p "$out"
status=0
step() {  # step NAME TIMEOUT CMD...: runs one step with a deadline, logs it, keeps going
  local name="$1" limit="$2"
  shift 2
  echo "== $name" | tee -a "$out/summary.txt"
  if timeout "$limit" "$@" >"$out/$name.log" 2>&1; then
    echo "   ok" | tee -a "$out/summary.txt"
  else
    echo "   FAILED (exit $?; see $out/$name.log)" | tee -a "$out/summary.txt"
    status=1
  fi
  tail -n 5 "$out/$name.log"
}
: >"$out/summary.txt"
"$py" -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'; \
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))" | tee -a "$out/summary.txt" || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$out/summary.txt"
step build 900 env FUSEDSTATS_CUDA=ON "$py" -m pip install --no-build-isolation --no-deps \
  -Cbuild-dir=build/gpu -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=native .
step pytest_cuda 900 "$py" -m pytest -m cuda -q -x -p no:cacheprovider tests
step gpu_check 900 "$py" bench/gpu_check.py --record tests/kernels/data/gpu_emulation_record.npz \
  --out bench/results/gpu_check.json
step emulation_vs_recording 300 "$py" -m pytest -q -p no:cacheprovider \
  tests/kernels/test_cuda_emu.py -k recorded_gpu
exit $status
