"""The sink protocol, and the one way every sink turns a payload into floats and JSON.

The reporter only sends python floats, but a sink must survive whatever reaches it:
values that ``float()`` accepts (ints, bools, numpy scalars, 1-element arrays and
tensors) become floats; anything else (strings, None, lists, objects) is dropped and
counted by the sink that dropped it. Keys that are not strings are written as ``str(key)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

#: How a non-finite float is named in a spool record, so that replay restores it.
NONFINITE_NAMES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


@runtime_checkable
class Sink(Protocol):
    """Where finished payloads go (W&B, a JSONL file, the console, ...).

    ``write`` may raise or block: :class:`~fusedstats.sinks.SinkRunner` calls it off the
    training thread, with a timeout and retries, and counts what goes wrong.
    """

    name: str

    def write(self, payload: Mapping[str, float], *, step: int, epoch: int) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def to_float(value: Any) -> float | None:
    """``float(value)`` for numbers and 1-element arrays/tensors, else None.

    Example:
        >>> to_float(3), to_float(True), to_float("3"), to_float(None), to_float([1.0])
        (3.0, 1.0, None, None, None)
    """
    if isinstance(value, float):
        return value
    if value is None or isinstance(value, (str, bytes, bytearray, list, tuple, dict)):
        return None  # float("3") would succeed: a string is not a number here
    try:
        return float(value)
    except Exception:  # numpy raises TypeError or ValueError, other objects anything
        return None


def float_payload(payload: Mapping[Any, Any]) -> tuple[dict[str, float], list[str]]:
    """The payload's numeric values as floats, and the keys that were dropped.

    Example:
        >>> float_payload({"a": 1, "b": "text", 3: 2.5})
        ({'a': 1.0, '3': 2.5}, ['b'])
    """
    floats: dict[str, float] = {}
    dropped: list[str] = []
    for key, value in payload.items():
        name = key if isinstance(key, str) else str(key)
        number = to_float(value)
        if number is None:
            dropped.append(name)
        else:
            floats[name] = number
    return floats, dropped


def encode_record(
    floats: Mapping[str, float], *, step: int, epoch: int, keep_nonfinite: bool = False
) -> tuple[str, list[str]]:
    """One strict-JSON line (no newline) and the keys whose values were NaN or Inf.

    NaN and Inf are written as ``null``; with ``keep_nonfinite`` (the spool) their
    names also go to a ``"nonfinite"`` field so that :func:`decode_record` restores them.

    Example:
        >>> encode_record({"a": 1.5, "b": float("inf")}, step=10, epoch=1)
        ('{"step":10,"epoch":1,"payload":{"a":1.5,"b":null}}', ['b'])
    """
    clean: dict[str, float | None] = {}
    nonfinite: dict[str, str] = {}
    for key, value in floats.items():
        if math.isfinite(value):
            clean[key] = value
        else:
            clean[key] = None
            nonfinite[key] = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    record: dict[str, Any] = {"step": step, "epoch": epoch, "payload": clean}
    if keep_nonfinite and nonfinite:
        record["nonfinite"] = nonfinite
    return json.dumps(record, allow_nan=False, separators=(",", ":")), list(nonfinite)


def decode_record(line: str) -> tuple[dict[str, float], int, int]:
    """(payload, step, epoch) of a line written by :func:`encode_record`.

    A ``null`` value becomes the non-finite float the record names, else NaN.

    Example:
        >>> decode_record('{"step":3,"epoch":0,"payload":{"a":null},"nonfinite":{"a":"-inf"}}')
        ({'a': -inf}, 3, 0)
    """
    record = json.loads(line)
    names: Mapping[str, str] = record.get("nonfinite") or {}
    payload = {
        key: NONFINITE_NAMES.get(names.get(key, "nan"), math.nan) if value is None else float(value)
        for key, value in record["payload"].items()
    }
    return payload, int(record["step"]), int(record["epoch"])
