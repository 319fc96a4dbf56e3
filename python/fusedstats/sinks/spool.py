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


class ReplayCount(int):
    """How many payloads :func:`replay_spool` delivered (an ``int``), with what else
    it found: ``bad`` lines that were not records (moved to ``bad_path``) and ``kept``
    lines left in the spool for a later replay."""

    bad: int
    kept: int
    bad_path: Path | None

    def __new__(cls, delivered: int, *, bad: int, kept: int, bad_path: Path | None) -> ReplayCount:
        count = super().__new__(cls, delivered)
        count.bad, count.kept, count.bad_path = bad, kept, bad_path
        return count


def bad_lines_path(path: str | os.PathLike[str]) -> Path:
    """Where :func:`replay_spool` keeps the lines of ``path`` that are not records.

    Example:
        >>> bad_lines_path("spool/wandb.jsonl").name
        'wandb.jsonl.bad'
    """
    path = Path(path)
    return path.with_name(path.name + ".bad")


def replay_spool(path: str | os.PathLike[str], sink: Sink) -> ReplayCount:
    """Writes the spooled payloads of ``path`` to ``sink`` in order; returns how many.

    Delivered lines are removed: the file is deleted once all are delivered. At the first
    write that raises, the replay stops (a WARNING is logged, nothing raised) and that
    payload and the ones after it stay in the file for the next replay. Lines that are
    not valid records (cut short by a crash, not UTF-8, not JSON, nested too deep, not
    a payload) are skipped, counted and moved to :func:`bad_lines_path` (logged once
    per replay); the records after them are delivered. Replay a spool no running
    :class:`SinkRunner` is writing to (at start-up, or after close). Delivery is
    at-least-once: a crash during a replay leaves delivered lines in place.

    Returns:
        The number of payloads delivered, an ``int`` (:class:`ReplayCount`) that also
        carries ``bad`` (lines skipped), ``kept`` (left for later) and ``bad_path``.

    Example:
        >>> import tempfile
        >>> from fusedstats.sinks import JsonlSink
        >>> spool = Spool(tempfile.mkdtemp())
        >>> spool.append("jsonl", {"loss": 0.5}, step=1, epoch=0)
        >>> with spool.path("jsonl").open("a") as file: _ = file.write("[[[not a record\\n")
        >>> spool.append("jsonl", {"loss": float("nan")}, step=2, epoch=0)
        >>> target = spool.directory / "replayed.jsonl"
        >>> sink = JsonlSink(target)
        >>> count = replay_spool(spool.path("jsonl"), sink)
        >>> count, count.bad, spool.path("jsonl").exists(), count.bad_path.read_text()
        (2, 1, False, '[[[not a record\\n')
        >>> sink.close(); print(target.read_text(), end="")
        {"step":1,"epoch":0,"payload":{"loss":0.5}}
        {"step":2,"epoch":0,"payload":{"loss":null}}
    """
    path = Path(path)
    if not path.exists():
        return ReplayCount(0, bad=0, kept=0, bad_path=None)
    lines = path.read_bytes().split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the newline that ends the last line
    delivered = 0
    bad: list[bytes] = []
    kept: list[bytes] = []
    for index, line in enumerate(lines):
        if not line.strip():
            continue
        record = _decode(line)
        if record is None:
            bad.append(line)
            continue
        payload, step, epoch = record
        try:
            sink.write(payload, step=step, epoch=epoch)
        except Exception:
            kept = lines[index:]
            logger.warning(
                "spool %s: replay stopped at line %d, %d line(s) kept for later",
                path,
                index,
                len(kept),
                exc_info=True,
            )
            break
        delivered += 1
    bad_path = _set_aside(path, bad) if bad else None
    if kept:
        _rewrite(path, kept)
    else:
        path.unlink()
    return ReplayCount(delivered, bad=len(bad), kept=len(kept), bad_path=bad_path)


def _decode(line: bytes) -> tuple[dict[str, float], int, int] | None:
    """The record of a spool line, or None for a line that is not one."""
    try:
        return decode_record(line.decode("utf-8"))
    except Exception:  # UnicodeDecodeError, ValueError, RecursionError, KeyError, ...
        return None


def _set_aside(path: Path, bad: list[bytes]) -> Path:
    """Appends the lines that are not records to the side file; logs them once."""
    side = bad_lines_path(path)
    try:
        with side.open("ab") as file:
            file.write(b"".join(line + b"\n" for line in bad))
    except OSError:
        logger.exception("spool %s: %d line(s) that are not records were dropped", path, len(bad))
        return side
    logger.warning(
        "spool %s: %d line(s) that are not records were skipped and kept in %s (first: %.80r)",
        path,
        len(bad),
        side,
        bad[0],
    )
    return side


def _rewrite(path: Path, lines: list[bytes]) -> None:
    # Write-then-rename: a crash mid-rewrite leaves the old file, never half of one.
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(b"".join(line + b"\n" for line in lines))
    os.replace(partial, path)
