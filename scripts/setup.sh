#!/usr/bin/env bash
# Sets up fusedstats from a source checkout: a virtualenv, torch, and a real
# (non-editable) build of the compiled extension.
#
#   bash scripts/setup.sh          # runtime install + what the main job needs (.[demo])
#   bash scripts/setup.sh test     # + test extras (pytest, hypothesis, ruff, mypy)
#
# FUSEDSTATS_VENV picks the virtualenv (default: .venv in the checkout).
# TORCH_SPEC picks the torch to install first (default torch==2.13.0, the CPU build
# this project's machines carry as a local file). torch is installed before the
# package so that pip never resolves an unpinned torch (several GB of CUDA wheels).
# FUSEDSTATS_CUDA=OFF skips the CUDA extension even when nvcc is present.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${FUSEDSTATS_VENV:-.venv}"
extras="${1:-}"
python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
if [ "$extras" = "test" ]; then
  python -m pip install --quiet ".[test]"
else
  python -m pip install --quiet ".[demo]"
fi
python -c "import fusedstats, json; print(json.dumps(fusedstats.build_info()))"
