"""Helpers of the tests of the CUDA kernels' host emulation (fusedstats._cuda_emu): data
placed at a chosen address modulo 16, the emulated launches, and an exact oracle.

The oracle is exact to a few units in the last place: sums are math.fsum (correctly
rounded), central moments are fsum of deviations from the correctly rounded mean (each
term off by a few ulps, no cancellation), everything scaled by a power of two so that
data near 1.8e308 neither overflows nor loses bits. The emulation must agree with it
far more tightly than the spec's 1e-9 / 1e-6: the point is to catch indexing, alignment
and merge-order bugs that the spec's tolerances would hide.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import fusedstats._cuda_emu as emu
from fusedstats.kernels.columns import (
    EXTENDED_COLUMN_INDEX,
    EXTENDED_COLUMNS,
    HIST_BINS,
    NUM_COLUMNS,
    NUM_EXTENDED_COLUMNS,
)
from fusedstats.kernels.inputs import DTYPE_CODES
from fusedstats.kernels.reference import FORMAT_MAX, FORMAT_MIN_NORMAL, exponent_histogram

RECORDING = Path(__file__).parent / "data" / "gpu_emulation_record.npz"
CHUNK = int(emu.CHUNK_ELEMS)
THREADS = int(emu.THREADS)
ALL_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float8_e4m3fn": torch.float8_e4m3fn,
    "float8_e5m2": torch.float8_e5m2,
}

# Emulation vs the oracle (see the module docstring). Worst seen over 250 random cases
# (2026-12-06): l1/norm 7e-16, sum/mean 4e-15 of l1, var 4e-15, kurtosis 1.4e-11. The
# bounds: sums of <= 256 terms per thread then a 13-level merge; var also the one-sweep
# cancellation, at most 256x in a chunk (span.h: <= 7e-12); M4 from power sums, ~100x.
# 10 to 1000 times tighter than the spec's 1e-9 / 1e-6.
RTOL_SUMS = 1e-14  # l1, norm: sums of non-negative terms
RTOL_SUM = 1e-13  # sum, mean: relative to l1 (they cancel)
RTOL_VAR = 1e-11  # var, var_pop, std
RTOL_KURTOSIS = 1e-9
EXACT = frozenset(
    {
        "numel",
        "n_nan",
        "n_inf",
        "n_zero",
        "n_finite",
        "min",
        "max",
        "abs_max",
        "n_dormant_rows",
        "min_abs_nonzero",
        *(c for c in EXTENDED_COLUMNS if c.startswith(("underflow_", "overflow_"))),
    }
)


def place(x: torch.Tensor, offset: int) -> torch.Tensor:
    """A contiguous CPU copy of ``x`` whose first element sits ``offset`` bytes past a
    16-byte boundary (``offset`` a multiple of the element size), as the kernel sees a
    view at that storage offset on the device."""
    es = x.element_size()
    assert offset % es == 0 and 0 <= offset < 16
    n = x.numel()
    raw = torch.empty(n * es + 32, dtype=torch.uint8)
    start = (-raw.data_ptr()) % 16 + offset
    out = raw[start : start + n * es].view(x.dtype).view(x.shape)
    out.copy_(x)
    assert x.numel() == 0 or out.data_ptr() % 16 == offset
    return out


def _descriptors(tensors: Sequence[torch.Tensor], row_lens: Sequence[int] | None) -> Any:
    codes = [DTYPE_CODES[str(t.dtype).removeprefix("torch.")] for t in tensors]
    lens = list(row_lens) if row_lens is not None else [0] * len(tensors)
    ptrs = [t.data_ptr() for t in tensors]
    numels = [t.numel() for t in tensors]
    table, n_chunks = emu.plan(ptrs, numels, codes, lens)
    return (
        ptrs,
        numels,
        codes,
        lens,
        torch.frombuffer(bytearray(table), dtype=torch.uint8),
        n_chunks,
    )


def emu_stats(
    tensors: Sequence[torch.Tensor],
    row_lens: Sequence[int] | None = None,
    threshold: float = 0.0,
    extended: bool = False,
    workspace: torch.Tensor | None = None,
    rearm: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The emulated tensor_stats launch: (rows, histograms) as numpy. Output buffers
    start as NaN / -1, so a row the kernel leaves unwritten shows."""
    _, _, _, lens, table, n_chunks = _descriptors(tensors, row_lens)
    n = len(tensors)
    if workspace is None:
        workspace = torch.empty(emu.workspace_bytes(n_chunks, n, extended), dtype=torch.uint8)
    width = NUM_EXTENDED_COLUMNS if extended else NUM_COLUMNS
    out = torch.full((n + 1, width), math.nan, dtype=torch.float64)
    hist = torch.full((n + 1, HIST_BINS), -1, dtype=torch.int64)
    code = emu.launch_stats(
        table.data_ptr(),
        n_chunks,
        n,
        any(lens),
        extended,
        workspace.data_ptr(),
        threshold,
        out.data_ptr(),
        hist.data_ptr() if extended else 0,
        0,
        rearm=rearm,
    )
    assert code == 0
    return out.numpy(), hist.numpy()


def record_bytes(extended: bool) -> int:
    from fusedstats import _native

    return int(_native.core.record_bytes(extended))


def emu_records(
    tensors: Sequence[torch.Tensor],
    records: torch.Tensor | None = None,
    row_lens: Sequence[int] | None = None,
    threshold: float = 0.0,
    extended: bool = False,
) -> torch.Tensor:
    """Emulated tensor_records: fresh records, or merged into ``records``."""
    _, _, _, lens, table, n_chunks = _descriptors(tensors, row_lens)
    n = len(tensors)
    accumulate = records is not None
    if records is None:
        records = torch.full((n, record_bytes(extended)), 0xA5, dtype=torch.uint8)
    workspace = torch.empty(emu.workspace_bytes(n_chunks, n, extended), dtype=torch.uint8)
    code = emu.launch_records(
        table.data_ptr(),
        n_chunks,
        n,
        any(lens),
        extended,
        workspace.data_ptr(),
        threshold,
        records.data_ptr(),
        accumulate,
        0,
    )
    assert code == 0
    return records


def emu_finalize(records: torch.Tensor, extended: bool) -> tuple[np.ndarray, np.ndarray]:
    n = records.shape[0]
    width = NUM_EXTENDED_COLUMNS if extended else NUM_COLUMNS
    out = torch.full((n + 1, width), math.nan, dtype=torch.float64)
    hist = torch.full((n + 1, HIST_BINS), -1, dtype=torch.int64)
    workspace = torch.full((emu.finalize_workspace_bytes(extended),), 0xA5, dtype=torch.uint8)
    code = emu.launch_finalize(
        records.data_ptr(),
        n,
        extended,
        workspace.data_ptr(),
        out.data_ptr(),
        hist.data_ptr() if extended else 0,
        0,
    )
    assert code == 0
    return out.numpy(), hist.numpy()


def emu_merge(
    src: torch.Tensor, n_sources: int, n: int, extended: bool, include: torch.Tensor | None
) -> torch.Tensor:
    dst = torch.full((n, record_bytes(extended)), 0xA5, dtype=torch.uint8)
    code = emu.launch_merge(
        src.data_ptr(),
        n_sources,
        n,
        extended,
        include.data_ptr() if include is not None else 0,
        dst.data_ptr(),
        0,
    )
    assert code == 0
    return dst


@dataclass(frozen=True)
class Spec:
    """One tensor: its dtype, shape (rows x row_len in row mode), the byte offset of its
    first element past a 16-byte boundary, and how its values are drawn."""

    dtype: str
    shape: tuple[int, ...]
    offset: int
    seed: int
    mean: float
    scale: float
    nan_frac: float
    inf_frac: float
    zero_rows: float  # row mode: fraction of rows set to 0 (dormant)
    outliers: float  # fraction of elements 1000 scales away
    huge: bool  # float64: mix in ±1.5e308


def _limits(dtype: str) -> float:
    return {"float16": 6e4, "float8_e4m3fn": 440.0, "float8_e5m2": 5e4}.get(dtype, 1e300)


def make(spec: Spec) -> torch.Tensor:
    rng = np.random.default_rng(spec.seed)
    numel = math.prod(spec.shape)
    limit = _limits(spec.dtype)
    mean = math.copysign(min(abs(spec.mean), limit / 4), spec.mean)
    scale = min(spec.scale, limit / 8)
    v = rng.normal(mean, scale, numel)
    if spec.outliers:
        hit = rng.random(numel) < spec.outliers
        v[hit] = mean + np.clip(1000 * scale, -limit / 2, limit / 2) * rng.choice(
            [-1, 1], hit.sum()
        )
    if spec.huge:
        hit = rng.random(numel) < 0.3
        v[hit] = rng.choice([1.5e308, -1.5e308, 1e308], hit.sum())
    v[rng.random(numel) < spec.inf_frac] = rng.choice([np.inf, -np.inf])
    v[rng.random(numel) < spec.nan_frac] = np.nan
    v = v.reshape(spec.shape)
    if spec.zero_rows and len(spec.shape) == 2 and numel:
        v[rng.random(spec.shape[0]) < spec.zero_rows] = 0.0
    return place(torch.from_numpy(v).to(ALL_DTYPES[spec.dtype]), spec.offset)


# ---- the oracle -------------------------------------------------------------------------


def fsum_abs(values: Sequence[float]) -> float:
    """Correctly rounded sum of non-negative values, inf when it exceeds float64."""
    try:
        return math.fsum(values)
    except OverflowError:
        return math.inf


def _ldexp(x: float, e: int) -> float:
    """x * 2**e, inf when that overflows (the true value is beyond float64)."""
    try:
        return math.ldexp(x, e)
    except OverflowError:
        return math.copysign(math.inf, x)


def oracle_row(
    x: torch.Tensor, row_len: int = 0, threshold: float = 0.0
) -> tuple[dict[str, float], np.ndarray]:
    """Every column of one tensor, and its exponent histogram."""
    v = x.detach().reshape(-1).to(torch.float64).numpy()
    finite = v[np.isfinite(v)]
    n = finite.size
    row = dict.fromkeys(EXTENDED_COLUMNS, math.nan)
    row["numel"] = float(v.size)
    row["n_nan"] = float(np.isnan(v).sum())
    row["n_inf"] = float(np.isinf(v).sum())
    row["n_zero"] = float((finite == 0).sum())
    row["n_finite"] = float(n)
    row["sum"] = row["l1"] = row["norm"] = 0.0
    row["n_dormant_rows"] = 0.0
    if row_len > 0 and v.size:
        rows = np.where(np.isfinite(v), np.abs(v), 0.0).reshape(-1, row_len)
        means = np.array([fsum_abs(r.tolist()) for r in rows]) / row_len
        row["n_dormant_rows"] = float((means < threshold).sum())
    hist = exponent_histogram(torch.from_numpy(v)).numpy()
    if n == 0:
        return row, hist
    absf = np.abs(finite)
    abs_max = float(absf.max())
    # Work in units of 2**e with the largest |x| in [0.5, 1): exact, nothing overflows.
    e = math.frexp(abs_max)[1] if abs_max > 0 else 0
    xs = np.ldexp(finite, -e)
    s = math.fsum(xs.tolist())
    mean = s / n
    d = xs - mean
    d2 = d * d
    m2 = math.fsum(d2.tolist())
    row["sum"] = _ldexp(s, e)
    row["l1"] = _ldexp(math.fsum(np.abs(xs).tolist()), e)
    row["norm"] = _ldexp(math.sqrt(math.fsum((xs * xs).tolist())), e)
    row["mean"] = _ldexp(mean, e)
    row["var_pop"] = _ldexp(m2 / n, 2 * e)
    row["min"] = float(finite.min())
    row["max"] = float(finite.max())
    row["abs_max"] = abs_max
    if n >= 2:
        row["var"] = _ldexp(m2 / (n - 1), 2 * e)
        row["std"] = _ldexp(math.sqrt(m2 / (n - 1)), e)
        if m2 > 0:
            row["kurtosis"] = n * math.fsum((d2 * d2).tolist()) / (m2 * m2) - 3.0
    nonzero = absf[absf != 0]
    if nonzero.size:
        row["min_abs_nonzero"] = float(nonzero.min())
        row["dynamic_range_log2"] = math.log2(abs_max) - math.log2(float(nonzero.min()))
    for fmt in ("bf16", "fp16", "e4m3", "e5m2"):
        row[f"underflow_{fmt}"] = float((nonzero < FORMAT_MIN_NORMAL[fmt]).sum()) / n
        row[f"overflow_{fmt}"] = float((absf > FORMAT_MAX[fmt]).sum()) / n
    return row, hist


def oracle(
    tensors: Sequence[torch.Tensor],
    row_lens: Sequence[int] | None = None,
    threshold: float = 0.0,
) -> tuple[list[dict[str, float]], np.ndarray]:
    """Rows of every tensor and the global row (the tensors together), histograms."""
    lens = list(row_lens) if row_lens is not None else [0] * len(tensors)
    rows, hists = [], []
    for x, r in zip(tensors, lens, strict=True):
        row, hist = oracle_row(x, r, threshold)
        rows.append(row)
        hists.append(hist)
    flat = [t.detach().reshape(-1).to(torch.float64) for t in tensors]
    everything = torch.cat(flat) if flat else torch.zeros(0, dtype=torch.float64)
    glob, ghist = oracle_row(everything)
    glob["n_dormant_rows"] = sum(r["n_dormant_rows"] for r in rows)
    rows.append(glob)
    hists.append(ghist)
    return rows, np.stack(hists)


def mismatch(field: str, got: float, want: float, row: dict[str, float]) -> str:
    """Why ``got`` is not close enough to the oracle's ``want``; empty when it is."""
    if field == "kurtosis" and math.isnan(got) and math.isinf(row["var_pop"]):
        # stats.h's ext_finalize takes n·M4/M2² from unscaled sums (CPU and GPU alike):
        # when M2 overflows, that is inf/inf.
        return ""
    if math.isnan(want) or math.isnan(got):
        return "" if math.isnan(want) and math.isnan(got) else f"got {got!r}, want {want!r}"
    if field in ("norm", "std") and got == math.inf and want * want == math.inf:
        # stats.h keeps Σx² and M2 unscaled (CPU and GPU alike): a norm or std whose
        # square overflows float64 is inf there, although it is itself finite.
        return ""
    if math.isinf(want) or math.isinf(got) or field in EXACT:
        return "" if got == want else f"got {got!r}, want {want!r}"
    if field == "sum":
        tol = RTOL_SUM * row["l1"]
    elif field == "mean":
        # A mean is held as shift + (mean - shift), the shift an element of the data:
        # its rounding is relative to max|x|, which can be far above the mean |x|.
        tol = RTOL_SUM * max(row["l1"] / max(row["n_finite"], 1.0), row["abs_max"])
    elif field in ("var", "var_pop", "std"):
        tol = RTOL_VAR * abs(want)
    elif field == "kurtosis":
        tol = RTOL_KURTOSIS * max(abs(want), 1.0)
    elif field == "dynamic_range_log2":
        tol = 4 * math.ulp(max(abs(want), 1.0))  # log2 of libm (and of libdevice on GPU)
    else:
        tol = RTOL_SUMS * abs(want)
    diff = abs(got - want)
    return "" if diff <= tol else f"got {got!r}, want {want!r} (diff {diff:.3g} > {tol:.3g})"


def assert_rows_match(
    got: np.ndarray, want: Sequence[dict[str, float]], what: str = "emulation"
) -> None:
    """Kernel rows (any width) vs oracle rows, every mismatch listed."""
    problems = []
    for r, row in enumerate(want):
        for c in range(got.shape[1]):
            field = EXTENDED_COLUMNS[c]
            why = mismatch(field, float(got[r, c]), row[field], row)
            if why:
                problems.append(f"row {r}, {field}: {why}")
    assert not problems, f"{what}: {len(problems)} mismatches:\n" + "\n".join(problems[:25])


def column(rows: np.ndarray, name: str) -> np.ndarray:
    return rows[:, EXTENDED_COLUMN_INDEX[name]]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equal, except that any NaN equals any NaN (payloads differ by platform)."""
    a64 = np.ascontiguousarray(a, dtype=np.float64)
    b64 = np.ascontiguousarray(b, dtype=np.float64)
    both_nan = np.isnan(a64) & np.isnan(b64)
    return bool(((a64.view(np.int64) == b64.view(np.int64)) | both_nan).all())


# ---- emulation vs GPU: the recorded cases -------------------------------------------------


@dataclass(frozen=True)
class RecordedCase:
    name: str
    specs: tuple[Spec, ...]
    row_mode: bool = False
    extended: bool = False
    threshold: float = 0.0


def _spec(dtype: str, shape: tuple[int, ...], offset: int, seed: int, **kw: Any) -> Spec:
    values = {"mean": 1.0, "scale": 2.0, "nan_frac": 0.0, "inf_frac": 0.0}
    values |= {"zero_rows": 0.0, "outliers": 0.0, "huge": False}
    values |= kw
    return Spec(dtype=dtype, shape=shape, offset=offset, seed=seed, **values)


def recording_cases() -> list[RecordedCase]:
    """Fixed cases whose GPU buffers the bit-for-bit test replays: every dtype at every
    alignment, chunk edges, NaN/Inf, huge values, row mode, the extended pass, many
    tensors, the spec's hard offset case, and threads whose first element is an outlier."""
    cases = []
    specs = []
    small = [1, 5, 17, 33, 257, 700, 1023, 4099]
    for d, (name, dtype) in enumerate(ALL_DTYPES.items()):
        offsets = list(range(0, 16, dtype.itemsize))
        for k, offset in enumerate(offsets):
            # one chunk edge per dtype (at an unaligned start where there is one), small
            # sizes at the other alignments: heads, tails and one-element spans
            edge = CHUNK + 1 if d % 2 else CHUNK - 1
            size = edge if k == len(offsets) // 2 else small[(d + k) % 8]
            specs.append(_spec(name, (size,), offset, 100 * d + offset, mean=3.0 * d - 4.0))
    for extended in (False, True):
        cases.append(RecordedCase("dtypes x alignments", tuple(specs), extended=extended))
        cases.append(
            RecordedCase(
                "NaN/Inf mixtures",
                (
                    _spec("float32", (CHUNK + 77,), 4, 1, nan_frac=0.01, inf_frac=0.01),
                    _spec("float16", (5000,), 2, 2, nan_frac=0.2),
                    _spec("float64", (300,), 8, 3, nan_frac=1.0),
                    _spec("bfloat16", (20_000,), 6, 4, inf_frac=0.5),
                ),
                extended=extended,
            )
        )
        cases.append(
            RecordedCase(
                "huge float64",
                (
                    _spec("float64", (3 * 257,), 0, 5, huge=True),
                    _spec("float64", (5003,), 8, 6, huge=True),
                ),
                extended=extended,
            )
        )
        cases.append(
            RecordedCase(
                "offset data",
                (
                    _spec("float64", (CHUNK + 5,), 8, 7, mean=1e4, scale=1e-2),
                    _spec("float32", (CHUNK - 3,), 12, 8, mean=1e4, scale=1e-2),
                    _spec("float64", (9000,), 0, 9, mean=1e6, scale=1e-3, outliers=1e-3),
                ),
                extended=extended,
            )
        )
        cases.append(
            RecordedCase(
                "rows",
                (
                    _spec("float32", (30_000, 3), 4, 10, zero_rows=0.3),
                    _spec("bfloat16", (200, 300), 2, 11, zero_rows=0.3),
                    _spec("float32", (2, 40_000), 8, 12, zero_rows=0.5),
                    _spec("float8_e4m3fn", (2, CHUNK + 5), 3, 13, zero_rows=0.5, nan_frac=1e-3),
                ),
                row_mode=True,
                extended=extended,
                threshold=0.25,
            )
        )
        many = tuple(
            _spec(list(ALL_DTYPES)[i % 6], (i % 50,), 0, 1000 + i, mean=float(i % 7))
            for i in range(600)
        )
        cases.append(RecordedCase("600 small tensors", many, extended=extended))
    return cases


def case_tensors(case: RecordedCase) -> tuple[list[torch.Tensor], list[int] | None]:
    """The case's inputs on the host (placed at their alignments) and row lengths."""
    tensors = [make(s) for s in case.specs]
    row_lens = [s.shape[1] for s in case.specs] if case.row_mode else None
    return tensors, row_lens


def to_device(x: torch.Tensor, offset: int, device: str = "cuda") -> torch.Tensor:
    """``x`` on the device with its first element ``offset`` bytes past 16-byte alignment."""
    es = x.element_size()
    raw = torch.empty(x.numel() * es + 32, dtype=torch.uint8, device=device)
    start = (-raw.data_ptr()) % 16 + offset
    out = raw[start : start + x.numel() * es].view(x.dtype).view(x.shape)
    out.copy_(x.to(device))
    assert x.numel() == 0 or out.data_ptr() % 16 == offset
    return out


def run_on_gpu(case: RecordedCase) -> dict[str, np.ndarray]:
    """The GPU's buffers for one case: rows, histograms, records."""
    from fusedstats.kernels import api, dispatch, inputs

    host, row_lens = case_tensors(case)
    dev = [to_device(x, s.offset) for x, s in zip(host, case.specs, strict=True)]
    st = api._stats(dev, None, row_lens, case.threshold, None, case.extended)
    assert st.path == "cuda", st.path
    prep = inputs.prepare(dev, None, row_lens)
    records = dispatch.new_records(prep, len(dev), case.extended)
    dispatch.records(prep, case.threshold, case.extended, records, False)
    out = {"rows": st.as_tensor().cpu().numpy(), "records": records.cpu().numpy()}
    out["hist"] = st.exponent_histogram.cpu().numpy() if case.extended else np.zeros((0,), np.int64)
    return out


def run_emulated(case: RecordedCase) -> dict[str, np.ndarray]:
    """What run_on_gpu returns, from the emulation (tests of the recorder itself)."""
    host, row_lens = case_tensors(case)
    rows, hist = emu_stats(host, row_lens, case.threshold, case.extended)
    records = emu_records(host, None, row_lens, case.threshold, case.extended)
    return {
        "rows": rows,
        "records": records.numpy(),
        "hist": hist if case.extended else np.zeros((0,), np.int64),
    }


def record_gpu(path: Path, run: Any = None) -> dict[str, Any]:
    """Runs every recording case on the GPU (``run``: run_on_gpu by default) and saves
    inputs and buffers to ``path`` (npz); returns a summary, including whether the
    emulation agrees bit for bit."""
    run = run_on_gpu if run is None else run
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"cases": []}
    summary = {"cases": 0, "bitwise_equal": 0, "differences": []}
    dyn = EXTENDED_COLUMN_INDEX["dynamic_range_log2"]
    names: list[str] = []
    for c, case in enumerate(recording_cases()):
        host, row_lens = case_tensors(case)
        gpu = run(case)
        if case.name not in names:  # the extended variant shares the plain one's inputs
            names.append(case.name)
            for j, x in enumerate(host):
                key = f"input{names.index(case.name)}_{j}"
                arrays[key] = x.reshape(-1).view(torch.uint8).numpy().copy()
        for k, v in gpu.items():
            arrays[f"case{c}_{k}"] = v
        meta["cases"].append(
            {
                "name": case.name,
                "row_lens": row_lens,
                "threshold": case.threshold,
                "extended": case.extended,
                "tensors": [
                    {
                        "dtype": s.dtype,
                        "shape": list(s.shape),
                        "offset": s.offset,
                        "input": f"input{names.index(case.name)}_{j}",
                    }
                    for j, s in enumerate(case.specs)
                ],
                "spec": [asdict(s) for s in case.specs],
            }
        )
        rows, hist = emu_stats(host, row_lens, case.threshold, case.extended)
        records = emu_records(host, None, row_lens, case.threshold, case.extended)
        a, b = rows, gpu["rows"]
        if case.extended:
            a, b = np.delete(a, dyn, axis=1), np.delete(b, dyn, axis=1)
        equal = (
            same_bits(a, b)
            and np.array_equal(records.numpy(), gpu["records"])
            and (not case.extended or np.array_equal(hist, gpu["hist"]))
        )
        summary["cases"] += 1
        summary["bitwise_equal"] += int(equal)
        if not equal:
            summary["differences"].append(f"case {c}: {case.name} (extended={case.extended})")
    arrays["meta"] = np.array(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return summary


def replay_recording(path: Path) -> None:
    """Replays a recording on the emulation: AssertionError unless every buffer is the
    same bit for bit (NaN payloads aside; dynamic_range_log2 within 4e-16 relative,
    libm vs libdevice log2)."""
    data = np.load(path, allow_pickle=False)
    meta = json.loads(str(data["meta"]))
    dyn = EXTENDED_COLUMN_INDEX["dynamic_range_log2"]
    for c, case in enumerate(meta["cases"]):
        tensors = []
        for t in case["tensors"]:
            raw = torch.from_numpy(data[t["input"]].copy())
            dtype = ALL_DTYPES[t["dtype"]]
            x = raw.view(dtype) if raw.numel() else torch.empty(0, dtype=dtype)
            x = x.reshape(t["shape"])
            tensors.append(place(x, t["offset"]))
        rows, hist = emu_stats(tensors, case["row_lens"], case["threshold"], case["extended"])
        gpu = data[f"case{c}_rows"]
        what = f"case {c} ({case['name']}, extended={case['extended']})"
        if case["extended"]:
            np.testing.assert_array_equal(hist, data[f"case{c}_hist"], err_msg=what)
            np.testing.assert_allclose(rows[:, dyn], gpu[:, dyn], rtol=4e-16, err_msg=what)
            rows, gpu = np.delete(rows, dyn, axis=1), np.delete(gpu, dyn, axis=1)
        assert same_bits(rows, gpu), f"{what}: emulation and GPU rows differ"
        records = emu_records(tensors, None, case["row_lens"], case["threshold"], case["extended"])
        assert np.array_equal(records.numpy(), data[f"case{c}_records"]), f"{what}: records"
