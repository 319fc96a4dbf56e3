"""Observation by observation comparison of fusedstats with RLlib 2.40: exact values (to
the bit; NaN equals NaN, -0.0 is not 0.0) and exact python types."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any


@dataclass
class Difference:
    label: str  # which observation (iteration, op, component)
    where: str  # the path inside it
    ours: Any
    rllib: Any

    def __str__(self) -> str:
        return f"{self.label} {self.where}: fusedstats {self.ours!r} | RLlib 2.40 {self.rllib!r}"


def _same_float(a: float, b: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    return struct.pack("<d", a) == struct.pack("<d", b)


def _walk(label: str, where: str, ours: Any, theirs: Any, out: list[Difference]) -> None:
    if ours[0] != theirs[0]:
        out.append(Difference(label, where, ours, theirs))
        return
    tag = ours[0]
    if tag == "dict":
        a, b = ours[1], theirs[1]
        if set(a) != set(b):
            out.append(Difference(label, where + " keys", sorted(a), sorted(b)))
            return
        for k in a:
            _walk(label, f"{where}/{k}", a[k], b[k], out)
    elif tag == "list":
        a, b = ours[1], theirs[1]
        if len(a) != len(b):
            out.append(Difference(label, where + " length", ours, theirs))
            return
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _walk(label, f"{where}[{i}]", x, y, out)
    elif tag == "stats":
        for part, x, y in zip(("peek", "previous", "values"), ours[1:], theirs[1:], strict=True):
            _walk(label, f"{where}.{part}", x, y, out)
    elif isinstance(ours[1], float) and isinstance(theirs[1], float):
        if not _same_float(ours[1], theirs[1]):
            out.append(Difference(label, where, ours, theirs))
    elif ours[1] != theirs[1] or type(ours[1]) is not type(theirs[1]):
        out.append(Difference(label, where, ours, theirs))


def same(ours: Any, theirs: Any) -> bool:
    """Whether two encoded observations are equal (to the bit, types included)."""
    out: list[Difference] = []
    _walk("", "", ours, theirs, out)
    return not out


def differences(ours: list[Any], theirs: list[Any]) -> list[Difference]:
    """Every place where the two observation lists differ."""
    out: list[Difference] = []
    if [o[0] for o in ours] != [t[0] for t in theirs]:
        return [Difference("program", "observation labels", [o[0] for o in ours], None)]
    for (label, a), (_, b) in zip(ours, theirs, strict=True):
        _walk(label, "", a, b, out)
    return out
