"""The torch-op accumulation (used on CUDA until the kernel writes records there)
against the kernel's own records and the float64 reference, on the CPU: fresh data,
the spec's nasty cases, many calls merged."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tests.health.compare import KURTOSIS_SCALE, expected
from tests.helpers import extended_mismatch, field_mismatch, property_settings

import fusedstats
from fusedstats import COLUMNS, EXTENDED_COLUMNS, EXTENDED_FIELDS, FIELDS
from fusedstats.health import arena as arena_module
from fusedstats.health.arena import Arena

FORMAT_EDGES = [448.0, 57344.0, 65504.0, 3.3895313892515355e38, 2.0**-6, 2.0**-14, 2.0**-126]


def nasty(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    if kind == "empty":
        return np.zeros(0)
    if kind == "all_nan":
        return np.full(n, np.nan)
    if kind == "inf":
        return rng.choice([np.inf, -np.inf, 1.0, np.nan], n)
    if kind == "subnormal":
        return rng.normal(0, 1, n) * 2.0**-140
    if kind == "format_edges":  # exactly at, just above and just below each limit
        edges = np.array(FORMAT_EDGES)
        near = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, np.inf)])
        return rng.choice(np.concatenate([near, -near]), n)
    if kind == "huge_offset":
        return 1e6 + rng.normal(0, 1e-3, n)
    if kind == "near_max":
        return rng.choice([1.7e308, -1.7e308, 1e308], n)
    if kind == "constant":
        return np.full(n, 2.5)
    return rng.normal(rng.choice([0.0, 1e4, -3.0]), 10.0 ** rng.integers(-3, 3), n)


KINDS = [
    "normal",
    "empty",
    "all_nan",
    "inf",
    "subnormal",
    "format_edges",
    "huge_offset",
    "near_max",
    "constant",
]


@property_settings(40)
@given(
    seed=st.integers(0, 2**31 - 1),
    kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=5),
    dtype=st.sampled_from(["float64", "float32", "bfloat16", "float16"]),
    extended=st.booleans(),
)
def test_torch_accumulation_matches_the_kernel_records(seed, kinds, dtype, extended):
    rng = np.random.default_rng(seed)
    calls = []
    for kind in kinds:
        values = nasty(rng, kind, int(rng.integers(1, 3000)))
        if dtype != "float64" and kind == "near_max":
            continue  # beyond the narrow formats: they would be inf
        with np.errstate(over="ignore"):
            calls.append(torch.from_numpy(values).to(getattr(torch, dtype)))
    if not calls:
        return
    cpu = torch.device("cpu")
    kernel, ours = Arena(cpu, extended, "records"), Arena(cpu, extended, "torch")
    rows = [(kernel.add_row(), ours.add_row()) for _ in range(2)]
    for i, x in enumerate(calls):
        for r_kernel, r_ours in rows:
            kernel.record(r_kernel, x, i == 0)
            ours.record(r_ours, x, i == 0)
    got_k, hist_k = kernel.rows([rows[1][0]])
    got_o, hist_o = ours.rows([rows[1][1]])
    names = EXTENDED_COLUMNS if extended else COLUMNS
    want, want_hist = expected(calls, extended)
    rtol = 1e-9 if dtype == "float64" else 1e-6
    kernel_row = dict(zip(names, got_k[0].tolist(), strict=True))
    torch_row = dict(zip(names, got_o[0].tolist(), strict=True))
    # Near +-1.8e308 the reference's own sums overflow to NaN; the kernel's do not.
    overflowing = {"sum", "mean", "var", "var_pop", "std", "norm", "kurtosis"}
    skip = overflowing if "near_max" in kinds and dtype == "float64" else set()
    problems = _mismatches("kernel", kernel_row, want, rtol, extended, skip)
    problems += _mismatches("torch", torch_row, kernel_row, rtol, extended, skip)
    if skip:
        problems += _honest_overflow(calls, torch_row)
    assert not problems, "\n".join(problems)
    if extended:
        np.testing.assert_array_equal(hist_k[0], want_hist)
        np.testing.assert_array_equal(hist_o[0], want_hist)


def _mismatches(
    label: str, got: dict, reference: dict, rtol: float, extended: bool, skip: set
) -> list[str]:
    problems = []
    for f in FIELDS:
        why = "" if f in skip else field_mismatch(f, got[f], reference, rtol)
        if why:
            problems.append(f"{label} {f}: {why}")
    for f in EXTENDED_FIELDS if extended else ():
        why = "" if f in skip else extended_mismatch(f, got[f], reference[f], rtol, KURTOSIS_SCALE)
        if why:
            problems.append(f"{label} {f}: {why}")
    return problems


def _honest_overflow(calls: list, torch_row: dict) -> list[str]:
    """Near +-1.8e308 the reference's sums overflow: the torch path must still give the
    mean, and no NaN where the true value is +inf."""
    problems = []
    flat = torch.cat([x.double().reshape(-1) for x in calls])
    flat = flat[torch.isfinite(flat)]
    exact_mean = float((flat / flat.numel()).sum())
    if not math.isclose(torch_row["mean"], exact_mean, rel_tol=1e-9):
        problems.append(f"torch mean {torch_row['mean']!r}, exact {exact_mean!r}")
    for f in ("var", "var_pop", "std", "norm"):
        if f in ("var", "std") and flat.numel() < 2:
            continue  # NaN by definition
        if not torch_row[f] >= 0:  # not NaN
            problems.append(f"torch {f}: {torch_row[f]!r}")
    return problems


def test_rows_grow_and_keep_what_they_hold():
    cpu = torch.device("cpu")
    for backend in ("records", "torch"):
        arena = Arena(cpu, False, backend)
        rows = [arena.add_row() for _ in range(arena_module.INITIAL_ROWS * 3)]
        for r in rows:
            arena.record(r, torch.full((r + 1,), float(r)), True)
        got, _ = arena.rows(rows)
        numel = COLUMNS.index("numel")
        mean = COLUMNS.index("mean")
        assert got[:, numel].tolist() == [r + 1.0 for r in rows], backend
        assert got[:, mean].tolist() == [float(r) for r in rows], backend


def test_watch_on_the_torch_path_matches_the_kernel_path(monkeypatch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    xs = [torch.randn(5, 4) for _ in range(3)]

    def run():
        with fusedstats.watch(model, activation_grads=True, extended=True, dormant_tau=0.2) as h:
            for x in xs:
                model(x).sum().backward()
            return h.report()

    kernel = run()
    monkeypatch.setattr(arena_module, "backend_for", lambda device: "torch")
    torch_path = run()
    assert kernel.scalars.keys() == torch_path.scalars.keys()
    for key, value in kernel.scalars.items():
        other = torch_path.scalars[key]
        assert (math.isnan(value) and math.isnan(other)) or other == pytest.approx(
            value, rel=1e-9, abs=1e-12
        ), key
    for key, hist in kernel.histograms.items():
        np.testing.assert_array_equal(hist, torch_path.histograms[key])


def test_backend_for_devices():
    assert arena_module.backend_for(torch.device("cpu")) == "records"
    with pytest.raises(ValueError, match="not supported"):
        arena_module.backend_for(torch.device("meta"))
    with pytest.raises(ValueError, match="backend"):
        Arena(torch.device("cpu"), False, "numpy")
