"""JsonlSink: one strict-JSON line per payload, appended to a file."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from .base import encode_record, float_payload


class JsonlSink:
    """Appends ``{"step": .., "epoch": .., "payload": {...}}`` lines to ``path``.

    The JSON is strict: NaN and Inf are written as ``null`` and counted in
    :attr:`nonfinite` (per key in :attr:`nonfinite_by_key`); values that are not numbers
    are left out and counted in :attr:`dropped_by_key`. The file is opened (parent
    directories created) at the first write, in append mode, so a resumed run adds to
    it. :meth:`flush` hands the lines to the OS without an fsync: a crash of the process
    loses nothing, a crash of the machine may lose the last lines.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "stats.jsonl"
        >>> sink = JsonlSink(path)
        >>> sink.write({"overview/sps": 1200.0, "grad/norm": float("nan")}, step=10, epoch=1)
        >>> sink.close()
        >>> print(path.read_text(), end="")
        {"step":10,"epoch":1,"payload":{"overview/sps":1200.0,"grad/norm":null}}
        >>> sink.nonfinite, dict(sink.nonfinite_by_key)
        (1, {'grad/norm': 1})
    """

    name = "jsonl"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.nonfinite = 0
        self.nonfinite_by_key: Counter[str] = Counter()
        self.dropped_by_key: Counter[str] = Counter()
        self._file: TextIO | None = None

    def write(self, payload: Mapping[str, float], *, step: int, epoch: int) -> None:
        floats, dropped = float_payload(payload)
        line, nonfinite = encode_record(floats, step=int(step), epoch=int(epoch))
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(line + "\n")
        self.nonfinite += len(nonfinite)
        self.nonfinite_by_key.update(nonfinite)
        self.dropped_by_key.update(dropped)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Closes the file; a later write opens it again (appending)."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()
