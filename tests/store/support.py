"""Helpers of the store tests: a real server subprocess, free ports, payload data."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from hypothesis import strategies as st

TOKEN = "test-token-5f3a"
READY_TIMEOUT_S = 60.0  # imports of fastapi/sqlalchemy/uvicorn on a loaded 2-core box

# Keys as trainers write them, plus odd ones; no NUL (the store refuses it) and no lone
# surrogates (not text in any database encoding).
KEYS = st.one_of(
    st.sampled_from(["overview/sps", "losses/value_loss", "grad/norm", "env_game/score"]),
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        min_size=1,
        max_size=40,
    ),
)
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0]),
    st.integers(-(2**53), 2**53).map(float),
)
PAYLOADS = st.dictionaries(KEYS, VALUES, max_size=30)


def same_value(a: float, b: float) -> bool:
    """Equal, NaN meeting NaN."""
    return (math.isnan(a) and math.isnan(b)) or a == b


def same_payload(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return a.keys() == b.keys() and all(same_value(a[key], b[key]) for key in a)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m fusedstats.store.server`` in a subprocess on 127.0.0.1."""

    def __init__(
        self,
        db: str | os.PathLike[str],
        *,
        port: int | None = None,
        log_dir: Path,
        script: Path | None = None,
        **options: Any,
    ) -> None:
        self.db = os.fspath(db)
        self.port = port if port is not None else free_port()
        self.options = options
        self.log_dir = log_dir
        self.script = script  # another server program, run as `python SCRIPT DB PORT`
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        """Starts it and waits until ``/health`` answers."""
        if self.script is not None:
            command = [sys.executable, str(self.script), self.db, str(self.port)]
        else:
            command = [
                sys.executable,
                "-m",
                "fusedstats.store.server",
                "--db",
                self.db,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ]
        for name, value in self.options.items():
            command += [f"--{name.replace('_', '-')}", str(value)]
        self.starts += 1
        log = (self.log_dir / f"server-{self.port}-{self.starts}.log").open("wb")
        # The token comes from the environment: a --token would show in the process list.
        env = {**os.environ, "FUSEDSTATS_SERVER_TOKEN": TOKEN}
        env.pop("FUSEDSTATS_SERVER_READ_TOKEN", None)
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        try:
            self.wait_ready(self.url, self.proc)
        except RuntimeError as error:
            self.kill()
            raise RuntimeError(f"{error}: {self.log()}") from None
        return self

    @staticmethod
    def wait_ready(url: str, proc: subprocess.Popen[Any]) -> None:
        """Waits until ``url/health`` answers; RuntimeError if ``proc`` exits first or
        READY_TIMEOUT_S pass."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}")
            try:
                if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the server did not answer in {READY_TIMEOUT_S} s")

    def kill(self) -> None:
        """SIGKILL, and wait for it to be gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM (uvicorn shuts down cleanly), SIGKILL if that takes too long."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return "".join(
            path.read_text(errors="replace")
            for path in sorted(self.log_dir.glob(f"server-{self.port}-*.log"))
        )
