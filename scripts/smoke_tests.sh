#!/usr/bin/env bash
# The smoke subset of the test suite, run against whatever fusedstats the `python` on PATH
# imports: the package face, the CPU kernel, thread determinism, errors, the logger's spec
# examples, rollout stats, OpenMP next to torch and the CUDA extension without a driver
# (about 40 s on 2 cores). Needs pytest, hypothesis and torch besides the package.
#
#   bash scripts/smoke_tests.sh CHECKOUT [pytest args]
#
# Run it from OUTSIDE the checkout (scripts/smoke_wheel.sh and cibuildwheel's test-command
# do), so that only the installed package can be imported: the checkout's tests are
# collected with its pyproject.toml as the pytest configuration, and the package sources
# under CHECKOUT/python are never on sys.path.
set -euo pipefail
checkout="$(cd "${1:?usage: smoke_tests.sh CHECKOUT [pytest args]}" && pwd)"
shift
case "$PWD/" in
  "$checkout"/*) echo "smoke_tests.sh: run it from outside $checkout" >&2; exit 2 ;;
esac
exec python -m pytest -c "$checkout/pyproject.toml" --rootdir "$checkout" -p no:cacheprovider \
  "$checkout/tests/test_wheel.py" \
  "$checkout/tests/test_package.py" \
  "$checkout/tests/kernels/test_tensor_stats.py" \
  "$checkout/tests/kernels/test_determinism.py" \
  "$checkout/tests/kernels/test_errors.py" \
  "$checkout/tests/logger/test_spec_examples.py" \
  "$checkout/tests/rollout/test_rollout_stats.py" \
  "$@"
