"""The spool: payloads a sink did not take, kept on local disk and replayed later.

One file per sink, ``<spool_dir>/<sink name>.jsonl``, one strict-JSON line per payload
in the JSONL sink's format plus a ``"nonfinite"`` field naming NaN/Inf values (written
as ``null``), so that a replay hands the sink the payload it missed. Lines are in the
order the runner gave up on payloads, which is their order except for a write that
timed out and still ran at close: it is spooled then, after the payloads that followed it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .base import Sink, decode_record, encode_record, float_payload

logger = logging.getLogger("fusedstats.sinks")


def spool_file_name(sink_name: str) -> str:
    """The spool file's name for a sink: its name with path-unsafe characters replaced.

    Example:
        >>> spool_file_name("wandb"), spool_file_name("../my sink")
        ('wandb.jsonl', '.._my_sink.jsonl')
    """
    return re.sub(r"[^\w.-]", "_", sink_name) + ".jsonl"


class Spool:
    """Appends payloads to ``<directory>/<sink name>.jsonl``; safe to call from any thread."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()

    def path(self, sink_name: str) -> Path:
        return self.directory / spool_file_name(sink_name)

    def append(self, sink_name: str, payload: Mapping[Any, Any], *, step: int, epoch: int) -> None:
        """Appends one payload; raises OSError (the caller counts and logs it)."""
        floats, _ = float_payload(payload)
        line, _ = encode_record(floats, step=step, epoch=epoch, keep_nonfinite=True)
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            with self.path(sink_name).open("a", encoding="utf-8") as file:
                file.write(line + "\n")


def replay_spool(path: str | os.PathLike[str], sink: Sink) -> int:
    """Writes the spooled payloads of ``path`` to ``sink`` in order; returns how many.

    Delivered lines are removed: the file is deleted once all are delivered. At the first
    write that raises, the replay stops (a WARNING is logged, nothing raised) and that
    payload and the ones after it stay in the file for the next replay. Lines that are
    not valid records (a line cut short by a crash) are logged and discarded. Replay a
    spool no running :class:`SinkRunner` is writing to (at start-up, or after close).
    Delivery is at-least-once: a crash during a replay leaves delivered lines in place.

    Example:
        >>> import tempfile
        >>> from fusedstats.sinks import JsonlSink
        >>> spool = Spool(tempfile.mkdtemp())
        >>> spool.append("jsonl", {"loss": 0.5}, step=1, epoch=0)
        >>> spool.append("jsonl", {"loss": float("nan")}, step=2, epoch=0)
        >>> target = spool.directory / "replayed.jsonl"
        >>> sink = JsonlSink(target)
        >>> replay_spool(spool.path("jsonl"), sink), spool.path("jsonl").exists()
        (2, False)
        >>> sink.close(); print(target.read_text(), end="")
        {"step":1,"epoch":0,"payload":{"loss":0.5}}
        {"step":2,"epoch":0,"payload":{"loss":null}}
    """
    path = Path(path)
    if not path.exists():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines()
    delivered = 0
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            payload, step, epoch = decode_record(line)
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning("spool %s: line %d is not a record, discarded: %.80r", path, index, line)
            continue
        try:
            sink.write(payload, step=step, epoch=epoch)
        except Exception:
            logger.warning(
                "spool %s: replay stopped at line %d, %d payload(s) kept for later",
                path,
                index,
                len(lines) - index,
                exc_info=True,
            )
            _rewrite(path, lines[index:])
            return delivered
        delivered += 1
    path.unlink()
    return delivered


def _rewrite(path: Path, lines: list[str]) -> None:
    # Write-then-rename: a crash mid-rewrite leaves the old file, never half of one.
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(partial, path)
