"""Mergeable statistics accumulated with torch ops on the tensors' device.

Used where the fused kernel cannot write mergeable records on the device yet (CUDA
while ``fusedstats._cuda`` has no records entry point): the same state the C++
``Partial``/``ExtRecord`` carries (counts, sum, l1, Σx², mean, M2, M3, M4, min, max,
smallest nonzero |x|, per-format overflow counts, exponent histogram), computed per
call with a few reductions and merged with Chan's and Pébay's formulas, all on the
device with no host sync. :func:`pack_records` lays the state out as the kernel's
records (a documented wire format of plain 8-byte words, ``csrc/include/fusedstats/
stats.h``) so that the core's own ``finalize_records`` turns them into rows: the
columns mean exactly what ``tensor_stats`` says they mean.

Slower than the kernel (about a dozen passes over each tensor instead of one); tests
compare it with the kernel's records on the CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..kernels.columns import FORMATS, HIST_BIN_OFFSET, HIST_BINS, HIST_MAX_EXP, HIST_MIN_EXP
from ..kernels.reference import FORMAT_MAX

# Columns of the float64 state (one row per accumulated slot).
# Laid out so that what merges by addition, by Pébay's formulas and by min/max each
# sits in one slice (slices, not index lists: an index list is a host-to-device copy).
NUMEL, N_NAN, N_INF, N_ZERO, N_FINITE, SUM, L1, SUMSQ = range(8)
ADDED = slice(0, 8)
MEAN, M2, M3, M4 = range(8, 12)
MOMENTS = slice(8, 12)
MIN, MAX, MIN_ABS = 12, 13, 14
OVER = 15  # OVER + f: elements above format f's largest finite value
STATE_WIDTH = OVER + len(FORMATS)

# The kernel's record: Partial (6 int64 counts, 8 doubles), then with extended
# ExtPartial (3 doubles, one int64 per format) and the histogram (int64 per bin).
_PARTIAL_WORDS = 14
_EXT_WORDS = 3 + len(FORMATS)


def record_words(extended: bool) -> int:
    """8-byte words of one record (must equal ``record_bytes(extended) / 8``)."""
    return _PARTIAL_WORDS + (_EXT_WORDS + HIST_BINS if extended else 0)


def empty_state(n: int, device: Any) -> Any:
    """``[n, STATE_WIDTH]`` float64 zeros with min/max/min_abs at their identities."""
    import torch

    state = torch.zeros(n, STATE_WIDTH, dtype=torch.float64, device=device)
    state[:, MIN] = float("inf")
    state[:, MAX] = float("-inf")
    state[:, MIN_ABS] = float("inf")
    return state


def partial(x: Any, extended: bool, hist: Any = None) -> Any:
    """The state of one tensor (``[STATE_WIDTH]`` float64 on its device); with
    ``extended``, its exponent histogram is added to ``hist`` (int64, HIST_BINS)."""
    import torch

    v = x.detach().reshape(-1).to(torch.float64)
    finite = torch.isfinite(v)
    n_finite = finite.sum(dtype=torch.float64)
    n = n_finite.clamp_min(1.0)
    xf = torch.where(finite, v, torch.zeros((), dtype=torch.float64, device=v.device))
    total = xf.sum()
    # The mean from x/n when the plain sum overflowed (data near the float64 limits).
    mean = torch.where(torch.isfinite(total), total / n, (xf / n).sum())
    d = torch.where(finite, v - mean, torch.zeros((), dtype=torch.float64, device=v.device))
    d2 = d * d
    a = xf.abs()
    inf = torch.full((), float("inf"), dtype=torch.float64, device=v.device)
    parts = [
        torch.full((), float(v.numel()), dtype=torch.float64, device=v.device),
        torch.isnan(v).sum(dtype=torch.float64),
        torch.isinf(v).sum(dtype=torch.float64),
        (v == 0).sum(dtype=torch.float64),
        n_finite,
        total,
        a.sum(),
        (xf * xf).sum(),
        mean,
        d2.sum(),
    ]
    zero = torch.zeros((), dtype=torch.float64, device=v.device)
    if extended:
        nonzero = finite & (v != 0)
        parts += [(d2 * d).sum(), (d2 * d2).sum()]
    else:
        parts += [zero, zero]
    parts += [
        torch.where(finite, v, inf).amin() if v.numel() else inf,
        torch.where(finite, v, -inf).amax() if v.numel() else -inf,
    ]
    if extended:
        parts.append(torch.where(nonzero, a, inf).amin() if v.numel() else inf)
        parts += [(a > FORMAT_MAX[f]).sum(dtype=torch.float64) for f in FORMATS]
        if hist is not None and v.numel():
            exponent = torch.frexp(a).exponent.to(torch.int64) - 1  # |x| = m 2^e, m in [1, 2)
            bins = torch.where(
                exponent < HIST_MIN_EXP,
                torch.ones_like(exponent),
                torch.where(
                    exponent > HIST_MAX_EXP,
                    torch.full_like(exponent, HIST_BINS - 1),
                    exponent + HIST_BIN_OFFSET,
                ),
            )
            bins = torch.where(nonzero, bins, torch.zeros_like(bins))  # zeros: bin 0
            hist.scatter_add_(0, bins, finite.to(torch.int64))  # non-finite: not counted
    else:
        parts += [inf] + [zero] * len(FORMATS)
    return torch.stack(parts)


def merge_into(acc: Any, part: Any) -> None:
    """``acc <- union(acc, part)`` for two ``[STATE_WIDTH]`` states on one device (in place).

    Chan's update of the mean and M2, Pébay's of M3 and M4 (with fa = na/n, fb = nb/n
    as in the kernel, so no term is formed from huge products); a side with no finite
    element contributes only its counts."""
    import torch

    na, nb = acc[N_FINITE], part[N_FINITE]
    n = (na + nb).clamp_min(1.0)
    fa, fb = na / n, nb / n
    delta = part[MEAN] - acc[MEAN]
    d2 = delta * delta
    mean = acc[MEAN] + delta * fb
    m2 = acc[M2] + part[M2] + d2 * na * fb
    m3 = (
        acc[M3]
        + part[M3]
        + d2 * delta * na * fb * (fa - fb)
        + 3.0 * delta * (fa * part[M2] - fb * acc[M2])
    )
    m4 = (
        acc[M4]
        + part[M4]
        + d2 * d2 * na * fb * (fa * fa - fa * fb + fb * fb)
        + 6.0 * d2 * (fa * fa * part[M2] + fb * fb * acc[M2])
        + 4.0 * delta * (fa * part[M3] - fb * acc[M3])
    )
    both = torch.stack([mean, m2, m3, m4])
    moments = torch.where(nb == 0, acc[MOMENTS], torch.where(na == 0, part[MOMENTS], both))
    lowest = torch.minimum(acc[MIN], part[MIN])
    highest = torch.maximum(acc[MAX], part[MAX])
    lowest_abs = torch.minimum(acc[MIN_ABS], part[MIN_ABS])
    # Everything above read acc before any of it is written.
    acc[MOMENTS] = moments
    acc[ADDED] += part[ADDED]
    acc[MIN] = lowest
    acc[MAX] = highest
    acc[MIN_ABS] = lowest_abs
    acc[OVER:] += part[OVER:]


def pack_records(state: np.ndarray[Any, Any], hist: Any, extended: bool) -> np.ndarray[Any, Any]:
    """Host ``[n, STATE_WIDTH]`` states (and ``[n, HIST_BINS]`` histograms) as the
    kernel's ``[n, record_bytes]`` uint8 records (shift 0, mean absolute)."""
    n = state.shape[0]
    words = np.zeros((n, record_words(extended)), dtype=np.int64)
    as_float = words.view(np.float64)
    for i, col in enumerate((NUMEL, N_NAN, N_INF, N_ZERO, N_FINITE)):
        words[:, i] = state[:, col].astype(np.int64)
    # words[:, 5] = n_dormant: 0 (activations have no dormant rows)
    for i, col in enumerate((SUM, L1, SUMSQ)):
        as_float[:, 6 + i] = state[:, col]
    as_float[:, 9] = 0.0  # shift
    as_float[:, 10] = state[:, MEAN]
    as_float[:, 11] = state[:, M2]
    as_float[:, 12] = state[:, MIN]
    as_float[:, 13] = state[:, MAX]
    if extended:
        as_float[:, 14] = state[:, M3]
        as_float[:, 15] = state[:, M4]
        as_float[:, 16] = state[:, MIN_ABS]
        for f in range(len(FORMATS)):
            words[:, 17 + f] = state[:, OVER + f].astype(np.int64)
        words[:, _PARTIAL_WORDS + _EXT_WORDS :] = hist
    return words.view(np.uint8)
