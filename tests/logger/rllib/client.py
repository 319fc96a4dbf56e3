"""A long-lived RLlib 2.40 process (``runner.py`` in the RLlib virtualenv) that runs
logger programs and answers their observations, each within a deadline."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from pathlib import Path
from typing import Any

RUNNER = Path(__file__).resolve().parent / "runner.py"
START_TIMEOUT_S = 120  # importing ray.rllib: ~2 s here, far more on a loaded machine
ANSWER_TIMEOUT_S = 60


class RllibProcess:
    """Runs programs on RLlib's MetricsLogger in a subprocess of ``python``."""

    def __init__(self, python: Path) -> None:
        self._proc = subprocess.Popen(
            [str(python), "-u", str(RUNNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, daemon=True),
            threading.Thread(target=self._drain_stderr, daemon=True),
        ]
        for t in self._threads:
            t.start()
        hello = self._read(START_TIMEOUT_S)
        if "ready" not in hello:
            raise RuntimeError(f"the RLlib runner did not start: {hello}")
        self.versions: dict[str, str] = hello["ready"]

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _drain_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.append(line)
            del self._stderr[:-200]

    def _read(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise TimeoutError(f"the RLlib runner gave no answer within {timeout} s") from None
        if line is None:
            raise RuntimeError(
                "the RLlib runner exited; its stderr:\n" + "".join(self._stderr[-60:])
            )
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, program: dict[str, Any]) -> list[Any]:
        """RLlib's observations of ``program`` (see ``interpreter.py``)."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(program) + "\n")
        self._proc.stdin.flush()
        answer = self._read(ANSWER_TIMEOUT_S)
        if "error" in answer:
            raise RuntimeError(f"the RLlib runner failed on a program:\n{answer['error']}")
        observations: list[Any] = answer["ok"]
        return observations

    def run_snippet(self, source: str) -> Any:
        """RLlib's encoded result of the snippet's ``case(MetricsLogger, Stats,
        roundtrip)`` (see ``interpreter.run_snippet``)."""
        return self.run({"snippet": source})

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write("\n")
                self._proc.stdin.close()
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait(timeout=10)
        for t in self._threads:  # they end at the pipes' EOF
            t.join(timeout=10)
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()
