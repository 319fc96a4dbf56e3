"""The pure-torch reference: what the fused kernels must compute, in plain float64 code.

Short and obvious on purpose; tests compare the kernels against it and benchmarks race
it. (CUDA tensors without a usable fusedstats._cuda take the faster exact torch code
of :mod:`fusedstats.kernels.fallback` instead.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .columns import (
    COLUMN_INDEX,
    COLUMNS,
    EXTENDED_FIELDS,
    FIELDS,
    FORMATS,
    HIST_BIN_OFFSET,
    HIST_BINS,
    HIST_MAX_EXP,
    HIST_MIN_EXP,
)

# Each format's smallest positive normal number (a power of two) and largest finite value.
FORMAT_MIN_NORMAL = {"bf16": 2.0**-126, "fp16": 2.0**-14, "e4m3": 2.0**-6, "e5m2": 2.0**-14}
FORMAT_MAX = {"bf16": 3.3895313892515355e38, "fp16": 65504.0, "e4m3": 448.0, "e5m2": 57344.0}


def _as_torch(x: Any) -> Any:
    import torch

    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("=")))
    return x


def _row(x: Any, row_len: int, dormant_threshold: float) -> list[float]:
    """One buffer row for the flat float64 tensor ``x``."""
    import torch

    finite_mask = torch.isfinite(x)
    f = x[finite_mask]
    n = f.numel()
    nan = math.nan
    out = dict.fromkeys(COLUMNS, nan)
    out["numel"] = float(x.numel())
    out["n_nan"] = float(torch.isnan(x).sum())
    out["n_inf"] = float(torch.isinf(x).sum())
    out["n_zero"] = float((f == 0).sum())
    out["n_finite"] = float(n)
    out["sum"] = float(f.sum())
    out["l1"] = float(f.abs().sum())
    out["norm"] = float(torch.sqrt((f * f).sum()))
    if n >= 1:
        out["mean"] = float(f.mean())
        out["var_pop"] = float(f.var(correction=0))
        out["min"] = float(f.min())
        out["max"] = float(f.max())
        out["abs_max"] = float(f.abs().max())
    if n >= 2:
        out["var"] = float(f.var(correction=1))
        out["std"] = float(f.std(correction=1))
    out["n_dormant_rows"] = 0.0
    if row_len > 0 and x.numel() > 0:
        rows = torch.where(finite_mask, x.abs(), torch.zeros_like(x)).reshape(-1, row_len)
        out["n_dormant_rows"] = float((rows.sum(dim=1) / row_len < dormant_threshold).sum())
    return [out[c] for c in COLUMNS]


def _extended_row(x: Any) -> list[float]:
    """The extended columns for the flat float64 tensor ``x``."""
    import torch

    f = x[torch.isfinite(x)]
    n = f.numel()
    out = dict.fromkeys(EXTENDED_FIELDS, math.nan)
    if n >= 2:
        d = f - f.mean()
        m2 = float((d * d).sum())
        if m2 > 0:
            out["kurtosis"] = n * float((d**4).sum()) / (m2 * m2) - 3.0
    nonzero = f[f != 0].abs()
    if nonzero.numel():
        min_abs = float(nonzero.min())
        out["min_abs_nonzero"] = min_abs
        out["dynamic_range_log2"] = math.log2(float(f.abs().max())) - math.log2(min_abs)
    if n:
        for fmt in FORMATS:
            out[f"underflow_{fmt}"] = float((nonzero < FORMAT_MIN_NORMAL[fmt]).sum()) / n
            out[f"overflow_{fmt}"] = float((f.abs() > FORMAT_MAX[fmt]).sum()) / n
    return [out[c] for c in EXTENDED_FIELDS]


def exponent_histogram(x: Any) -> Any:
    """Counts of the finite elements of ``x`` by floor(log2|x|) (bins of
    ``fusedstats.kernels.columns``), as an int64 tensor of HIST_BINS."""
    import torch

    f = x.reshape(-1).to(torch.float64)
    f = f[torch.isfinite(f)]
    counts = torch.zeros(HIST_BINS, dtype=torch.int64, device=f.device)
    counts[0] = int((f == 0).sum())
    nonzero = f[f != 0]
    exponent = torch.frexp(nonzero).exponent.to(torch.int64) - 1  # |x| = m 2^e, m in [1, 2)
    bins = torch.where(
        exponent < HIST_MIN_EXP,
        torch.full_like(exponent, 1),
        torch.where(
            exponent > HIST_MAX_EXP,
            torch.full_like(exponent, HIST_BINS - 1),
            exponent + HIST_BIN_OFFSET,
        ),
    )
    counts += torch.bincount(bins, minlength=HIST_BINS)
    return counts


def stats_buffers(
    tensors: Sequence[Any],
    row_lens: Sequence[int] | None = None,
    dormant_threshold: float = 0.0,
    extended: bool = False,
) -> tuple[Any, Any]:
    """The kernel's buffers: ``[n + 1, width]`` float64 rows (with the extended columns
    when asked) and, when extended, the ``[n + 1, HIST_BINS]`` int64 exponent
    histograms (else None). Computed on the inputs' device.
    """
    import torch

    rows = stats_buffer(tensors, row_lens, dormant_threshold)
    if not extended:
        return rows, None
    flats = [_as_torch(t).detach().reshape(-1).to(torch.float64) for t in tensors]
    everything = (
        torch.cat(flats) if flats else torch.zeros(0, dtype=torch.float64, device=rows.device)
    )
    ext = torch.tensor(
        [_extended_row(x) for x in [*flats, everything]], dtype=torch.float64, device=rows.device
    )
    hist = torch.stack([exponent_histogram(x) for x in [*flats, everything]]).to(rows.device)
    return torch.cat([rows, ext], dim=1), hist


def stats_buffer(
    tensors: Sequence[Any],
    row_lens: Sequence[int] | None = None,
    dormant_threshold: float = 0.0,
) -> Any:
    """The ``[n + 1, NUM_COLUMNS]`` float64 buffer of the fused kernel, last row global.

    Computed on the inputs' device (CPU for numpy inputs).

    Example:
        >>> import torch
        >>> buf = stats_buffer([torch.tensor([1.0, -3.0]), torch.tensor([float("inf")])])
        >>> buf[-1, COLUMN_INDEX["abs_max"]].item(), buf[-1, COLUMN_INDEX["n_inf"]].item()
        (3.0, 1.0)
    """
    import torch

    flats = [_as_torch(t).detach().reshape(-1).to(torch.float64) for t in tensors]
    device = flats[0].device if flats else torch.device("cpu")
    lens = list(row_lens) if row_lens is not None else [0] * len(flats)
    rows = [_row(x, r, dormant_threshold) for x, r in zip(flats, lens, strict=True)]
    everything = torch.cat(flats) if flats else torch.zeros(0, dtype=torch.float64, device=device)
    global_row = _row(everything, 0, dormant_threshold)
    global_row[COLUMN_INDEX["n_dormant_rows"]] = float(
        sum(r[COLUMN_INDEX["n_dormant_rows"]] for r in rows)
    )
    return torch.tensor([*rows, global_row], dtype=torch.float64, device=device)


def tensor_stats(tensors: Sequence[Any]) -> dict[str, float]:
    """Global statistics of ``tensors`` as a dict (the reference of ``TensorStats.global_``).

    Example:
        >>> import torch
        >>> tensor_stats([torch.tensor([3.0, 4.0])])["norm"]
        5.0
    """
    row = stats_buffer(tensors)[-1].tolist()
    return {name: row[COLUMN_INDEX[name]] for name in FIELDS}
