#!/usr/bin/env bash
# Installs a built wheel the way a user on a machine without build tools would, and runs
# the smoke tests against it:
#   - a fresh virtualenv (python3, which must match the wheel's cp tag);
#   - no compiler and no CMake reachable: PATH holds only the virtualenv and a few shell
#     tools, CC/CXX/CUDACXX point at /bin/false, and pip may install binary wheels only
#     (so nothing can be built from source, not even through a build dependency);
#   - torch first ($TORCH_SPEC, default torch==2.13.0), then the wheel with pytest and
#     hypothesis;
#   - scripts/smoke_tests.sh run from a directory outside the checkout.
#
#   bash scripts/smoke_wheel.sh WHEEL [pytest args]
#
# FUSEDSTATS_TEST_EXPECT_CUDA=1 requires the wheel to hold fusedstats._cuda.
set -euo pipefail
checkout="$(cd "$(dirname "$0")/.." && pwd)"
wheel="$(cd "$(dirname "${1:?usage: smoke_wheel.sh WHEEL [pytest args]}")" && pwd)/$(basename "$1")"
shift
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/venv"
mkdir "$work/bin" "$work/run"
for tool in sh bash env cat ls rm mkdir mktemp uname dirname basename; do
  if command -v "$tool" >/dev/null; then ln -s "$(command -v "$tool")" "$work/bin/$tool"; fi
done
clean_env=(
  env -i HOME="$HOME" LANG=C.UTF-8 TMPDIR="${TMPDIR:-/tmp}"
  PATH="$work/venv/bin:$work/bin" CC=/bin/false CXX=/bin/false CUDACXX=/bin/false
  CMAKE_EXECUTABLE=/bin/false PIP_ONLY_BINARY=:all: PIP_DISABLE_PIP_VERSION_CHECK=1
  FUSEDSTATS_TEST_WHEEL=1 FUSEDSTATS_TEST_EXPECT_CUDA="${FUSEDSTATS_TEST_EXPECT_CUDA:-0}"
)
# Kept from the caller: how to reach the package index, nothing that builds.
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_CONSTRAINT PIP_CERT \
  PIP_NO_CACHE_DIR SSL_CERT_FILE REQUESTS_CA_BUNDLE http_proxy https_proxy no_proxy \
  HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  if [ -n "${!var:-}" ]; then clean_env+=("$var=${!var}"); fi
done

# Proof that no build tool can be found from inside that environment.
"${clean_env[@]}" bash -c '
  for tool in cc c++ gcc g++ clang clang++ cmake nvcc ninja make ld as; do
    if command -v "$tool" >/dev/null; then echo "smoke_wheel.sh: $tool is reachable" >&2; exit 1; fi
  done
  echo "no compiler, CMake, nvcc or linker on PATH=$PATH; CC=$CC CXX=$CXX"'

cd "$work/run"
"${clean_env[@]}" python -m pip install --quiet "${TORCH_SPEC:-torch==2.13.0}"
"${clean_env[@]}" python -m pip install --quiet "$wheel" "pytest>=8" "hypothesis>=6.100"
"${clean_env[@]}" python -c \
  'import fusedstats, json; print(fusedstats.__file__); print(json.dumps(fusedstats.build_info()))'
"${clean_env[@]}" bash "$checkout/scripts/smoke_tests.sh" "$checkout" "$@"
