"""Comparing logger results: nested dicts and lists of numbers, NaN equal to NaN."""

from __future__ import annotations

import math
from typing import Any

RTOL = 1e-9
# Lifetime sums subtract earlier totals, so a result near zero carries the rounding of
# the larger totals; the property tests keep every value below 1e3 in magnitude.
ATOL = 1e-9


def as_number(x: Any) -> Any:
    """A torch/numpy scalar as a python number; anything else unchanged."""
    if hasattr(x, "item") and getattr(x, "ndim", 0) == 0:
        return x.item()
    return x


def mismatch(got: Any, want: Any, *, int_types: bool = False, path: str = "") -> str | None:
    """Where ``got`` differs from ``want`` (None: they agree).

    Numbers agree within RTOL/ATOL, NaN agrees with NaN. With ``int_types``, a python
    int must come out where the model gives a python int, and a float where it gives a
    float.
    """
    where = path or "<root>"
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{where}: got {got!r}, want a dict {want!r}"
        if set(got) != set(want):
            return f"{where}: keys {sorted(map(str, got))} != {sorted(map(str, want))}"
        for k in want:
            found = mismatch(got[k], want[k], int_types=int_types, path=f"{path}/{k}")
            if found:
                return found
        return None
    if isinstance(want, list):
        got = list(got) if isinstance(got, list | tuple) else got
        if not isinstance(got, list) or len(got) != len(want):
            return f"{where}: got {got!r}, want {want!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            found = mismatch(g, w, int_types=int_types, path=f"{path}[{i}]")
            if found:
                return found
        return None
    got = as_number(got)
    if not isinstance(got, int | float) or isinstance(got, bool):
        return f"{where}: got {got!r} ({type(got).__name__}), want {want!r}"
    if int_types and (type(got) is int) != (type(want) is int):
        return f"{where}: got {got!r} ({type(got).__name__}), want {want!r} ({type(want).__name__})"
    if math.isnan(want) or math.isnan(got):
        return None if math.isnan(want) and math.isnan(got) else f"{where}: {got!r} != {want!r}"
    if math.isclose(got, want, rel_tol=RTOL, abs_tol=ATOL):
        return None
    return f"{where}: got {got!r}, want {want!r}"


def assert_same(got: Any, want: Any, *, int_types: bool = False) -> None:
    found = mismatch(got, want, int_types=int_types)
    assert found is None, found
