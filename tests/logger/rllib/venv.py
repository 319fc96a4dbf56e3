"""The RLlib 2.40 virtualenv of the differential tests: created by the tests themselves
when missing, kept between runs.

RLlib is never a dependency of fusedstats (nor of its test extras): it lives in its own
git-ignored virtualenv, ``.rllib-venv`` at the checkout's root (``FUSEDSTATS_RLLIB_VENV``
names another place). The first test run that needs it creates it (``pip install
ray[rllib]==2.40.0 numpy``: about 800 MB, 2-3 minutes here; RLlib's MetricsLogger needs
no torch, so none is installed there); later runs find it ready in milliseconds. A file
lock makes concurrent test runs (pytest-xdist, two terminals) wait for one creation
instead of racing. A marker file written last says the environment is complete, so a
creation killed half-way is redone, never used.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REQUIREMENTS = ("ray[rllib]==2.40.0", "numpy")
ROOT = Path(__file__).resolve().parents[3]
ENV_VAR = "FUSEDSTATS_RLLIB_VENV"
CREATE_TIMEOUT_S = 1800  # pip on a slow mirror; the whole creation is bounded by this
MARKER = "fusedstats-rllib-venv.json"


class VenvError(RuntimeError):
    """The RLlib virtualenv could not be created (the message says why and where)."""


def venv_dir() -> Path:
    return Path(os.environ.get(ENV_VAR) or ROOT / ".rllib-venv")


def _python(where: Path) -> Path:
    return where / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _wanted() -> dict[str, object]:
    return {"requirements": list(REQUIREMENTS), "python": list(sys.version_info[:2])}


def _ready(where: Path) -> bool:
    try:
        marker = json.loads((where / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker == _wanted() and _python(where).exists()


def rllib_python() -> Path:
    """The interpreter of a virtualenv holding RLlib 2.40, created first if needed.

    Raises:
        VenvError: creating it failed (pip's output is in the message's log file).
    """
    where = venv_dir()
    if _ready(where):
        return _python(where)
    where.parent.mkdir(parents=True, exist_ok=True)
    lock_path = where.parent / (where.name + ".lock")
    with open(lock_path, "w") as lock:
        deadline = time.monotonic() + CREATE_TIMEOUT_S + 60
        while True:  # another run may be creating it: wait for it, bounded
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise VenvError(f"{lock_path} stayed locked for too long") from None
                time.sleep(1.0)
        try:
            if not _ready(where):  # the run holding the lock before may have made it
                _create(where)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return _python(where)


def _create(where: Path) -> None:
    shutil.rmtree(where, ignore_errors=True)
    log_path = where.parent / (where.name + ".log")
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [base, "-m", "venv", str(where)],
        [
            str(_python(where)),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            *REQUIREMENTS,
        ],
    ]
    deadline = time.monotonic() + CREATE_TIMEOUT_S
    with open(log_path, "w") as log:
        for cmd in steps:
            log.write(f"$ {' '.join(cmd)}\n")
            log.flush()
            try:
                done = subprocess.run(
                    cmd,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=max(deadline - time.monotonic(), 1.0),
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise VenvError(
                    f"creating the RLlib virtualenv timed out after {CREATE_TIMEOUT_S} s "
                    f"(log: {log_path})"
                ) from None
            if done.returncode != 0:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise VenvError(
                    f"creating the RLlib virtualenv at {where} failed ({' '.join(cmd[:4])}... "
                    f"exited {done.returncode}); log {log_path}:\n{tail}"
                )
    (where / MARKER).write_text(json.dumps(_wanted()))
