"""RequestSpool: a server client's writes kept on local disk, in order, until delivered.

One spool per client process and server, under ``spool_dir``:

- ``http-<server hash>-<n>.jsonl``: one JSON line per request still to deliver;
- ``....head``: the byte offset of the first undelivered line (no such file: 0), so a
  delivery rewrites a few bytes, not the whole file. Once every line is delivered the
  file is emptied and the offset dropped;
- ``....lock``: held (``flock``) while a client uses the spool, so two live processes
  never share one: the next takes the lowest slot ``n`` no live process holds (as many
  slots as there are live clients). A client that opens a spool also adopts the
  undelivered lines of every other slot for the same server that no live process holds
  (a trainer that crashed), after its own leftovers, and removes those slots' files;
  a client that closes with nothing left removes its own. So a sweep of many short
  runs leaves no files behind and never runs out of slots.
- ``http-<server hash>.dead.jsonl``: requests set aside for good, one JSON line each
  (``{"reason", "at", "record"}``, or ``"line"`` for a line that was not a record):
  what the server refused, what kept failing on the server, what could not be read.
  Nothing is dropped without a trace.

Delivery is at least once (a crash between delivering a line and moving the offset
past it sends that line again); every request carries an idempotency key, so the
server stores it once. A line cut short by a crash during an append is dropped when
the spool is opened; a line that is not a record is moved to the dead-letter file.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import time
from pathlib import Path
from types import ModuleType
from typing import IO, Any

_fcntl: ModuleType | None
try:
    import fcntl as _fcntl
except ImportError:  # not on Windows: there, two processes must not share a spool_dir
    _fcntl = None

logger = logging.getLogger("fusedstats.store")


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

    def __init__(
        self, path: Path, lock_file: IO[bytes] | None, dead_path: Path | None = None
    ) -> None:
        self.path = path
        self.dead_path = dead_path if dead_path is not None else path.with_suffix(".dead.jsonl")
        self._head_path = path.with_suffix(".head")
        self._lock_file = lock_file
        self._head = 0
        self._peeked: list[int] = []  # lengths of the lines peek/peek_many returned
        self.pending = 0
        self.dead_lines = 0  # lines that were not records, moved to the dead-letter file
        self._repair()
        self._file: IO[bytes] = path.open("ab+")

    @classmethod
    def claim(cls, directory: str | os.PathLike[str], server_url: str) -> RequestSpool:
        """The lowest spool slot for ``server_url`` under ``directory`` that no live
        process holds, with the undelivered lines of unheld slots adopted (and their
        files removed)."""
        root = Path(directory).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        prefix = spool_prefix(server_url)
        dead_path = root / f"{prefix}.dead.jsonl"
        own: RequestSpool | None = None
        for slot in itertools.count():
            path = root / f"{prefix}-{slot}.jsonl"
            lock = _try_lock(path.with_suffix(".lock"))
            if lock is not None:
                own = cls(path, lock, dead_path)
                break
        assert own is not None  # the loop ends only with a slot
        for path in _slot_files(root, prefix):
            if path == own.path:
                continue
            lock = _try_lock(path.with_suffix(".lock"))
            if lock is None:
                continue  # a live client's
            orphan = cls(path, lock, dead_path)
            if orphan.pending:
                own._adopt(orphan)
            orphan.close(remove_if_empty=True)
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
            logger.warning(
                "spool %s: a line that is not a record was moved to %s: %.80r",
                self.path,
                self.dead_path,
                line,
            )
            self.dead_letter(None, "not a record", line=line)
            self.dead_lines += 1
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

    def dead_letter(
        self, record: dict[str, Any] | None, reason: str, *, line: bytes | None = None
    ) -> None:
        """Appends ``record`` (or a raw ``line`` that is not one) to the dead-letter file
        with ``reason``; raises OSError (the caller counts and logs it)."""
        entry: dict[str, Any] = {
            "reason": reason,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if record is not None:
            entry["record"] = record
        else:
            entry["line"] = (line or b"").rstrip(b"\n").decode("utf-8", "backslashreplace")
        data = json.dumps(entry, separators=(",", ":")).encode() + b"\n"
        # One write() of an O_APPEND descriptor: lines of several processes never mix.
        fd = os.open(self.dead_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def close(self, *, remove_if_empty: bool = True) -> None:
        """Closes the file and releases the slot; undelivered records stay on disk. A
        spool with nothing left has its files removed (unless ``remove_if_empty`` is
        False), so that slots do not pile up."""
        self._file.close()
        if self._lock_file is None:
            return
        if remove_if_empty and self.pending == 0:
            # Removed while the lock is held; _try_lock sees a lock file that was removed
            # under it (another inode than the path's) and tries again.
            for path in (self.path, self._head_path, self.path.with_suffix(".lock")):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
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
        orphan.pending = 0
        with contextlib.suppress(FileNotFoundError):
            orphan._head_path.unlink()
        logger.info("spool %s: adopted %d request(s) of %s", self.path, count, orphan.path)


def _record(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except Exception:  # not JSON, not UTF-8, or nested past the recursion limit
        return None
    return record if isinstance(record, dict) else None


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, allow_nan=False, separators=(",", ":")).encode() + b"\n"


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _slot_files(root: Path, prefix: str) -> list[Path]:
    """The spool files of a server's slots under ``root``, by slot number."""
    pattern = re.compile(re.escape(prefix) + r"-(\d+)\.(?:jsonl|lock)$")
    slots = set()
    for path in root.iterdir():
        found = pattern.match(path.name)
        if found:
            slots.add(int(found.group(1)))
    return [root / f"{prefix}-{slot}.jsonl" for slot in sorted(slots)]


def _try_lock(path: Path) -> IO[bytes] | None:
    """The lock file, opened (created if need be) and locked; None if a live process
    holds it."""
    for _ in range(100):  # tries again only when the file was removed under us
        file = path.open("ab")
        if _fcntl is None:
            return file
        try:
            _fcntl.flock(file.fileno(), _fcntl.LOCK_EX | _fcntl.LOCK_NB)
        except BlockingIOError:
            file.close()
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(file.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return file
        file.close()  # its holder removed it after we opened it: open the new one
    raise OSError(f"spool lock {path}: removed and created again too often")
