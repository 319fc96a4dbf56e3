"""How payload values, attributes and times look on the wire and in the database.

Strict JSON has no NaN or Infinity, and SQLite stores a NaN as NULL. So, everywhere:

- in the database a NaN is stored as NULL (in PostgreSQL too, so both read the same),
  and ``+inf`` / ``-inf`` as themselves;
- in JSON a non-finite value is the string ``"nan"``, ``"inf"`` or ``"-inf"``.

Epoch attributes and run tags are JSON documents: whatever is not JSON is made so
(:func:`jsonable`), which loses the difference between ``float("nan")`` and ``"nan"``
there (not in payloads). Times are seconds since the epoch in the database and
ISO 8601 strings (UTC) in results.
"""

from __future__ import annotations

import datetime
import math
import operator
from collections.abc import Mapping
from typing import Any
from uuid import UUID

#: The JSON spelling of each non-finite float.
NONFINITE_TEXT = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
#: Longest metric key accepted (characters); also the database column's size.
MAX_KEY_LENGTH = 512
#: Longest idempotency key accepted (characters).
MAX_IDEMPOTENCY_KEY_LENGTH = 200
#: Steps and epochs are stored as 64-bit integers.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Longest run name, URL, description or tag (characters), and most tags of a run.
MAX_TEXT_LENGTH = 10_000
MAX_TAGS = 1_000
#: Most keys one payload may have.
MAX_PAYLOAD_KEYS = 100_000
#: Most payloads in one ``/metrics/batch`` request.
MAX_BATCH_ITEMS = 1_000
#: Deepest nesting of epoch attributes (a value inside ``MAX_JSON_DEPTH`` mappings or
#: lists): deeper documents would exhaust the recursion limit of whoever reads them.
MAX_JSON_DEPTH = 64


def encode_value(value: float) -> float | str:
    """A float as strict JSON allows it: non-finite ones as ``"nan"``, ``"inf"``, ``"-inf"``.

    Example:
        >>> encode_value(1.5), encode_value(float("nan")), encode_value(float("-inf"))
        (1.5, 'nan', '-inf')
    """
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def decode_value(value: float | int | str | None) -> float:
    """The float :func:`encode_value` (or a database NULL, which is NaN) stands for.

    Example:
        >>> decode_value("inf"), decode_value(None), decode_value(2)
        (inf, nan, 2.0)
    """
    if value is None:
        return math.nan
    if isinstance(value, str):
        try:
            return NONFINITE_TEXT[value]
        except KeyError:
            raise ValueError(
                f"not a number or one of {sorted(NONFINITE_TEXT)}: {value!r}"
            ) from None
    return float(value)


def encode_payload(payload: Mapping[str, float]) -> dict[str, float | str]:
    """:func:`encode_value` of every value.

    Example:
        >>> encode_payload({"loss": 0.5, "grad/norm": float("inf")})
        {'loss': 0.5, 'grad/norm': 'inf'}
    """
    # x - x is 0.0 for a finite float only: one subtraction instead of a call per value.
    return {
        key: value if value - value == 0.0 else encode_value(value)
        for key, value in payload.items()
    }


def decode_payload(payload: Mapping[str, float | int | str | None]) -> dict[str, float]:
    """:func:`decode_value` of every value.

    Example:
        >>> decode_payload({"loss": 0.5, "grad/norm": "nan"})
        {'loss': 0.5, 'grad/norm': nan}
    """
    return {key: decode_value(value) for key, value in payload.items()}


def to_db(value: float) -> float | None:
    """A float as the database stores it: NaN as NULL (None).

    Example:
        >>> to_db(float("nan")) is None, to_db(float("inf"))
        (True, inf)
    """
    return None if math.isnan(value) else value


def check_payload(payload: Mapping[Any, Any]) -> dict[str, float]:
    """``payload`` as ``{str: float}``; raises naming the first key or value at fault.

    Keys must be non-empty strings of at most :data:`MAX_KEY_LENGTH` characters without
    NUL (PostgreSQL cannot store it); values ints, floats or anything ``float()`` takes
    except strings and bools.

    Example:
        >>> check_payload({"loss": 1})
        {'loss': 1.0}
        >>> check_payload({"loss": "low"})
        Traceback (most recent call last):
        ...
        TypeError: payload['loss']: a number is needed, got 'low'
    """
    out: dict[str, float] = {}
    for key, value in payload.items():
        # The common case in as few operations as possible (1,500 keys a payload).
        if (
            type(value) is float
            and type(key) is str
            and 0 < len(key) <= MAX_KEY_LENGTH
            and "\x00" not in key
        ):
            out[key] = value
            continue
        out[_checked_key(key)] = _number(key, value)
    return out


def _checked_key(key: Any) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
        raise ValueError(
            f"payload key {key!r}: a non-empty string of at most {MAX_KEY_LENGTH} "
            "characters, without NUL, is needed"
        )
    return str(key)


def _number(key: str, value: Any) -> float:
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise TypeError(f"payload[{key!r}]: a number is needed, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"payload[{key!r}]: a number is needed, got {value!r}") from None


def check_int64(name: str, value: Any) -> int:
    """``value`` as an int that fits the database's 64-bit column; raises naming ``name``.

    Example:
        >>> check_int64("step", 7)
        7
        >>> check_int64("step", 2**64)
        Traceback (most recent call last):
        ...
        ValueError: step: 18446744073709551616 does not fit in 64 bits
    """
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = operator.index(value)  # numpy integers
        except TypeError:
            raise TypeError(f"{name}: an int is needed, got {value!r}") from None
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{name}: {value} does not fit in 64 bits")
    return int(value)


def check_uuid(name: str, value: Any) -> UUID:
    """``value`` as a UUID (a UUID or its string); raises naming ``name``.

    Example:
        >>> check_uuid("run_id", "12345678-1234-5678-1234-567812345678")
        UUID('12345678-1234-5678-1234-567812345678')
    """
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise ValueError(f"{name}: a UUID is needed, got {value!r}") from None


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep mappings and lists/tuples nest in ``value`` (a scalar is 0), counted
    without recursion and only up to ``limit + 1`` (deeper is not looked at).

    Example:
        >>> json_depth(1), json_depth({"a": [1, {"b": 2}]}), json_depth([[[[]]]], limit=2)
        (0, 3, 3)
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if depth > limit:
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def check_depth(name: str, value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Raises ValueError naming ``name`` when ``value`` nests deeper than ``limit``.

    Example:
        >>> nested = {}
        >>> for _ in range(100): nested = {"a": nested}
        >>> check_depth("attributes", nested)
        Traceback (most recent call last):
        ...
        ValueError: attributes: nested deeper than 64 levels of mappings and lists
    """
    if json_depth(value, limit) > limit:
        raise ValueError(f"{name}: nested deeper than {limit} levels of mappings and lists")


def fit_text(value: str, limit: int = MAX_TEXT_LENGTH) -> str:
    """``value`` cut to at most ``limit`` characters, with a marker saying how much was
    cut when it was longer.

    Example:
        >>> fit_text("x" * 50, limit=40)
        'xxxxxx…[44 characters cut by fusedstats]'
        >>> len(fit_text("x" * 50, limit=40)), fit_text("short", limit=40)
        (40, 'short')
    """
    if len(value) <= limit:
        return value
    kept = limit
    while True:  # the marker's own length depends on how much it says was cut
        marker = f"…[{len(value) - kept} characters cut by fusedstats]"
        if kept + len(marker) <= limit:
            return value[:kept] + marker
        kept = max(0, limit - len(marker))
        if kept == 0:
            return marker[:limit]


def jsonable(value: Any) -> Any:
    """``value`` as a strict-JSON document: mappings (keys made strings), lists, strings,
    ints, bools, None and finite floats are kept; a non-finite float becomes its
    :func:`encode_value` string; numpy scalars become numbers; anything else ``str()``.

    Example:
        >>> jsonable({"lr": 0.1, 1: [float("nan"), None, (2, "x")], "obj": object})
        {'lr': 0.1, '1': ['nan', None, [2, 'x']], 'obj': "<class 'object'>"}
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return encode_value(value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    item = getattr(value, "item", None)  # numpy scalars and 0-d arrays
    if callable(item):
        try:
            scalar = item()
        except Exception:  # not a scalar after all
            return str(value)
        if isinstance(scalar, (bool, int, float, str)):
            return jsonable(scalar)
    return str(value)


def iso_time(seconds: float) -> str:
    """Seconds since the epoch as an ISO 8601 string in UTC.

    Example:
        >>> iso_time(0.0)
        '1970-01-01T00:00:00.000000+00:00'
    """
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="microseconds")
