"""Shared test helpers: compare kernel buffers with the pure-torch reference, and make data.

Tolerances follow docs/tensor_stats.md (Numerics): relative 1e-9 for float64 inputs and 1e-6 for
narrower ones; counts, min, max and abs_max are exact; NaN must meet NaN. Sums and means
cancel near zero, so their tolerance is relative to sum|x| (l1) instead of to themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import fusedstats
from fusedstats import COLUMNS, _core
from fusedstats.kernels import reference

RTOL_FLOAT64 = 1e-9
RTOL_NARROW = 1e-6
EXACT_FIELDS = frozenset(
    {"numel", "n_nan", "n_inf", "n_zero", "n_finite", "min", "max", "abs_max", "n_dormant_rows"}
)
# Variance of (nearly) constant data is a few rounding errors of the mean, squared; it
# has no meaningful relative error, so var/std also get an absolute floor this far
# below abs_max. It is ~1000x under rtol*var at the spec's worst conditioning
# (mean 1e4, std 1e-2), so it never hides a real error there.
VAR_FLOOR_REL = 1e-12

# One tile of the CPU kernel, one chunk of the CPU and of the CUDA kernels, as built.
_INFO = fusedstats.build_info()
TILE = int(_INFO["tile_elems"])
CPU_CHUNK = int(_INFO["chunk_elems"])
CUDA_CHUNK = int(_INFO.get("cuda_chunk_elems", 1 << 15))


def property_settings(max_examples: int) -> settings:
    """Hypothesis settings for the kernel property tests: no deadline (the first call
    of a kind pays for imports and thread start-up), fresh data every run."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---- comparing with the reference ------------------------------------------------


@contextmanager
def kernel_settings() -> Iterator[None]:
    """Restores the CPU core's thread count and SIMD level whatever the test sets."""
    threads, level = fusedstats.get_num_threads(), _core.simd_level()
    try:
        yield
    finally:
        fusedstats.set_num_threads(threads)
        assert _core.set_simd_level(level)


def dtype_name(x: Any) -> str:
    """The dtype of a torch tensor or numpy array as a plain name: "float32", "bfloat16"..."""
    if isinstance(x, np.ndarray):
        return x.dtype.name
    return str(x.dtype).removeprefix("torch.")


def rtol_for(x: Any) -> float:
    return RTOL_FLOAT64 if dtype_name(x) == "float64" else RTOL_NARROW


def to_numpy(buffer: Any) -> np.ndarray:
    """A kernel or reference buffer (torch on any device, or numpy) as a numpy array."""
    if isinstance(buffer, np.ndarray):
        return buffer
    return buffer.detach().cpu().numpy()


def reference_buffer(
    tensors: Sequence[Any], row_lens: Sequence[int] | None = None, dormant_threshold: float = 0.0
) -> np.ndarray:
    """The reference buffer as numpy. Byte-swapped numpy arrays are swapped to native order
    first: torch.from_numpy rejects them (see test_reference.py), the kernel does not."""
    native = [
        x.astype(x.dtype.newbyteorder("=")) if isinstance(x, np.ndarray) else x for x in tensors
    ]
    return to_numpy(reference.stats_buffer(native, row_lens, dormant_threshold))


def field_tolerance(field: str, expected: Mapping[str, float], rtol: float) -> float:
    """Allowed |got - expected| for one field, given the expected row (field -> value)."""
    value = expected[field]
    if field in EXACT_FIELDS:
        return 0.0
    if field == "sum":
        return rtol * expected["l1"]
    if field == "mean":
        return rtol * expected["l1"] / max(expected["n_finite"], 1.0)
    abs_max = expected["abs_max"]
    floor = (VAR_FLOOR_REL * abs_max) ** 2 if math.isfinite(abs_max) else 0.0
    if field in ("var", "var_pop"):
        return rtol * abs(value) + floor
    if field == "std":
        return rtol * abs(value) + math.sqrt(floor)
    return rtol * abs(value)  # l1, norm: sums of non-negative terms, never cancel


def field_mismatch(field: str, got: float, expected: Mapping[str, float], rtol: float) -> str:
    """Why ``got`` is not within tolerance of ``expected[field]``; empty when it is."""
    want = expected[field]
    if math.isnan(want) or math.isnan(got):
        ok = math.isnan(want) and math.isnan(got)
        return "" if ok else f"got {got!r}, expected {want!r}"
    if math.isinf(want) or math.isinf(got):
        return "" if got == want else f"got {got!r}, expected {want!r}"
    tol = field_tolerance(field, expected, rtol)
    diff = abs(got - want)
    if diff <= tol:
        return ""
    return f"got {got!r}, expected {want!r} (|diff| {diff:.3g} > tolerance {tol:.3g})"


def assert_rows_close(
    got: Any, expected: Any, rtols: Sequence[float], labels: Sequence[str]
) -> None:
    """Compares two [n + 1, NUM_COLUMNS] buffers row by row (``rtols`` and ``labels`` per row)
    and fails with every mismatch, naming row and column."""
    got, expected = to_numpy(got), to_numpy(expected)
    assert got.shape == expected.shape, f"buffer shape {got.shape}, expected {expected.shape}"
    assert got.dtype == np.float64, f"buffer dtype {got.dtype}, expected float64"
    problems = []
    for r, (rtol, label) in enumerate(zip(rtols, labels, strict=True)):
        want = dict(zip(COLUMNS, expected[r].tolist(), strict=True))
        for c, field in enumerate(COLUMNS):
            why = field_mismatch(field, float(got[r, c]), want, rtol)
            if why:
                problems.append(f"row {r} ({label}), column {field!r}: {why}")
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems[:20])


def assert_matches_reference(
    buffer: Any,
    tensors: Sequence[Any],
    names: Sequence[str] | None = None,
    row_lens: Sequence[int] | None = None,
    dormant_threshold: float = 0.0,
) -> None:
    """Kernel buffer vs reference buffer; the global (last) row gets the loosest rtol."""
    names = [str(i) for i in range(len(tensors))] if names is None else list(names)
    rtols = [rtol_for(x) for x in tensors]
    labels = [f"tensor {n!r}, {dtype_name(x)}" for n, x in zip(names, tensors, strict=True)]
    rtols.append(max(rtols, default=RTOL_FLOAT64))
    labels.append("global")
    expected = reference_buffer(tensors, row_lens, dormant_threshold)
    assert_rows_close(buffer, expected, rtols, labels)


def extended_mismatch(
    field: str, got: float, want: float, rtol: float, kurtosis_scale: float = 4.0
) -> str:
    """Why an extended column ``got`` is not within tolerance of ``want``; empty when it is.

    Format fractions and the smallest nonzero |x| are exact; the dynamic range is a
    difference of two correctly rounded log2; kurtosis is a ratio of moments, each
    within ``rtol`` (float64 sums of the widened data): m4/m2² carries m2's relative
    error twice and m4's once, so ``kurtosis_scale * rtol * (|kurtosis| + 3)``
    (statistics merged over many calls, as the watch does, take a larger scale)."""
    if math.isnan(want) or math.isnan(got):
        return "" if math.isnan(want) and math.isnan(got) else f"got {got!r}, expected {want!r}"
    if math.isinf(want) or math.isinf(got):
        return "" if got == want else f"got {got!r}, expected {want!r}"
    if field == "kurtosis":
        tol = kurtosis_scale * rtol * (abs(want) + 3.0)
    elif field == "dynamic_range_log2":
        tol = 1e-12 * max(1.0, abs(want))
    else:
        tol = 0.0
    diff = abs(got - want)
    return "" if diff <= tol else f"got {got!r}, expected {want!r} (|diff| {diff:.3g} > {tol:.3g})"


def assert_extended_close(
    rows: Any,
    hist: Any,
    tensors: Sequence[Any],
    row_lens: Sequence[int] | None = None,
    dormant_threshold: float = 0.0,
) -> None:
    """An extended buffer and its exponent histogram vs the reference: the base columns
    as assert_matches_reference, the extended ones by extended_mismatch, histograms exact."""
    from fusedstats.kernels.columns import EXTENDED_COLUMNS, EXTENDED_FIELDS

    rows, hist = to_numpy(rows), to_numpy(hist)
    n = len(tensors)
    assert rows.shape == (n + 1, len(EXTENDED_COLUMNS)), f"rows shape {rows.shape}"
    assert_matches_reference(rows[:, : len(COLUMNS)], tensors, None, row_lens, dormant_threshold)
    want_rows, want_hist = reference.stats_buffers(
        [
            torch.from_numpy(x.astype(x.dtype.newbyteorder("=")))
            if isinstance(x, np.ndarray)
            else x
            for x in tensors
        ],
        row_lens,
        dormant_threshold,
        extended=True,
    )
    want_rows, want_hist = to_numpy(want_rows), to_numpy(want_hist)
    rtols = [rtol_for(x) for x in tensors]
    rtols.append(max(rtols, default=RTOL_FLOAT64))
    problems = []
    for r in range(n + 1):
        for field in EXTENDED_FIELDS:
            c = EXTENDED_COLUMNS.index(field)
            why = extended_mismatch(field, float(rows[r, c]), float(want_rows[r, c]), rtols[r])
            if why:
                problems.append(f"row {r}, column {field!r}: {why}")
        differ = np.flatnonzero(hist[r] != want_hist[r])
        if differ.size:
            bins = differ[:8]
            problems.append(
                f"row {r}: histogram bins {bins.tolist()} are {hist[r][bins].tolist()}, "
                f"expected {want_hist[r][bins].tolist()}"
            )
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems[:20])


def assert_bitwise_equal(a: Any, b: Any, what: str = "buffers") -> None:
    """Bit-identical (NaN payloads and signed zeros included)."""
    a = np.ascontiguousarray(np.atleast_2d(to_numpy(a)))
    b = np.ascontiguousarray(np.atleast_2d(to_numpy(b)))
    assert a.shape == b.shape, f"{what}: shapes {a.shape} and {b.shape}"
    differ = np.argwhere(a.view(np.int64) != b.view(np.int64))
    assert differ.size == 0, f"{what} differ at (row, column) {differ[:10].tolist()}: " + ", ".join(
        f"{COLUMNS[c]}: {a[r, c]!r} vs {b[r, c]!r}" for r, c in differ[:5].tolist()
    )


# ---- data ------------------------------------------------------------------------

TORCH_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
NUMPY_DTYPES = ("float32", "float64", "float16")  # numpy has no bfloat16 without ml_dtypes
TORCH_LAYOUTS = ("contiguous", "transposed", "strided", "offset", "negated", "expanded")
NUMPY_LAYOUTS = ("contiguous", "transposed", "strided", "offset", "reversed", "byteswapped")
SPECIAL_KINDS = ("empty", "single", "all_nan", "all_inf", "nan_and_inf", "constant", "zeros")


@dataclass(frozen=True)
class Case:
    """A recipe for a list of tensors; hypothesis draws it, ``make_tensors`` cooks it with
    a numpy generator seeded by ``seed`` (so each tensor still gets its own dtype,
    layout, size and special values, picked from the allowed ones)."""

    n_tensors: int
    seed: int
    dtypes: tuple[str, ...]
    libs: tuple[str, ...]  # "torch", "numpy"
    layouts: tuple[str, ...]
    sizes: str  # "tiny", "small", "tiles", "chunks"
    offset: float
    scale_exp: int  # std = |offset| * 10**scale_exp (>= 1e-6 |offset|), or 10**scale_exp at 0
    special_frac: float  # probability that a tensor is one of SPECIAL_KINDS
    nan_frac: float
    inf_frac: float
    zero_frac: float


@st.composite
def cases(
    draw: st.DrawFn,
    max_tensors: int = 500,
    libs: tuple[str, ...] = ("torch", "numpy"),
) -> Case:
    """Lists of 1 to ``max_tensors`` tensors. To keep examples fast, only lists of up to 6
    hold tensors of more than 300 elements (up to a few tiles or chunks)."""
    n = draw(st.one_of(st.integers(1, 6), st.integers(1, max_tensors)))
    short = n <= 6
    size_regimes = ["tiny", "small"] + (["tiles", "chunks"] if short else [])
    offset = draw(st.sampled_from([0.0, 1.0, -3.0, 100.0, 1e4, -1e4, 1e6]))
    scale_exp = draw(st.integers(-6, 0) if offset else st.integers(-30, 6))
    return Case(
        n_tensors=n,
        seed=draw(st.integers(0, 2**32 - 1)),
        dtypes=tuple(draw(st.sets(st.sampled_from(list(TORCH_DTYPES)), min_size=1))),
        libs=tuple(draw(st.sets(st.sampled_from(libs), min_size=1))),
        layouts=tuple(draw(st.sets(st.sampled_from(TORCH_LAYOUTS + NUMPY_LAYOUTS), min_size=1))),
        sizes=draw(st.sampled_from(size_regimes)),
        offset=offset,
        scale_exp=scale_exp,
        special_frac=draw(st.sampled_from([0.0, 0.1, 0.5])),
        nan_frac=draw(st.sampled_from([0.0, 0.0, 1e-3, 0.05, 0.5])),
        inf_frac=draw(st.sampled_from([0.0, 0.0, 1e-3, 0.2])),
        zero_frac=draw(st.sampled_from([0.0, 0.0, 0.1])),
    )


def _numel(rng: np.random.Generator, sizes: str, short: bool) -> int:
    if sizes == "tiny":
        return int(rng.integers(0, 4))
    if sizes == "small":
        return int(rng.integers(0, 3001 if short else 301))
    unit = TILE if sizes == "tiles" else CPU_CHUNK
    k = int(rng.integers(1, 5 if sizes == "tiles" else 3))
    remainder = int(rng.choice([-1, 0, 1, int(rng.integers(2, unit))]))
    return k * unit + remainder


def random_shape(rng: np.random.Generator, numel: int) -> tuple[int, ...]:
    """A random shape of ``numel`` elements, 0-d to 3-d."""
    if numel == 0:
        k = int(rng.integers(1, 5))
        return [(0,), (0, k), (k, 0), (k, 0, 2)][int(rng.integers(0, 4))]
    if numel == 1 and rng.random() < 0.5:
        return ()
    dims = []
    rest = numel
    for _ in range(int(rng.integers(0, 3))):
        divisors = [d for d in range(1, min(rest, 64) + 1) if rest % d == 0]
        d = int(rng.choice(divisors))
        dims.append(d)
        rest //= d
    return (*dims, rest)


def random_values(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: str, case: Case, special: str | None
) -> np.ndarray:
    """float64 values that fit ``dtype`` (float16 stays within +-6e4), with NaN/Inf/zeros."""
    offset, scale_exp = case.offset, case.scale_exp
    scale = abs(offset) * 10.0**scale_exp if offset else 10.0**scale_exp
    if dtype == "float16":
        offset = math.copysign(min(abs(offset), 1e4), offset)
        scale = min(max(scale, 1e-7), 1e3)  # 1e-7: subnormal halves, still not all zero
    numel = math.prod(shape)
    values = rng.normal(offset, scale, numel)
    if special == "all_nan":
        values[:] = np.nan
    elif special == "all_inf":
        values = rng.choice([np.inf, -np.inf], numel)
    elif special == "nan_and_inf":
        values = rng.choice([np.nan, np.inf, -np.inf], numel)
    elif special == "constant":
        values[:] = offset
    elif special == "zeros":
        values = rng.choice([0.0, -0.0], numel)
    else:
        values[rng.random(numel) < case.zero_frac] = rng.choice([0.0, -0.0])
        values[rng.random(numel) < case.inf_frac] = rng.choice([np.inf, -np.inf])
        values[rng.random(numel) < case.nan_frac] = np.nan
    return values.reshape(shape)


def as_torch(values: np.ndarray, dtype: str, layout: str, device: str = "cpu") -> torch.Tensor:
    """``values`` as a torch tensor of ``dtype`` on ``device`` whose memory layout is
    ``layout``. Memory the view skips is filled with NaN, so reading it shows up."""
    x = torch.from_numpy(values).to(device=device, dtype=TORCH_DTYPES[dtype])
    nan = float("nan")
    if layout == "transposed" and x.dim() >= 2:
        return x.transpose(-1, -2).contiguous().transpose(-1, -2)
    if layout == "strided" and x.dim() >= 1:
        base = torch.full((*x.shape[:-1], 2 * x.shape[-1]), nan, dtype=x.dtype, device=device)
        base[..., ::2] = x
        return base[..., ::2]
    if layout == "offset":  # contiguous, but one element past an aligned address
        base = torch.full((x.numel() + 1,), nan, dtype=x.dtype, device=device)
        base[1:] = x.reshape(-1)
        return base[1:].view(x.shape)
    if layout == "negated" and dtype in ("float32", "float64"):
        z = torch.complex(torch.full_like(x, nan), -x)  # complex64 or complex128
        return z.conj().imag  # a view with the negative bit: its memory holds -x
    if layout == "expanded" and x.dim() >= 1:
        return x.unsqueeze(0).expand(2, *x.shape)  # stride 0: every element read twice
    return x


def as_numpy(values: np.ndarray, dtype: str, layout: str) -> np.ndarray:
    """``values`` as a numpy array of ``dtype`` with memory layout ``layout``."""
    with np.errstate(over="ignore", invalid="ignore"):
        x = values.astype(dtype)
    if layout == "transposed" and x.ndim >= 2:
        return np.ascontiguousarray(x.swapaxes(-1, -2)).swapaxes(-1, -2)
    if layout == "strided" and x.ndim >= 1:
        base = np.full((*x.shape[:-1], 2 * x.shape[-1]), np.nan, dtype=x.dtype)
        base[..., ::2] = x
        return base[..., ::2]
    if layout == "offset":
        base = np.full(x.size + 1, np.nan, dtype=x.dtype)
        base[1:] = x.reshape(-1)
        return base[1:].reshape(x.shape)
    if layout == "reversed":
        return x.reshape(-1)[::-1].copy()[::-1]
    if layout == "byteswapped":
        return x.astype(x.dtype.newbyteorder("S"))
    return x


def make_tensors(case: Case, device: str = "cpu") -> list[Any]:
    """The tensors (and arrays) ``case`` describes."""
    rng = np.random.default_rng(case.seed)
    short = case.n_tensors <= 6
    out: list[Any] = []
    for _ in range(case.n_tensors):
        dtype = str(rng.choice(case.dtypes))
        lib = str(rng.choice(case.libs))
        if dtype not in NUMPY_DTYPES or device != "cpu":
            lib = "torch"
        layouts = TORCH_LAYOUTS if lib == "torch" else NUMPY_LAYOUTS
        allowed = [layout for layout in case.layouts if layout in layouts] or ["contiguous"]
        layout = str(rng.choice(allowed))
        special = str(rng.choice(SPECIAL_KINDS)) if rng.random() < case.special_frac else None
        if special == "empty":
            numel = 0
        elif special == "single":
            numel = 1
        else:
            numel = _numel(rng, case.sizes, short)
        values = random_values(rng, random_shape(rng, numel), dtype, case, special)
        if lib == "torch":
            out.append(as_torch(values, dtype, layout, device))
        else:
            out.append(as_numpy(values, dtype, layout))
    return out


def offset_data(
    rng: np.random.Generator, numel: int, mean: float = 1e4, std: float = 1e-2
) -> np.ndarray:
    """The spec's hard case for variance: a large offset with a tiny spread."""
    return rng.normal(mean, std, numel)
