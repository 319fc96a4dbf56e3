"""HttpStatsClient: a stats server's client, with retries, idempotent writes and a spool.

How a write travels, and why:

- Every write carries an idempotency key: runs and epochs get their UUID on the
  client, payloads the caller's key or a fresh one. A write retried after a timeout,
  or sent again from the spool after a crash, is stored once.
- The server's limits are applied here, before anything is sent or spooled: a run's
  name, URL, description or tag longer than the server takes is cut, with a marker
  saying so (W&B notes can be long); NUL characters, epoch attributes nested too
  deep and payloads with too many keys are refused at the call with an error naming
  the argument. So a run's creation is not refused later, when nobody can fix it.
- While the spool is empty, a write goes straight to the server, retried with backoff
  on a transport error, a 5xx, 408 or 429, within ``timeout_s`` in all; the caller gets
  the server's answer, or its error for a request the server refused (4xx).
- When that fails (the server is away), the write is put in the spool
  (:class:`~fusedstats.store.spool.RequestSpool`) and the call returns at once with a
  result marked ``"spooled": True``. From then on, every write goes to the spool behind
  it, so order is kept, and one background thread delivers the spool, oldest first,
  trying again with backoff (up to ``max_backoff_s``) until the server is back. Once
  the spool is empty, writes go straight again.
- The spool is on disk: a client started after a crash delivers what the previous
  one left (see :func:`~fusedstats.store.spool.default_spool_dir`).

No record can jam the spool. A spooled request the server refuses (4xx other than 401,
403, 408, 429) is moved to the spool's dead-letter file and counted in
``counters["rejected"]``; a 401 or 403 keeps it (a wrong token can be fixed) and backs
off. A record the server keeps failing on (a 500, or a request that cannot even be
sent) is tried :data:`POISON_ATTEMPTS` times, then moved to the dead-letter file
and counted in ``counters["dead_lettered"]``, as are lines that are not records; an
unreachable or overloaded server (a transport error, 502, 503, 504) is waited for, never
held against a record. Each kind is logged at WARNING the first time, then at DEBUG. A
spooled run creation the server refuses is replaced by a minimal one (same id, the
refusal in its description), so the run's payloads are not refused after it. No
exception ends the spool's thread. Reads are never spooled: they retry within
``timeout_s``, then raise; they do not see writes still in the spool.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .protocol import (
    MAX_STATUS_LENGTH,
    RUNNING,
    TOKEN_ENV,
    TOKEN_FILE_ENV,
    RunNotFoundError,
    StatsStoreError,
)
from .spool import RequestSpool, default_spool_dir
from .values import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_PAYLOAD_KEYS,
    MAX_TAGS,
    check_depth,
    check_int64,
    check_payload,
    check_uuid,
    decode_payload,
    decode_value,
    encode_payload,
    fit_text,
    iso_time,
    jsonable,
)

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger("fusedstats.store")

#: The spool's thread sends consecutive spooled payloads together, at most this many
#: and (beyond the first) this many bytes of them per request: one request and one
#: thread hop on the server per batch, not per payload, so a backlog drains faster
#: than payloads arrive one at a time.
BATCH_RECORDS = 64
BATCH_BYTES = 2 * 2**20
#: Attempts at a spooled record the server keeps failing on (a 500, or a request that
#: cannot be sent) before it is moved to the dead-letter file.
POISON_ATTEMPTS = 5
_TRANSIENT_STATUS = frozenset({408, 429})
_KEEP_IN_SPOOL_STATUS = frozenset({401, 403})
#: The server (or a proxy) is away or overloaded: never held against a record.
_UNAVAILABLE_STATUS = frozenset({502, 503, 504})
COUNTER_NAMES = (
    "sent",
    "spooled",
    "replayed",
    "rejected",
    "dead_lettered",
    "retried",
    "batches",
)


class _TransientError(Exception):
    """The server could not be reached or was not ready: worth trying again later.
    ``status`` is the HTTP status of the last answer (None: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def poison(self) -> bool:
        """True when the server answered, and not with "unavailable": this record may
        be what fails."""
        return (
            self.status is not None
            and self.status >= 500
            and (self.status not in _UNAVAILABLE_STATUS)
        )


class _RefusedError(Exception):
    """The server answered with a 4xx: sending the same request again will not help."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        try:
            detail: Any = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        super().__init__(f"HTTP {self.status}: {detail}")


class HttpStatsClient:
    """The stats store behind a server started with ``fusedstats serve``.

    Same methods and results as :class:`~fusedstats.store.SqlStatsStore`; results of
    writes that went to the spool carry ``"spooled": True``. Safe to share between
    threads.

    Args:
        base_url: the server, ``http://host:port``.
        token: the server's token, to write (or a read-only token, to read) (default:
            ``$FUSEDSTATS_SERVER_TOKEN``, else the file ``$FUSEDSTATS_SERVER_TOKEN_FILE``
            names).
        spool_dir: where writes wait while the server is away (default:
            :func:`~fusedstats.store.spool.default_spool_dir`).
        timeout_s: how long one call may take in all, retries included.
        retries: further attempts of a call after a transient failure.
        backoff_s: wait before the first retry, doubled for each next one.
        max_backoff_s: longest wait between the spool's delivery attempts.
        write_behind: ``record_metrics`` always goes through the spool and returns once
            the payload is on disk; the spool's thread sends payloads in batches. For a
            caller that must not wait for the server at all (a sink at 100 payloads/s).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.05,
        max_backoff_s: float = 2.0,
        write_behind: bool = False,
    ) -> None:
        import httpx

        if timeout_s <= 0 or retries < 0 or backoff_s < 0 or max_backoff_s <= 0:
            raise ValueError(
                "HttpStatsClient needs timeout_s > 0, retries >= 0, backoff_s >= 0 and "
                f"max_backoff_s > 0, got {timeout_s}, {retries}, {backoff_s}, {max_backoff_s}"
            )
        self.base_url = base_url.rstrip("/")
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.write_behind = bool(write_behind)
        token = token if token is not None else _token_from_environment()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)
        self._spool = RequestSpool.claim(
            spool_dir if spool_dir is not None else default_spool_dir(), self.base_url
        )
        self._cond = threading.Condition()
        self._direct = 0  # writes being sent straight to the server
        self._draining = False  # the spool thread is sending a spooled write
        self._retry_at = 0.0  # the spool thread's next attempt (monotonic time)
        self._closed = False
        self._counts = dict.fromkeys(COUNTER_NAMES, 0)
        self._strikes = 0  # failed attempts at the spool's first record, see POISON_ATTEMPTS
        self._logged: set[str] = set()  # kinds of set-aside records logged at WARNING
        self._drainer: threading.Thread | None = None
        if self._spool.pending:
            logger.info(
                "stats client: %d write(s) left in %s from before",
                self._spool.pending,
                self._spool.path,
            )
            with self._cond:
                self._start_drainer()

    # ---- writes ----------------------------------------------------------------------

    def create_training_run(
        self,
        name: str,
        url: str,
        description: str,
        tags: list[str],
        *,
        run_id: UUID | None = None,
    ) -> dict[str, Any]:
        """See :meth:`SqlStatsStore.create_training_run`; the run id is chosen here.

        Texts longer than the server takes (``MAX_TEXT_LENGTH`` characters) are cut,
        with a marker, and tags past ``MAX_TAGS`` left out (both logged); text with NUL
        characters raises ValueError naming the field: a run's creation must not be
        refused later, or its payloads would be too."""
        run = check_uuid("run_id", run_id) if run_id is not None else uuid.uuid4()
        given: Any = tags
        if isinstance(given, (str, bytes)) or not isinstance(given, (list, tuple)):
            raise TypeError(f"tags: a list of strings is needed, got {given!r:.80}")
        if len(tags) > MAX_TAGS:
            logger.warning(
                "stats client: run %s: %d tags, the first %d kept", run, len(tags), MAX_TAGS
            )
        body = {
            "id": str(run),
            "name": _server_text("name", name),
            "url": _server_text("url", url),
            "description": _server_text("description", description),
            "tags": [_server_text("tags[]", str(tag)) for tag in tags[:MAX_TAGS]],
        }
        now = iso_time(time.time())
        spooled = {
            **body,
            "id": run,
            "status": RUNNING,
            "created_at": now,
            "updated_at": now,
            "spooled": True,
        }
        return _run(self._write("POST", "/runs", body, str(run), spooled))

    def create_epoch(
        self,
        run_id: UUID,
        start_training_epoch: int,
        end_training_epoch: int,
        attributes: dict[str, Any],
        *,
        epoch_id: UUID | None = None,
    ) -> dict[str, Any]:
        """See :meth:`SqlStatsStore.create_epoch`; the epoch id is chosen here."""
        run = check_uuid("run_id", run_id)
        epoch = check_uuid("epoch_id", epoch_id) if epoch_id is not None else uuid.uuid4()
        check_depth("attributes", attributes)
        body = {
            "id": str(epoch),
            "start_training_epoch": check_int64("start_training_epoch", start_training_epoch),
            "end_training_epoch": check_int64("end_training_epoch", end_training_epoch),
            "attributes": jsonable(dict(attributes or {})),
        }
        spooled = {
            **body,
            "id": epoch,
            "run_id": run,
            "created_at": iso_time(time.time()),
            "spooled": True,
        }
        return _epoch(self._write("POST", f"/runs/{run}/epochs", body, str(epoch), spooled))

    def update_training_run_status(self, run_id: UUID, status: str) -> dict[str, Any] | None:
        """See :meth:`SqlStatsStore.update_training_run_status`."""
        run = check_uuid("run_id", run_id)
        if not isinstance(status, str) or not 0 < len(status) <= MAX_STATUS_LENGTH:
            raise ValueError(f"status: 1 to {MAX_STATUS_LENGTH} characters, got {status!r}")
        spooled = {"id": run, "status": status, "spooled": True}
        try:
            result = self._write(
                "PUT", f"/runs/{run}/status", {"status": status}, str(uuid.uuid4()), spooled
            )
        except RunNotFoundError:
            return None
        return _run(result)

    def record_metrics(
        self,
        run_id: UUID,
        step: int,
        payload: Mapping[str, float],
        *,
        epoch: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any] | None:
        """See :meth:`SqlStatsStore.record_metrics`; without ``idempotency_key`` a fresh
        one is made, so that the call's own retries store the payload once."""
        run = check_uuid("run_id", run_id)
        values = check_payload(payload)
        if len(values) > MAX_PAYLOAD_KEYS:
            raise ValueError(f"payload: {len(values)} keys, the server takes {MAX_PAYLOAD_KEYS}")
        key = idempotency_key if idempotency_key is not None else f"auto/{uuid.uuid4()}"
        if not isinstance(key, str) or not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
            raise ValueError(
                f"idempotency_key: 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters, got {key!r}"
            )
        body: dict[str, Any] = {
            "step": check_int64("step", step),
            "epoch": None if epoch is None else check_int64("epoch", epoch),
            "payload": encode_payload(values),
            "idempotency_key": key,
        }
        spooled = {
            "run_id": run,
            "step": body["step"],
            "epoch": body["epoch"],
            "keys": len(values),
            "duplicate": False,
            "spooled": True,
        }
        result = self._write(
            "POST",
            f"/runs/{run}/metrics",
            body,
            key,
            spooled,
            run=str(run),
            always_spool=self.write_behind,
        )
        return {**result, "run_id": check_uuid("run_id", result["run_id"])}

    def _write(
        self,
        method: str,
        path: str,
        body: dict[str, Any],
        key: str,
        spooled: dict[str, Any],
        *,
        run: str | None = None,
        always_spool: bool = False,
    ) -> dict[str, Any]:
        record = {"method": method, "path": path, "json": body, "key": key}
        if run is not None:  # a payload: the spool's thread may batch it
            record["run_id"] = run
        with self._cond:
            if self._closed:
                raise StatsStoreError("the stats client is closed")
            direct = not always_spool and self._spool.pending == 0 and not self._draining
            if direct:
                self._direct += 1
            else:
                self._spool.append(record)
                self._counts["spooled"] += 1
                self._start_drainer()
                return spooled
        try:
            response = self._request(method, path, body, key, time.monotonic() + self.timeout_s)
        except _TransientError as error:
            with self._cond:
                # First in line: what was spooled while it was being tried came later.
                self._spool.prepend(record)
                self._counts["spooled"] += 1
                self._start_drainer()
            logger.info("stats client: %s %s spooled: %s", method, path, error)
            return spooled
        except _RefusedError as error:
            raise _refusal(error, path) from None
        finally:
            with self._cond:
                self._direct -= 1
                self._cond.notify_all()
        with self._cond:
            self._counts["sent"] += 1
        result: dict[str, Any] = response.json()
        return result

    # ---- reads -----------------------------------------------------------------------

    def list_runs(self) -> list[dict[str, Any]]:
        return [_run(run) for run in self._read("/runs")]

    def get_run(self, run_id: UUID) -> dict[str, Any] | None:
        try:
            return _run(self._read(f"/runs/{check_uuid('run_id', run_id)}"))
        except RunNotFoundError:
            return None

    def epochs(self, run_id: UUID) -> list[dict[str, Any]]:
        return [
            _epoch(epoch) for epoch in self._read(f"/runs/{check_uuid('run_id', run_id)}/epochs")
        ]

    def metric_keys(self, run_id: UUID) -> list[str]:
        return [str(key) for key in self._read(f"/runs/{check_uuid('run_id', run_id)}/keys")]

    def metric_series(self, run_id: UUID, key: str) -> list[tuple[int, float]]:
        series = self._read(f"/runs/{check_uuid('run_id', run_id)}/series", {"key": key})
        return [(int(step), decode_value(value)) for step, value in series]

    def payloads(self, run_id: UUID) -> list[dict[str, Any]]:
        return [
            {**record, "payload": decode_payload(record["payload"])}
            for record in self._read(f"/runs/{check_uuid('run_id', run_id)}/metrics")
        ]

    def _read(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            response = self._request(
                "GET", path, None, None, time.monotonic() + self.timeout_s, params
            )
        except _TransientError as error:
            raise StatsStoreError(f"GET {self.base_url}{path}: {error}") from None
        except _RefusedError as error:
            raise _refusal(error, path) from None
        return response.json()

    # ---- HTTP ------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        key: str | None,
        deadline: float,
        params: dict[str, str] | None = None,
        attempts: int | None = None,
    ) -> httpx.Response:
        """One request, tried up to ``attempts`` (default ``retries + 1``) times before
        ``deadline``; the 2xx response, or _TransientError / _RefusedError."""
        import httpx

        headers = {"Idempotency-Key": key} if key is not None else None
        error: str = "no attempt"
        last_status: int | None = None
        for attempt in range(self.retries + 1 if attempts is None else attempts):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if attempt:
                with self._cond:
                    self._counts["retried"] += 1
            try:
                response = self._http.request(
                    method, path, json=body, headers=headers, params=params, timeout=left
                )
            except httpx.TransportError as failure:
                error = f"{type(failure).__name__}: {failure}"
                last_status = None
            else:
                status = response.status_code
                if status < 400:
                    return response
                if status < 500 and status not in _TRANSIENT_STATUS:
                    raise _RefusedError(response)
                error = f"HTTP {status}: {response.text:.200}"
                last_status = status
            pause = min(self.backoff_s * 2**attempt, deadline - time.monotonic())
            if pause > 0:
                time.sleep(pause)
        raise _TransientError(error, last_status)

    # ---- the spool's thread ----------------------------------------------------------

    @property
    def pending(self) -> int:
        """Writes waiting in the spool."""
        with self._cond:
            return self._spool.pending

    @property
    def counters(self) -> dict[str, int]:
        """``sent`` (straight to the server), ``spooled``, ``replayed`` (delivered from
        the spool), ``rejected`` (spooled writes the server refused, moved to the
        dead-letter file), ``dead_lettered`` (spooled records the server kept failing
        on, or that could not be read or sent, moved there too), ``retried`` (attempts
        after a first), ``batches`` (requests that delivered several spooled payloads
        at once)."""
        with self._cond:
            counts = dict(self._counts)
            counts["dead_lettered"] += self._spool.dead_lines
            return counts

    def _start_drainer(self) -> None:
        """Starts the spool's thread (call holding ``_cond``) and wakes it."""
        if self._drainer is None:
            self._drainer = threading.Thread(
                target=self._drain, name="fusedstats-stats-spool", daemon=True
            )
            self._drainer.start()
        self._cond.notify_all()

    def _drain(self) -> None:
        delay = self.backoff_s or 0.05
        while True:
            with self._cond:
                while not self._closed and (
                    self._spool.pending == 0 or self._direct or time.monotonic() < self._retry_at
                ):
                    wait = None if self._spool.pending == 0 or self._direct else self._retry_at
                    self._cond.wait(None if wait is None else max(wait - time.monotonic(), 0))
                if self._closed:
                    return
                self._draining = True
            try:
                moved = self._drain_once()
            except Exception:  # no exception may end this thread: log, back off, go on
                logger.exception("stats client: delivering the spool %s failed", self._spool.path)
                moved = 0
            with self._cond:
                self._draining = False
                if moved == 0:
                    self._retry_at = time.monotonic() + delay
                    delay = min(delay * 2, self.max_backoff_s)
                else:
                    delay = self.backoff_s or 0.05
                self._cond.notify_all()

    def _drain_once(self) -> int:
        """Tries the spool's first records once; how many left the spool."""
        with self._cond:
            try:
                records = self._spool.peek_many(BATCH_RECORDS, BATCH_BYTES)
            except OSError:
                logger.exception("stats client: the spool %s cannot be read", self._spool.path)
                return 0
        if not records:
            return 0
        batch = _leading_payloads(records)
        if len(batch) > 1:
            outcomes, strike = self._replay_batch(batch)
        else:
            outcomes, strike = self._replay(records[0])
        with self._cond:
            moved = self._settle(records, outcomes)
            if moved:
                self._strikes = 0
            if strike:
                self._strikes += 1
                if self._strikes >= POISON_ATTEMPTS:
                    moved += self._set_aside_head(strike)
        return moved

    def _settle(self, records: list[dict[str, Any]], outcomes: list[_Outcome]) -> int:
        """Pops the first ``len(outcomes)`` records (delivered, or set aside); holds _cond."""
        for record, (kind, why) in zip(records, outcomes, strict=False):
            if kind == "replayed":
                self._counts["replayed"] += 1
            else:
                self._dead_letter(record, kind, why)
        if outcomes:
            self._spool.pop(len(outcomes))
        return len(outcomes)

    def _set_aside_head(self, why: str) -> int:
        """Moves the spool's first record to the dead-letter file after POISON_ATTEMPTS
        failed attempts; holds _cond."""
        record = self._spool.peek()
        if record is None:
            return 0
        self._dead_letter(record, "dead_lettered", f"failed {self._strikes} times: {why}")
        self._spool.pop()
        self._strikes = 0
        return 1

    def _dead_letter(self, record: dict[str, Any], kind: str, why: str) -> None:
        """Counts a set-aside record and appends it to the dead-letter file; logs the
        first of each kind at WARNING, later ones at DEBUG. Holds _cond."""
        self._counts[kind] += 1
        try:
            self._spool.dead_letter(record, why)
        except OSError:
            logger.exception(
                "stats client: %s %s could not be kept in %s, dropped: %s",
                record.get("method"),
                record.get("path"),
                self._spool.dead_path,
                why,
            )
            return
        level = logging.DEBUG if kind in self._logged else logging.WARNING
        self._logged.add(kind)
        logger.log(
            level,
            "stats client: %s spooled %s %s, set aside in %s: %s%s",
            "the server refused" if kind == "rejected" else "gave up on",
            record.get("method"),
            record.get("path"),
            self._spool.dead_path,
            why,
            "" if level == logging.DEBUG else " (later ones are logged at DEBUG)",
        )

    def _replay(self, record: dict[str, Any]) -> tuple[list[_Outcome], str | None]:
        """Sends a spooled record once: its outcome (none: to be tried again later), and
        why it failed when that failure counts against the record (a strike)."""
        try:
            method, path = str(record["method"]), str(record["path"])
            body, key = record.get("json"), record.get("key")
            if body is not None and not isinstance(body, dict):
                raise TypeError(f"json: an object is needed, got {type(body).__name__}")
        except (KeyError, TypeError) as error:
            return [("dead_lettered", f"not a request: {error!r}")], None
        try:
            self._request(
                method,
                path,
                body,
                None if key is None else str(key),
                time.monotonic() + self.timeout_s,
                attempts=1,
            )
        except _TransientError as error:
            return [], str(error) if error.poison else None
        except _RefusedError as error:
            if error.status in _KEEP_IN_SPOOL_STATUS:
                logger.warning("stats client: spooled %s kept: %s", record.get("path"), error)
                return [], None
            if method == "POST" and path == "/runs" and self._create_stand_in_run(body, error):
                return [("rejected", f"{error}; a minimal run was created instead")], None
            return [("rejected", str(error))], None
        except Exception as error:  # a request that cannot even be sent (a bad URL, ...)
            return [], f"{type(error).__name__}: {error}"
        return [("replayed", "")], None

    def _create_stand_in_run(self, body: dict[str, Any] | None, error: _RefusedError) -> bool:
        """After the server refused a spooled run creation: creates the run (same id)
        with a minimal body, so that its payloads are not refused too. True if done."""
        if not isinstance(body, dict) or body.get("id") is None:
            return False
        name = body.get("name")
        stand_in = {
            "id": str(body["id"]),
            "name": fit_text(name.replace("\x00", "")) if isinstance(name, str) else "unknown",
            "url": "",
            "description": fit_text(
                f"[fusedstats: the server refused this run's creation ({error}); created "
                "without its URL, description and tags]"
            ),
            "tags": [],
        }
        try:
            self._request(
                "POST",
                "/runs",
                stand_in,
                str(body["id"]),
                time.monotonic() + self.timeout_s,
                attempts=1,
            )
        except Exception as failure:
            logger.warning(
                "stats client: run %s could not be created at all: %s", body["id"], failure
            )
            return False
        return True

    def _replay_batch(self, records: list[dict[str, Any]]) -> tuple[list[_Outcome], str | None]:
        """Sends spooled payloads in one ``/metrics/batch`` request: the outcomes of the
        first records (in order, up to the first the server could not store: that one
        is tried again), and a strike for it. A batch refused or failed as a whole is
        sent one record at a time instead (so a record that fails is found)."""
        items = [{**record["json"], "run_id": record["run_id"]} for record in records]
        try:
            response = self._request(
                "POST",
                "/metrics/batch",
                {"items": items},
                None,
                time.monotonic() + self.timeout_s,
                attempts=1,
            )
            results = response.json()["results"]
            if not isinstance(results, list):
                raise TypeError("results: not a list")
        except _TransientError as error:
            if not error.poison:
                return [], None
            return self._replay(records[0])
        except _RefusedError as error:
            if error.status in _KEEP_IN_SPOOL_STATUS:
                logger.warning("stats client: spooled payloads kept: %s", error)
                return [], None
            return self._replay(records[0])
        except Exception:  # an answer that is not the batch's: one record at a time
            return self._replay(records[0])
        with self._cond:
            self._counts["batches"] += 1
        outcomes: list[_Outcome] = []
        for result in results[: len(records)]:
            status = result.get("status") if isinstance(result, dict) else None
            detail = result.get("detail") if isinstance(result, dict) else result
            if status == 200:
                outcomes.append(("replayed", ""))
            elif isinstance(status, int) and 400 <= status < 500:
                outcomes.append(("rejected", f"HTTP {status}: {detail}"))
            else:  # the server stopped here: this record goes first next time
                failure = _TransientError(f"HTTP {status}: {detail}", status)
                return outcomes, str(failure) if failure.poison else None
        return outcomes, None

    # ---- lifetime --------------------------------------------------------------------

    def flush(self, timeout_s: float | None = None) -> bool:
        """Tries the spool now and waits until it is empty, at most ``timeout_s``
        (None: no limit; 0: only start the attempt). True if nothing is left."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            self._retry_at = 0.0
            self._cond.notify_all()
            while self._spool.pending or self._direct or self._draining:
                left = None if deadline is None else deadline - time.monotonic()
                if self._closed or (left is not None and left <= 0):
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout_s: float | None = None) -> None:
        """Flushes for at most ``timeout_s`` (default: the client's ``timeout_s``), then
        stops the spool's thread and releases the spool; what is left in it is
        delivered by the next client on the same ``spool_dir``. Idempotent."""
        if self._closed:
            return
        self.flush(self.timeout_s if timeout_s is None else timeout_s)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._drainer is not None:
            self._drainer.join(self.timeout_s + 1.0)
        with self._cond:
            self._spool.close()
        self._http.close()

    def __enter__(self) -> HttpStatsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HttpStatsClient({self.base_url!r}, pending={self._spool.pending})"


_Outcome = tuple[str, str]  # ("replayed" | "rejected" | "dead_lettered", why)


def _token_from_environment() -> str | None:
    """``$FUSEDSTATS_SERVER_TOKEN``, else the first line of ``$FUSEDSTATS_SERVER_TOKEN_FILE``."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        return token
    path = os.environ.get(TOKEN_FILE_ENV)
    if not path:
        return None
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as file:
            return file.readline().strip() or None
    except OSError as error:
        raise StatsStoreError(f"${TOKEN_FILE_ENV}: cannot read the token: {error}") from None


def _server_text(name: str, value: Any) -> str:
    """A run's text field as the server takes it: cut to its limit (with a marker,
    logged); TypeError or ValueError naming ``name`` for what it never takes."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: a string is needed, got {value!r:.80}")
    if "\x00" in value:
        raise ValueError(f"{name}: NUL characters cannot be stored, got {value!r:.80}")
    fitted = fit_text(value)
    if fitted is not value:
        logger.warning(
            "stats client: %s of %d characters cut to the server's %d",
            name,
            len(value),
            len(fitted),
        )
    return fitted


def _leading_payloads(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The spooled payloads at the head of ``records`` (they may go in one batch)."""
    batch = []
    for record in records:
        if "run_id" not in record or not isinstance(record.get("json"), dict):
            break
        batch.append(record)
    return batch


def _log_refused(record: dict[str, Any], why: str) -> None:
    logger.warning(
        "stats client: the server refused spooled %s %s, dropped: %s",
        record.get("method"),
        record.get("path"),
        why,
    )


def _refusal(error: _RefusedError, path: str) -> StatsStoreError:
    if error.status == 404 and path.startswith("/runs/"):
        return RunNotFoundError(path.split("/")[2])
    return StatsStoreError(f"{path}: {error}")


def _run(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "id": check_uuid("id", data["id"])}


def _epoch(data: dict[str, Any]) -> dict[str, Any]:
    return {
        **data,
        "id": check_uuid("id", data["id"]),
        "run_id": check_uuid("run_id", data["run_id"]),
    }
