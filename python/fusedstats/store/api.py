"""The stats server's HTTP API (FastAPI) over one :class:`~fusedstats.store.SqlStatsStore`.

Routes (JSON; a non-finite payload value is ``"nan"``, ``"inf"`` or ``"-inf"``):

=======  ==============================  ===============================================
GET      ``/health``                     ``{"status": "ok"}`` (readiness; no token)
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

What the server protects: every route but ``/health`` and the OpenAPI description
(``/openapi.json``, ``/docs``) needs ``Authorization: Bearer <token>``: reads take the
write token or the read-only token, writes only the write token (401 without a valid
token, 403 for the read-only token on a write). Bodies are validated before anything
is stored: a wrong type, an unknown field, a NUL character, a number beyond the float
range or attributes nested deeper than :data:`~fusedstats.store.values.MAX_JSON_DEPTH`
is a 422 whose ``detail`` names the field (``loc``); a body that is not JSON is a 422
(``json_invalid``) or, when it cannot be parsed at all (nested past the parser's
limit), a 400; a body over the size limit is a 413; a request naming a run that does
not exist is a 404; a database that stays locked is a 503. A batch is validated whole
(one bad item: a 422, nothing stored), then stored item by item, each item all or
nothing, with a result per item. The OpenAPI description says all of this.
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Annotated, Any, Literal
from uuid import UUID

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse as _JSONResponse
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
)

from .protocol import MAX_STATUS_LENGTH, RunNotFoundError
from .sql import SqlStatsStore
from .values import (
    INT64_MAX,
    INT64_MIN,
    MAX_BATCH_ITEMS,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_JSON_DEPTH,
    MAX_KEY_LENGTH,
    MAX_PAYLOAD_KEYS,
    MAX_TAGS,
    MAX_TEXT_LENGTH,
    encode_payload,
    encode_value,
    json_depth,
)

logger = logging.getLogger("fusedstats.store")

#: Default limit of a request body (bytes): a 1,500-key payload is about 60 KB.
DEFAULT_MAX_BODY_BYTES = 8 * 2**20
__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_BATCH_ITEMS",
    "MAX_PAYLOAD_KEYS",
    "MAX_TAGS",
    "MAX_TEXT_LENGTH",
    "create_app",
]

#: Text without NUL (PostgreSQL cannot store it), checked by the schema itself.
_NO_NUL = r"^[^\x00]*$"
#: Text that a database stores: no NUL. (A lone surrogate, which JSON can carry in an
#: escape and no database stores, is refused by pydantic itself: no JSON Schema pattern
#: says it portably.)
_TEXT = _NO_NUL
_FLOAT_MAX = int(sys.float_info.max)


def _utf8(value: str) -> str:
    """Refuses a lone surrogate (JSON can carry one; no database encoding stores it)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("not valid Unicode text (a lone surrogate)") from None
    return value


def _integral(value: Any) -> Any:
    """A float without a fraction as the int it is: JSON does not tell ``3.0`` from
    ``3`` (the schema's "integer" takes both); anything else as it is (a string stays a
    string, and is refused)."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


# The bounds before the validator: after it, pydantic would not write them as JSON Schema.
Int64 = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX), BeforeValidator(_integral)]
Text = Annotated[
    str, StringConstraints(max_length=MAX_TEXT_LENGTH, pattern=_TEXT), AfterValidator(_utf8)
]
_KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": _TEXT}
MetricKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_KEY_LENGTH, pattern=_TEXT),
    AfterValidator(_utf8),
]
_VALUE_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": -sys.float_info.max, "maximum": sys.float_info.max},
        {"type": "string", "enum": ["nan", "inf", "-inf"]},
    ]
}
#: A payload value: a float, an int within the float range, or a non-finite name.
MetricValue = Annotated[
    StrictFloat
    | Annotated[StrictInt, Field(ge=-_FLOAT_MAX, le=_FLOAT_MAX)]
    | Literal["nan", "inf", "-inf"],
    WithJsonSchema(_VALUE_SCHEMA),
]


def _payload_schema(schema: dict[str, Any]) -> None:
    """The payload as JSON Schema says it: every key (not only those matching a
    pattern) a non-empty string without NUL, every value a number in float range or a
    non-finite name (pydantic would write the key pattern as ``patternProperties``)."""
    schema["properties"]["payload"] = {
        "type": "object",
        "title": "Payload",
        "maxProperties": MAX_PAYLOAD_KEYS,
        "propertyNames": _KEY_SCHEMA,
        "additionalProperties": _VALUE_SCHEMA,
    }


IdempotencyKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_IDEMPOTENCY_KEY_LENGTH, pattern=_TEXT),
    AfterValidator(_utf8),
]


def _check_attributes(value: dict[str, Any]) -> dict[str, Any]:
    """Epoch attributes any reader can parse: nested at most MAX_JSON_DEPTH deep (a
    deeper document exhausts the recursion limit of whoever reads it)."""
    if json_depth(value) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels of objects and arrays")
    return value


Attributes = Annotated[
    dict[str, Any],
    AfterValidator(_check_attributes),
    Field(description=f"any JSON object, nested at most {MAX_JSON_DEPTH} levels deep"),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")


class RunIn(_Body):
    id: UUID | None = None
    name: Text
    url: Text = ""
    description: Text = ""
    tags: Annotated[list[Text], Field(max_length=MAX_TAGS)] = []


class StatusIn(_Body):
    status: Annotated[
        str,
        StringConstraints(min_length=1, max_length=MAX_STATUS_LENGTH, pattern=_TEXT),
        AfterValidator(_utf8),
    ]


class EpochIn(_Body):
    id: UUID | None = None
    start_training_epoch: Int64
    end_training_epoch: Int64
    attributes: Attributes = {}


class MetricsIn(_Body):
    model_config = ConfigDict(
        extra="forbid", regex_engine="python-re", json_schema_extra=_payload_schema
    )

    step: Int64
    epoch: Int64 | None = None
    payload: Annotated[dict[MetricKey, MetricValue], Field(max_length=MAX_PAYLOAD_KEYS)]
    idempotency_key: IdempotencyKey | None = None


class MetricsItemIn(MetricsIn):
    run_id: UUID


class MetricsBatchIn(_Body):
    items: Annotated[list[MetricsItemIn], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


# ---- what the server answers (documented in the OpenAPI description) -----------------

OutValue = float | Literal["nan", "inf", "-inf"]


class RunOut(BaseModel):
    id: UUID
    name: str
    url: str
    description: str
    tags: list[str]
    status: str
    created_at: str
    updated_at: str


class EpochOut(BaseModel):
    id: UUID
    run_id: UUID
    start_training_epoch: int
    end_training_epoch: int
    attributes: dict[str, Any]
    created_at: str


class RecordedOut(BaseModel):
    run_id: UUID
    step: int
    epoch: int | None
    keys: int
    duplicate: bool


class BatchItemOut(BaseModel):
    """One item's result: ``status`` 200 with what was recorded; 404 or 422 (refused,
    with ``detail``); 500 or 503 (not stored: the server failed, and stopped there, so
    the items after it have no result: send them again)."""

    status: int
    detail: str | None = None
    run_id: UUID | None = None
    step: int | None = None
    epoch: int | None = None
    keys: int | None = None
    duplicate: bool | None = None


class BatchOut(BaseModel):
    results: list[BatchItemOut]


class PayloadOut(BaseModel):
    step: int
    epoch: int | None
    payload: dict[str, OutValue]


_SERIES_RESPONSE: dict[str, Any] = {
    "description": "``[[step, value], ...]`` by step",
    "content": {
        "application/json": {
            "schema": {
                "type": "array",
                # [step, value]: an integer, then a number or a non-finite name. (Not
                # as prefixItems: schemathesis rewrites that into a form it refuses.)
                "items": {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"type": "number"},
                            {"type": "string", "enum": ["nan", "inf", "-inf"]},
                        ]
                    },
                    "minItems": 2,
                    "maxItems": 2,
                },
            }
        }
    },
}


class HealthOut(BaseModel):
    status: Literal["ok"]


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """``detail``: a message, or (422 from validation) one entry per field at fault."""

    detail: str | list[ValidationIssue]


_ERROR_TEXT = {
    400: "The body could not be parsed (nested past the parser's limit, ...)",
    401: "No valid token (a read needs the write or the read-only token)",
    403: "The read-only token cannot write",
    404: "No such training run",
    413: "The body is larger than the server's limit",
    422: "Invalid input; detail names the field (loc)",
    503: "The database is unavailable (locked); try again (Retry-After)",
}


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut, "description": _ERROR_TEXT[code]} for code in codes}


_READ = _responses(401, 422, 503)
_READ_RUN = _responses(401, 404, 422, 503)
_WRITE = _responses(400, 401, 403, 413, 422, 503)
_WRITE_RUN = _responses(400, 401, 403, 404, 413, 422, 503)


class JSONResponse(_JSONResponse):
    """JSON with every non-ASCII character escaped: a lone surrogate stored inside an
    epoch's attributes (JSON escapes can carry one) still makes valid UTF-8."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


class BodyTooLargeError(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body: larger than the limit of {limit} bytes")


_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: Served without a token: readiness, and the description of the API.
PUBLIC_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_UNAUTHORIZED = "Authorization: a valid 'Bearer <token>' is needed"
_READ_ONLY = "Authorization: this token may only read"


class Guard:
    """ASGI middleware, run before a body is read: a request to any path but
    :data:`PUBLIC_PATHS` without ``Authorization: Bearer <token>`` gets a 401 (a read
    takes the write token or ``read_token``, a write only the write token; the read
    token on a write gets a 403); a body over ``limit`` bytes gets a 413, whether it
    announces its length (refused before reading) or not (refused once the limit is
    passed)."""

    def __init__(
        self,
        app: Callable[[_Scope, _Receive, _Send], Awaitable[None]],
        token: str,
        limit: int,
        read_token: str | None = None,
    ):
        self.app = app
        self.token = token.encode()
        self.read_token = read_token.encode() if read_token else None
        self.limit = limit

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        refusal = self._refusal(scope, headers.get(b"authorization"))
        if refusal is not None:
            status, detail = refusal
            await _respond(send, status, detail, [(b"www-authenticate", b"Bearer")])
            return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _respond(send, 413, BodyTooLargeError(self.limit).detail)
            return
        await self._limited(scope, receive, send)

    def _refusal(self, scope: _Scope, header: bytes | None) -> tuple[int, str] | None:
        if scope.get("path") in PUBLIC_PATHS:
            return None
        if _authorized(header, self.token):
            return None
        if self.read_token is not None and _authorized(header, self.read_token):
            return None if scope["method"] in _READ_METHODS else (403, _READ_ONLY)
        return 401, _UNAUTHORIZED

    async def _limited(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
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
    store: SqlStatsStore,
    *,
    token: str,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    read_token: str | None = None,
) -> FastAPI:
    """The server's FastAPI application over ``store``: every route but ``/health`` and
    the API description needs a token (``token`` for everything, ``read_token`` for
    reads only); bodies over ``max_body_bytes`` get a 413."""
    if not token:
        raise ValueError("token: the server needs a non-empty write token")
    if read_token is not None and hmac.compare_digest(read_token.encode(), token.encode()):
        raise ValueError("read_token: must differ from the write token")
    from fusedstats import __version__

    app = FastAPI(
        title="fusedstats stats server",
        version=__version__,
        description="Training runs, epochs, statuses and payloads of fusedstats reporters. "
        "Every route but /health needs 'Authorization: Bearer <token>': the write token, "
        "or for reads the read-only token.",
    )
    # Outside FastAPI's exception middleware: a 413 raised while the body is read is
    # turned into a response there; a 401/403 and an announced 413 are answered by Guard.
    app.add_middleware(Guard, token=token, limit=max_body_bytes, read_token=read_token or None)
    _publish_exact_int64_bounds(app)
    _add_error_handlers(app)
    reader = [Depends(_token_check(token, read_token, write=False))]
    writer = [Depends(_token_check(token, read_token, write=True))]
    _add_read_routes(app, store, reader)
    _add_write_routes(app, store, writer)
    return app


def _publish_exact_int64_bounds(app: FastAPI) -> None:
    """FastAPI writes JSON Schema bounds as floats, so the 64-bit bounds of steps and
    epochs would read as +-2**63 (one past the largest step): put the exact integers
    back, so that the description and the server agree to the last integer."""
    make = app.openapi

    def exact() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_int64_bounds(make())
        return app.openapi_schema

    app.openapi = exact  # type: ignore[method-assign]


def _with_int64_bounds(spec: Any) -> Any:
    if isinstance(spec, dict):
        fixed = {key: _with_int64_bounds(value) for key, value in spec.items()}
        if fixed.get("type") == "integer":
            if fixed.get("maximum") == float(INT64_MAX):
                fixed["maximum"] = INT64_MAX
            if fixed.get("minimum") == float(INT64_MIN):
                fixed["minimum"] = INT64_MIN
        return fixed
    if isinstance(spec, list):
        return [_with_int64_bounds(item) for item in spec]
    return spec


def _token_check(token: str, read_token: str | None, *, write: bool) -> Callable[..., None]:
    """A dependency that checks the token again: Guard checked it before the body was
    read; this puts the header in the OpenAPI description (and holds should the app
    ever be served without Guard)."""
    expected = token.encode()
    reads_too = read_token.encode() if read_token else None

    def check(authorization: Annotated[str | None, Header()] = None) -> None:
        given = None if authorization is None else authorization.encode()
        if _authorized(given, expected):
            return
        if reads_too is not None and _authorized(given, reads_too):
            if not write:
                return
            raise HTTPException(403, _READ_ONLY, headers={"WWW-Authenticate": "Bearer"})
        raise HTTPException(401, _UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})

    return check


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        # Without the offending input: it may be huge, or nested too deep to encode.
        issues = [
            {
                "loc": [str(part) if not isinstance(part, int) else part for part in e["loc"]],
                "msg": str(e.get("msg", ""))[:1000],
                "type": str(e.get("type", "")),
            }
            for e in error.errors()
        ]
        return JSONResponse({"detail": issues}, status_code=422)

    @app.exception_handler(RunNotFoundError)
    async def _not_found(_: Request, error: RunNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(ValueError)
    @app.exception_handler(TypeError)
    async def _invalid(_: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=422)

    @app.exception_handler(RecursionError)
    async def _too_deep(_: Request, error: RecursionError) -> JSONResponse:
        return JSONResponse({"detail": "the request nests too deep"}, status_code=422)

    @app.exception_handler(sa.exc.DataError)
    async def _unstorable(_: Request, error: sa.exc.DataError) -> JSONResponse:
        # PostgreSQL refuses what SQLite takes (a NUL in an attribute, ...).
        return JSONResponse({"detail": f"the database cannot store a value: {error.orig}"}, 422)

    @app.exception_handler(sa.exc.OperationalError)
    async def _unavailable(_: Request, error: sa.exc.OperationalError) -> JSONResponse:
        return JSONResponse(
            {"detail": f"database unavailable: {error.orig}"},
            status_code=503,
            headers={"Retry-After": "1"},
        )


def _add_read_routes(app: FastAPI, store: SqlStatsStore, reader: list[Any]) -> None:
    @app.get("/health", response_model=HealthOut)
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/runs",
        dependencies=reader,
        responses={200: {"model": list[RunOut]}, **_responses(401, 503)},
    )
    def list_runs() -> JSONResponse:
        return JSONResponse([_with_str_ids(run) for run in store.list_runs()])

    @app.get("/runs/{run_id}", dependencies=reader, responses={200: {"model": RunOut}, **_READ_RUN})
    def get_run(run_id: UUID) -> JSONResponse:
        run = store.get_run(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        return JSONResponse(_with_str_ids(run))

    @app.get(
        "/runs/{run_id}/epochs",
        dependencies=reader,
        responses={200: {"model": list[EpochOut]}, **_READ},
    )
    def list_epochs(run_id: UUID) -> JSONResponse:
        return JSONResponse([_with_str_ids(epoch) for epoch in store.epochs(run_id)])

    @app.get(
        "/runs/{run_id}/metrics",
        dependencies=reader,
        responses={200: {"model": list[PayloadOut]}, **_READ},
    )
    def list_payloads(run_id: UUID) -> JSONResponse:
        return JSONResponse(
            [
                {**record, "payload": encode_payload(record["payload"])}
                for record in store.payloads(run_id)
            ]
        )

    @app.get(
        "/runs/{run_id}/keys", dependencies=reader, responses={200: {"model": list[str]}, **_READ}
    )
    def metric_keys(run_id: UUID) -> JSONResponse:
        return JSONResponse(store.metric_keys(run_id))

    @app.get(
        "/runs/{run_id}/series",
        dependencies=reader,
        responses={200: _SERIES_RESPONSE, **_READ},
    )
    def metric_series(
        run_id: UUID,
        key: Annotated[str, Query(min_length=1, max_length=MAX_KEY_LENGTH, pattern=_NO_NUL)],
    ) -> JSONResponse:
        series = store.metric_series(run_id, key)
        return JSONResponse([[step, encode_value(value)] for step, value in series])


def _add_write_routes(app: FastAPI, store: SqlStatsStore, writer: list[Any]) -> None:
    @app.post("/runs", dependencies=writer, responses={200: {"model": RunOut}, **_WRITE})
    def create_run(body: RunIn) -> JSONResponse:
        run = store.create_training_run(
            body.name, body.url, body.description, list(body.tags), run_id=body.id
        )
        return JSONResponse(_with_str_ids(run))

    @app.put(
        "/runs/{run_id}/status",
        dependencies=writer,
        responses={200: {"model": RunOut}, **_WRITE_RUN},
    )
    def update_status(run_id: UUID, body: StatusIn) -> JSONResponse:
        run = store.update_training_run_status(run_id, body.status)
        if run is None:
            raise RunNotFoundError(run_id)
        return JSONResponse(_with_str_ids(run))

    @app.post(
        "/runs/{run_id}/epochs",
        dependencies=writer,
        responses={200: {"model": EpochOut}, **_WRITE_RUN},
    )
    def create_epoch(run_id: UUID, body: EpochIn) -> JSONResponse:
        epoch = store.create_epoch(
            run_id,
            body.start_training_epoch,
            body.end_training_epoch,
            body.attributes,
            epoch_id=body.id,
        )
        return JSONResponse(_with_str_ids(epoch))

    @app.post(
        "/runs/{run_id}/metrics",
        dependencies=writer,
        responses={200: {"model": RecordedOut}, **_WRITE_RUN},
    )
    def record_metrics(
        run_id: UUID,
        body: MetricsIn,
        idempotency_key: Annotated[
            str | None,
            Header(max_length=MAX_IDEMPOTENCY_KEY_LENGTH, pattern=r"^[\x21-\x7e]+$"),
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

    @app.post("/metrics/batch", dependencies=writer, responses={200: {"model": BatchOut}, **_WRITE})
    def record_metrics_batch(body: MetricsBatchIn) -> JSONResponse:
        """Several payloads (of any runs), each stored as ``POST /runs/{run_id}/metrics``
        would, in order, each all or nothing, with a result per item (see
        ``BatchItemOut``): processing stops at an item the server failed on."""
        return JSONResponse({"results": _store_batch(store, body.items)})


def _store_batch(store: SqlStatsStore, items: list[MetricsItemIn]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for item in items:
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
        except sa.exc.OperationalError as error:
            results.append({"status": 503, "detail": f"database unavailable: {error.orig}"})
            break
        except Exception as error:  # the item was rolled back; the ones after are not tried
            logger.exception("batch item %d (run %s) failed", len(results), item.run_id)
            results.append({"status": 500, "detail": f"{type(error).__name__}: {error}"})
            break
        else:
            results.append({"status": 200, **_with_str_ids(recorded or {})})
    return results


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
