"""Exact comparison of merged results (NaN equals NaN; ints must stay ints), and the
single-process references the distributed results are checked against."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fusedstats import MetricsLogger, Stats


def difference(got: Any, want: Any, where: str = "", rel: float = 0.0) -> str | None:
    """Where ``got`` and ``want`` differ (None: equal). Floats must be equal (within
    ``rel`` when given), NaN equals NaN, and an int must come out where an int went in."""
    if isinstance(want, Mapping):
        if not isinstance(got, Mapping) or set(got) != set(want):
            return f"{where}: got {got!r}, want {want!r}"
        for k in want:
            found = difference(got[k], want[k], f"{where}/{k}", rel)
            if found:
                return found
        return None
    if isinstance(want, list | tuple):
        if not isinstance(got, list | tuple) or len(got) != len(want):
            return f"{where}: got {got!r}, want {want!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            found = difference(g, w, f"{where}[{i}]", rel)
            if found:
                return found
        return None
    if type(got) is not type(want):
        return f"{where}: got {got!r} ({type(got).__name__}), want {want!r} ({type(want).__name__})"
    if isinstance(want, float):
        if math.isnan(want) and math.isnan(got):
            return None
        if got == want or (rel and math.isclose(got, want, rel_tol=rel)):
            return None
        return f"{where}: got {got!r}, want {want!r}"
    return None if got == want else f"{where}: got {got!r}, want {want!r}"


def assert_same(got: Any, want: Any, where: str = "", rel: float = 0.0) -> None:
    found = difference(got, want, where, rel)
    assert found is None, found


def leaves(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.update(leaves(v, (*prefix, k)))
        else:
            out[(*prefix, k)] = v
    return out


def is_lifetime_sum(s: Stats) -> bool:
    return s.reduce_method == "sum" and s.window is None and not s.clear_on_reduce


def nan_sum(xs: Sequence[Any]) -> Any:
    kept = [x for x in xs if not (isinstance(x, float) and math.isnan(x))]
    return sum(kept) if kept else math.nan


class Expected:
    """What a merge of ranks' ``reduce()`` results must give, taken at once (a reduce()
    result shares Stats with its logger, which later rounds change)."""

    def __init__(self, results: Sequence[Mapping[str, Any]]) -> None:
        merged = MetricsLogger()
        merged.merge_and_log_n_dicts(results)
        self.merged = {p: _snapshot(s) for p, s in leaves(merged.stats).items()}
        per_rank = [leaves(r) for r in results]
        self.lifetime = {
            p: nan_sum([r[p].peek() for r in per_rank if p in r])
            for p, s in leaves(merged.stats).items()
            if is_lifetime_sum(s)
        }


def _snapshot(s: Stats) -> dict[str, Any]:
    # A key only one rank has keeps that rank's tensors in a single-process merge; a
    # synced result holds their values on the host (the merge happened there).
    values = [v.item() if hasattr(v, "item") and hasattr(v, "device") else v for v in s.values]
    return {"values": values, "peek": s.peek(), "previous": s.peek(previous=True)}


def check_against(got_tree: Mapping[str, Any], want: Expected) -> None:
    """Every key of the merge is in ``got_tree`` with the same values, peek and previous
    result; lifetime sums peek the sum of the ranks' totals."""
    got = leaves(got_tree)
    assert set(got) == set(want.merged), (sorted(got), sorted(want.merged))
    for path, expected in want.merged.items():
        stats = got[path]
        assert isinstance(stats, Stats), path
        if path in want.lifetime:
            assert_same(stats.peek(), want.lifetime[path], f"{path} (lifetime sum)", rel=1e-12)
            continue
        assert_same(stats.values, expected["values"], f"{path} values")
        assert_same(stats.peek(), expected["peek"], f"{path} peek")
        if stats.reduce_method not in (None, "percentiles"):  # lists' history is not sent
            assert_same(stats.peek(previous=True), expected["previous"], f"{path} previous")
