"""The plain way to aggregate rollout infos, which fusedstats.rollout must agree with:
walk every info dict in Python, keep every value in a ``defaultdict(list)``, and reduce
with numpy at the end. It states the leaf rules of docs/reporter.md ("Rollout infos")
as directly as possible; it is slow on purpose."""

from __future__ import annotations

import math
import numbers
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

NUMERIC_KINDS = "biuf"


MAX_DEPTH = 512  # dict levels an info may have (RolloutStats refuses deeper ones)


def walk(d: Mapping[Any, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, leaf) of every leaf, paths joined by "/" (only mappings nest)."""
    for k, v in d.items():
        path = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            yield from walk(v, path)
        else:
            yield path, v


def problem(info: Mapping[Any, Any]) -> str | None:
    """Why RolloutStats must refuse ``info`` as a whole, or None: a mapping that
    contains itself ("cycle"), or one nested deeper than MAX_DEPTH ("too deep"),
    whichever a depth-first walk in key order meets first. (Iterative: a cyclic or
    deep info must not blow Python's own stack here either.)"""
    stack: list[tuple[Mapping[Any, Any], Iterator[Any]]] = [(info, iter(info.values()))]
    while stack:
        _, values = stack[-1]
        v = next(values, _END)
        if v is _END:
            stack.pop()
            continue
        if isinstance(v, Mapping):
            if len(stack) >= MAX_DEPTH:
                return "too deep"
            if any(v is m for m, _ in stack):
                return "cycle"
            stack.append((v, iter(v.values())))
    return None


_END = object()


def leaf_values(v: Any) -> list[float] | None:
    """The numbers a leaf contributes, or None when it is skipped."""
    if isinstance(v, (numbers.Real, np.bool_)):  # bool, int, float, numpy, Fraction
        try:
            return [float(v)]
        except Exception:  # an int beyond float range, np.timedelta64, a broken __float__
            return None
    if isinstance(v, torch.Tensor):
        if v.is_complex() or v.layout != torch.strided:
            return None
        try:
            return v.detach().to(torch.float64).reshape(-1).cpu().tolist()
        except (RuntimeError, NotImplementedError):  # a meta tensor has no values
            return None
    if isinstance(v, (list, tuple)):
        try:
            v = np.asarray(v)
        except (ValueError, OverflowError):  # ragged nesting, ints numpy cannot hold
            return None
    if isinstance(v, np.ndarray) and v.dtype.kind in NUMERIC_KINDS:
        return v.astype(np.float64).reshape(-1).tolist()
    return None


class Reference:
    """defaultdict(list) of every value; numpy reductions on demand."""

    def __init__(self) -> None:
        self.values: defaultdict[str, list[float]] = defaultdict(list)
        self.skipped: dict[str, int] = {}
        self.rejected: dict[str, int] = {}

    def add(self, infos: Sequence[Any] | Mapping[Any, Any]) -> None:
        skipped_now = set()
        for info in [infos] if isinstance(infos, Mapping) else infos:
            if not isinstance(info, Mapping):
                continue
            why = problem(info)
            if why is not None:
                self.rejected[why] = self.rejected.get(why, 0) + 1
                continue
            for path, leaf in walk(info):
                values = leaf_values(leaf)
                if values is None:
                    skipped_now.add(path)
                else:
                    self.values[path].extend(values)
        for path in skipped_now:
            self.skipped[path] = self.skipped.get(path, 0) + 1

    def keys(self) -> set[str]:
        return {k for k, v in self.values.items() if v}

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        with np.errstate(invalid="ignore"):  # inf - inf in np.std is NaN, as intended
            for k in self.keys():
                a = np.array(self.values[k])
                out[k] = {
                    "count": float(a.size),
                    "sum": float(np.sum(a)),
                    "mean": float(np.mean(a)),
                    "std": float(np.std(a)),
                    "min": float(np.min(a)),
                    "max": float(np.max(a)),
                }
        return out


RTOL = 1e-12
# A std below this has deviations whose squares are subnormal (< 2**-1022).
SUBNORMAL_SQUARES = 1.5e-154


def close(got: float, want: float, scale: float) -> bool:
    """Equal to 1e-12 relative, where sums and means that cancel near zero are judged
    against ``scale`` (the size of the values that went in); NaN meets NaN only."""
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    if math.isinf(want) or math.isinf(got):
        return got == want
    return math.isclose(got, want, rel_tol=RTOL, abs_tol=RTOL * scale)


def mismatches(stats: Any, ref: Reference) -> list[str]:
    """Every difference between a RolloutStats and the reference, as readable lines."""
    errors = []
    if set(stats.keys()) != ref.keys():
        errors.append(f"keys: got {sorted(stats.keys())}, want {sorted(ref.keys())}")
    if stats.skipped != ref.skipped:
        errors.append(f"skipped: got {stats.skipped}, want {ref.skipped}")
    if stats.rejected != ref.rejected:
        errors.append(f"rejected: got {stats.rejected}, want {ref.rejected}")
    got_summary = stats.summary()
    got_means = stats.means()
    for k, want in ref.summary().items():
        values = np.array(ref.values[k])
        finite = values[np.isfinite(values)]
        size = float(np.max(np.abs(finite))) if finite.size else 0.0
        scales = {"count": 0.0, "sum": float(np.sum(np.abs(finite))), "mean": size}
        scales |= {"std": size, "min": 0.0, "max": 0.0}
        got = got_summary.get(k, {})
        for stat, w in want.items():
            g = got.get(stat, math.nan)
            if stat == "std" and math.isfinite(w) and 0.0 < w < SUBNORMAL_SQUARES:
                # Deviations whose squares are subnormal lose bits in any float64 M2
                # (numpy's too): each square is off by up to 2**-1075, the variance by
                # up to n * 2**-1075 / n, the std by that over 2 std.
                slack = values.size * 5e-324 / (2.0 * w)
                if not (isinstance(g, float) and abs(g - w) <= slack + RTOL * w):
                    errors.append(f"{k}.{stat}: got {g!r}, want {w!r}")
                continue
            if not isinstance(g, float) or not close(g, w, scales[stat]):
                errors.append(f"{k}.{stat}: got {g!r}, want {w!r}")
        if not close(got_means.get(k, math.nan), want["mean"], scales["mean"]):
            errors.append(f"means()[{k}]: got {got_means.get(k)!r}, want {want['mean']!r}")
        arr = stats.get(k)
        if not (isinstance(arr, np.ndarray) and arr.dtype == np.float64 and arr.ndim == 1):
            errors.append(f"get({k}): not a float64 1-D array: {arr!r}")
        elif not np.array_equal(arr, values, equal_nan=True):
            errors.append(f"get({k}): got {arr.tolist()}, want {values.tolist()}")
    return errors


def check(*batches: Any) -> Any:
    """Adds every batch to a fresh RolloutStats and to the reference; they must agree.
    Returns the RolloutStats."""
    from fusedstats.rollout import RolloutStats

    stats, ref = RolloutStats(), Reference()
    for infos in batches:
        stats.add(infos)
        ref.add(infos)
    errors = mismatches(stats, ref)
    assert not errors, "\n".join(errors)
    return stats
