"""The stats server's HTTP API (FastAPI) over one :class:`~fusedstats.store.SqlStatsStore`.

Routes (JSON; a non-finite payload value is ``"nan"``, ``"inf"`` or ``"-inf"``):

=======  ==============================  ===============================================
GET      ``/health``                     ``{"status": "ok"}`` (readiness)
POST     ``/runs``                       create a run (``id`` optional: chosen by client)
GET      ``/runs``                       every run
GET      ``/runs/{run_id}``              one run (404 if none)
PUT      ``/runs/{run_id}/status``       ``{"status": ...}`` (404 if no such run)
POST     ``/runs/{run_id}/epochs``       create an epoch (``id`` optional)
GET      ``/runs/{run_id}/epochs``       a run's epochs
POST     ``/runs/{run_id}/metrics``      one payload; ``Idempotency-Key`` header or
                                         ``idempotency_key`` field: stored once
POST     ``/metrics/batch``              ``{"items": [...]}``: payloads with ``run_id``,
                                         each stored as above, one result each
GET      ``/runs/{run_id}/metrics``      a run's payloads by step
GET      ``/runs/{run_id}/keys``         a run's metric keys
GET      ``/runs/{run_id}/series?key=K`` ``[[step, value], ...]`` of one key
=======  ==============================  ===============================================

Writes need ``Authorization: Bearer <token>`` (401 without it or with another token).
Bodies are validated: a wrong type or an unknown field is a 422 whose ``detail`` names
the field (``loc``); a body over the size limit is a 413; a request naming a run that
does not exist is a 404; a database that stays locked is a 503. The OpenAPI
description is at ``/openapi.json``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Annotated, Any, Literal
from uuid import UUID

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StringConstraints

from .protocol import MAX_STATUS_LENGTH, RunNotFoundError
from .sql import SqlStatsStore
from .values import (
    INT64_MAX,
    INT64_MIN,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_KEY_LENGTH,
    encode_payload,
    encode_value,
)

#: Default limit of a request body (bytes): a 1,500-key payload is about 60 KB.
DEFAULT_MAX_BODY_BYTES = 8 * 2**20
#: Most keys one payload may have.
MAX_PAYLOAD_KEYS = 100_000
#: Longest run name, URL or description (characters), and most tags.
MAX_TEXT_LENGTH = 10_000
MAX_TAGS = 1_000
#: Most payloads in one ``/metrics/batch`` request.
MAX_BATCH_ITEMS = 1_000

Int64 = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
MetricKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH)]
MetricValue = StrictFloat | StrictInt | Literal["nan", "inf", "-inf"]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunIn(_Body):
    id: UUID | None = None
    name: Text
    url: Text = ""
    description: Text = ""
    tags: Annotated[list[Text], Field(max_length=MAX_TAGS)] = []


class StatusIn(_Body):
    status: Annotated[str, StringConstraints(min_length=1, max_length=MAX_STATUS_LENGTH)]


class EpochIn(_Body):
    id: UUID | None = None
    start_training_epoch: Int64
    end_training_epoch: Int64
    attributes: dict[str, Any] = {}


class MetricsIn(_Body):
    step: Int64
    epoch: Int64 | None = None
    payload: Annotated[dict[MetricKey, MetricValue], Field(max_length=MAX_PAYLOAD_KEYS)]
    idempotency_key: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_IDEMPOTENCY_KEY_LENGTH)]
        | None
    ) = None


class MetricsItemIn(MetricsIn):
    run_id: UUID


class MetricsBatchIn(_Body):
    items: Annotated[list[MetricsItemIn], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


class BodyTooLargeError(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body: larger than the limit of {limit} bytes")


_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Guard:
    """ASGI middleware, run before a body is read: a write (any method but GET, HEAD and
    OPTIONS) without ``Authorization: Bearer <token>`` gets a 401; a body over ``limit``
    bytes gets a 413, whether it announces its length (refused before reading) or not
    (refused once the limit is passed)."""

    def __init__(
        self,
        app: Callable[[_Scope, _Receive, _Send], Awaitable[None]],
        token: str,
        limit: int,
    ):
        self.app = app
        self.token = token.encode()
        self.limit = limit

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        if scope["method"] not in _READ_METHODS and not _authorized(
            headers.get(b"authorization"), self.token
        ):
            await _respond(send, 401, _UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
            return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _respond(send, 413, BodyTooLargeError(self.limit).detail)
            return
        received = 0
        started = False

        async def limited_receive() -> MutableMapping[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLargeError(self.limit)
            return message

        async def tracking_send(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError as error:
            if not started:
                await _respond(send, 413, error.detail)


def _authorized(header: bytes | None, token: bytes) -> bool:
    scheme, _, given = (header or b"").partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token)


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_UNAUTHORIZED = "Authorization: a valid 'Bearer <token>' is needed to write"


async def _respond(
    send: _Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A JSON ``{"detail": ...}`` response; the connection is closed after it (the
    request's body, if any, was not read)."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app(
    store: SqlStatsStore, *, token: str, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> FastAPI:
    """The server's FastAPI application over ``store``; writes need ``token``, bodies
    over ``max_body_bytes`` get a 413."""
    if not token:
        raise ValueError("token: the server needs a non-empty write token")
    from fusedstats import __version__

    app = FastAPI(
        title="fusedstats stats server",
        version=__version__,
        description="Training runs, epochs, statuses and payloads of fusedstats reporters.",
    )
    # Outside FastAPI's exception middleware: a 413 raised while the body is read is
    # turned into a response there; a 401 and an announced 413 are answered by Guard.
    app.add_middleware(Guard, token=token, limit=max_body_bytes)
    expected = token.encode()

    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        # Guard checked it before the body was read; this documents it in the OpenAPI
        # description (and holds should the app ever be served without Guard).
        if not _authorized(None if authorization is None else authorization.encode(), expected):
            raise HTTPException(401, _UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})

    writer = [Depends(require_token)]

    @app.exception_handler(RunNotFoundError)
    async def _not_found(_: Request, error: RunNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(ValueError)
    @app.exception_handler(TypeError)
    async def _invalid(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=422)

    @app.exception_handler(sa.exc.OperationalError)
    async def _unavailable(_: Request, error: sa.exc.OperationalError) -> JSONResponse:
        return JSONResponse(
            {"detail": f"database unavailable: {error.orig}"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/runs", dependencies=writer)
    def create_run(body: RunIn) -> JSONResponse:
        run = store.create_training_run(
            body.name, body.url, body.description, list(body.tags), run_id=body.id
        )
        return JSONResponse(_run_json(run))

    @app.get("/runs")
    def list_runs() -> JSONResponse:
        return JSONResponse([_run_json(run) for run in store.list_runs()])

    @app.get("/runs/{run_id}")
    def get_run(run_id: UUID) -> JSONResponse:
        run = store.get_run(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        return JSONResponse(_run_json(run))

    @app.put("/runs/{run_id}/status", dependencies=writer)
    def update_status(run_id: UUID, body: StatusIn) -> JSONResponse:
        run = store.update_training_run_status(run_id, body.status)
        if run is None:
            raise RunNotFoundError(run_id)
        return JSONResponse(_run_json(run))

    @app.post("/runs/{run_id}/epochs", dependencies=writer)
    def create_epoch(run_id: UUID, body: EpochIn) -> JSONResponse:
        epoch = store.create_epoch(
            run_id,
            body.start_training_epoch,
            body.end_training_epoch,
            body.attributes,
            epoch_id=body.id,
        )
        return JSONResponse(_epoch_json(epoch))

    @app.get("/runs/{run_id}/epochs")
    def list_epochs(run_id: UUID) -> JSONResponse:
        return JSONResponse([_epoch_json(epoch) for epoch in store.epochs(run_id)])

    @app.post("/runs/{run_id}/metrics", dependencies=writer)
    def record_metrics(
        run_id: UUID,
        body: MetricsIn,
        idempotency_key: Annotated[
            str | None, Header(max_length=MAX_IDEMPOTENCY_KEY_LENGTH)
        ] = None,
    ) -> JSONResponse:
        recorded = store.record_metrics(
            run_id,
            body.step,
            _floats(body.payload),
            epoch=body.epoch,
            idempotency_key=body.idempotency_key or idempotency_key,
        )
        return JSONResponse(_with_str_ids(recorded or {}))

    @app.post("/metrics/batch", dependencies=writer)
    def record_metrics_batch(body: MetricsBatchIn) -> JSONResponse:
        """Several payloads (of any runs), each stored as ``POST /runs/{run_id}/metrics``
        would, in order; each result carries its own ``status`` (200, 404 or 422)."""
        results: list[dict[str, Any]] = []
        for item in body.items:
            try:
                recorded = store.record_metrics(
                    item.run_id,
                    item.step,
                    _floats(item.payload),
                    epoch=item.epoch,
                    idempotency_key=item.idempotency_key,
                )
            except RunNotFoundError as error:
                results.append({"status": 404, "detail": str(error)})
            except (TypeError, ValueError) as error:
                results.append({"status": 422, "detail": str(error)})
            else:
                results.append({"status": 200, **_with_str_ids(recorded or {})})
        return JSONResponse({"results": results})

    @app.get("/runs/{run_id}/metrics")
    def list_payloads(run_id: UUID) -> JSONResponse:
        return JSONResponse(
            [
                {**record, "payload": encode_payload(record["payload"])}
                for record in store.payloads(run_id)
            ]
        )

    @app.get("/runs/{run_id}/keys")
    def metric_keys(run_id: UUID) -> JSONResponse:
        return JSONResponse(store.metric_keys(run_id))

    @app.get("/runs/{run_id}/series")
    def metric_series(
        run_id: UUID, key: Annotated[str, Query(min_length=1, max_length=MAX_KEY_LENGTH)]
    ) -> JSONResponse:
        series = store.metric_series(run_id, key)
        return JSONResponse([[step, encode_value(value)] for step, value in series])

    return app


_NONFINITE = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


def _floats(payload: Mapping[str, float | int | str]) -> dict[str, float]:
    """A validated body's payload as floats ("nan", "inf", "-inf" named)."""
    out: dict[str, float] = {}
    for key, value in payload.items():
        if type(value) is float:
            out[key] = value
        else:
            out[key] = _NONFINITE[value] if isinstance(value, str) else float(value)
    return out


def _with_str_ids(record: dict[str, Any]) -> dict[str, Any]:
    return {key: str(value) if isinstance(value, UUID) else value for key, value in record.items()}


def _run_json(run: dict[str, Any]) -> dict[str, Any]:
    return _with_str_ids(run)


def _epoch_json(epoch: dict[str, Any]) -> dict[str, Any]:
    return _with_str_ids(epoch)
