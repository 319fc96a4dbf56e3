"""RequestSpool: a server client's writes kept on local disk, in order, until delivered.

One spool per client process and server, under ``spool_dir``:

- ``http-<server hash>-<n>.jsonl``: one JSON line per request still to deliver;
- ``....head``: the byte offset of the first undelivered line (no such file: 0), so a
  delivery rewrites a few bytes, not the whole file. Once every line is delivered the
  file is emptied and the offset dropped;
- ``....lock``: held (``flock``) while a client uses the spool, so two live processes
  never share one: the next takes slot ``n + 1``. A client that opens a spool also
  adopts the undelivered lines of every other slot for the same server that no live
  process holds (a trainer that crashed), after its own leftovers.

Delivery is at least once (a crash between delivering a line and moving the offset
past it sends that line again); every request carries an idempotency key, so the
server stores it once. A line cut short by a crash during an append is dropped when
the spool is opened; a line that is not JSON is logged and skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path
from types import ModuleType
from typing import IO, Any

_fcntl: ModuleType | None
try:
    import fcntl as _fcntl
except ImportError:  # not on Windows: there, two processes must not share a spool_dir
    _fcntl = None

logger = logging.getLogger("fusedstats.store")

#: Slots tried per server before giving up (that many live clients on one spool_dir).
MAX_SLOTS = 64


def default_spool_dir() -> Path:
    """``$FUSEDSTATS_SPOOL_DIR``, else ``$XDG_CACHE_HOME/fusedstats/spool`` (default
    ``~/.cache/fusedstats/spool``): kept across restarts, so a restarted trainer
    delivers what the previous one could not."""
    chosen = os.environ.get("FUSEDSTATS_SPOOL_DIR")
    if chosen:
        return Path(chosen).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "fusedstats" / "spool"


def spool_prefix(server_url: str) -> str:
    """The file-name prefix of a server's spools.

    Example:
        >>> spool_prefix("http://127.0.0.1:8765")
        'http-72b0e86b156f08eb'
    """
    return "http-" + hashlib.sha256(server_url.rstrip("/").encode()).hexdigest()[:16]


class RequestSpool:
    """A FIFO of JSON records in one file, safe across crashes; not thread-safe (the
    client serializes calls). Open it with :meth:`claim`.

    Example:
        >>> import tempfile
        >>> spool = RequestSpool.claim(tempfile.mkdtemp(), "http://127.0.0.1:9")
        >>> spool.append({"n": 1}); spool.append({"n": 2}); spool.prepend({"n": 0})
        >>> [spool.peek(), spool.pending]
        [{'n': 0}, 3]
        >>> spool.peek_many(max_records=10, max_bytes=2**20)
        [{'n': 0}, {'n': 1}, {'n': 2}]
        >>> spool.pop(2); spool.peek(), spool.pending
        ({'n': 2}, 1)
        >>> spool.close()
    """

    def __init__(self, path: Path, lock_file: IO[bytes] | None) -> None:
        self.path = path
        self._head_path = path.with_suffix(".head")
        self._lock_file = lock_file
        self._head = 0
        self._peeked: list[int] = []  # lengths of the lines peek/peek_many returned
        self.pending = 0
        self._repair()
        self._file: IO[bytes] = path.open("ab+")

    @classmethod
    def claim(cls, directory: str | os.PathLike[str], server_url: str) -> RequestSpool:
        """The first spool slot for ``server_url`` under ``directory`` that no live
        process holds, with the undelivered lines of unheld slots adopted."""
        root = Path(directory).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        prefix = spool_prefix(server_url)
        own: RequestSpool | None = None
        orphans: list[RequestSpool] = []
        for slot in range(MAX_SLOTS):
            path = root / f"{prefix}-{slot}.jsonl"
            lock = _try_lock(path.with_suffix(".lock"))
            if lock is None:
                continue
            spool = cls(path, lock)
            if own is None:
                own = spool
            elif spool.pending:
                orphans.append(spool)
            else:
                spool.close()
        if own is None:
            raise OSError(f"spool_dir {root}: all {MAX_SLOTS} spool slots are held")
        for orphan in orphans:
            own._adopt(orphan)
        return own

    # ---- the queue -------------------------------------------------------------------

    def append(self, record: dict[str, Any]) -> None:
        """Adds a record at the end (written through to the OS before returning)."""
        self._file.seek(0, os.SEEK_END)
        self._file.write(_line(record))
        self._file.flush()
        self.pending += 1

    def peek(self) -> dict[str, Any] | None:
        """The first undelivered record, or None; lines that are not records are skipped."""
        while self.pending:
            self._file.seek(self._head)
            line = self._file.readline()
            if not line.endswith(b"\n"):  # the file changed under us: nothing sane left
                logger.warning("spool %s: ends without a newline at %d", self.path, self._head)
                self.pending = 0
                return None
            self._peeked = [len(line)]
            record = _record(line)
            if record is not None:
                return record
            logger.warning("spool %s: skipped a line that is not a record: %.80r", self.path, line)
            self.pop()
        return None

    def peek_many(self, max_records: int, max_bytes: int) -> list[dict[str, Any]]:
        """The first undelivered records, at least one (if any), at most ``max_records``
        and, beyond the first, ``max_bytes`` of lines; they end before a line that is not
        a record (which :meth:`peek` skips once it comes first)."""
        first = self.peek()
        if first is None:
            return []
        records, lengths = [first], list(self._peeked)
        total = lengths[0]
        self._file.seek(self._head + total)
        while len(records) < min(max_records, self.pending):
            line = self._file.readline()
            record = _record(line) if line.endswith(b"\n") else None
            if record is None or total + len(line) > max_bytes:
                break
            records.append(record)
            lengths.append(len(line))
            total += len(line)
        self._peeked = lengths
        return records

    def pop(self, count: int = 1) -> None:
        """Drops the first ``count`` records (the ones the last :meth:`peek` or
        :meth:`peek_many` returned: they were delivered)."""
        if not self._peeked and self.peek() is None:
            return
        if count > len(self._peeked):
            raise ValueError(f"count: {count} records were not peeked, {len(self._peeked)} were")
        self._head += sum(self._peeked[:count])
        self.pending -= count
        self._peeked = []
        if self.pending == 0:
            self._file.truncate(0)
            self._head = 0
            with contextlib.suppress(FileNotFoundError):
                self._head_path.unlink()
        else:
            _write_atomically(self._head_path, str(self._head).encode())

    def prepend(self, record: dict[str, Any]) -> None:
        """Puts a record before every other (one whose delivery failed after later ones
        were appended). Rewrites the file: rare, and the file is small then."""
        self._file.seek(self._head)
        rest = self._file.read()
        self._file.close()
        _write_atomically(self.path, _line(record) + rest)
        with contextlib.suppress(FileNotFoundError):
            self._head_path.unlink()
        self._head = 0
        self._peeked = []
        self.pending += 1
        self._file = self.path.open("ab+")

    def close(self) -> None:
        """Closes the file and releases the slot; undelivered records stay on disk."""
        self._file.close()
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor releases the flock
            self._lock_file = None

    # ---- opening ---------------------------------------------------------------------

    def _repair(self) -> None:
        """Reads the offset, drops a torn last line, and counts the pending records."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        try:
            head = int(self._head_path.read_text(encoding="ascii"))
        except (FileNotFoundError, ValueError):
            head = 0
        if not 0 <= head <= len(data) or (head and data[head - 1 : head] != b"\n"):
            logger.warning(
                "spool %s: offset %d is not a line start, replaying all", self.path, head
            )
            head = 0
        end = data.rfind(b"\n") + 1
        if end < len(data):
            logger.warning("spool %s: dropped a line cut short by a crash", self.path)
            with self.path.open("r+b") as file:
                file.truncate(end)
        self._head = head
        self.pending = data.count(b"\n", head, end)

    def _adopt(self, orphan: RequestSpool) -> None:
        """Appends an unheld spool's undelivered lines to this one and removes it."""
        orphan._file.seek(orphan._head)
        lines = orphan._file.read()
        count = orphan.pending
        self._file.seek(0, os.SEEK_END)
        self._file.write(lines)
        self._file.flush()
        self.pending += count
        orphan._file.truncate(0)
        with contextlib.suppress(FileNotFoundError):
            orphan._head_path.unlink()
        orphan.close()
        logger.info("spool %s: adopted %d request(s) of %s", self.path, count, orphan.path)


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, allow_nan=False, separators=(",", ":")).encode() + b"\n"


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _try_lock(path: Path) -> IO[bytes] | None:
    """The lock file, opened and locked; None if another open file holds it."""
    file = path.open("ab")
    if _fcntl is None:
        return file
    try:
        _fcntl.flock(file.fileno(), _fcntl.LOCK_EX | _fcntl.LOCK_NB)
    except BlockingIOError:
        file.close()
        return None
    return file
