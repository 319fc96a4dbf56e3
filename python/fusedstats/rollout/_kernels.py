"""Numba kernels of the rollout aggregation (imported lazily: importing numba costs ~0.3 s).

The signatures are explicit, so ``numba.njit`` compiles when this module is imported
(or, with ``cache=True``, loads the machine code from ``__pycache__``): importing it is
the warm-up, and no call inside a training step ever compiles.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numpy.typing import NDArray

# Four partial sums per pass: a single running sum is a chain of dependent adds (4
# cycles each); four chains let the CPU overlap them, and numba may not reorder float
# adds by itself. Partial sums are also a little more accurate than one long chain.
_LANES = 4


def _reduce_segments_py(
    segments: NDArray[np.int64],
    values: NDArray[np.float64],
    count: NDArray[np.int64],
    total: NDArray[np.float64],
    mean: NDArray[np.float64],
    m2: NDArray[np.float64],
    vmin: NDArray[np.float64],
    vmax: NDArray[np.float64],
) -> None:
    """Merges each segment of values into its key's running count, sum, mean, M2, min
    and max. ``segments`` is (4, segments): key id, start, length and stride (a
    segment is ``values[start : start + length * stride : stride]``).

    Each segment is reduced in two passes (sum/min/max, then squared deviations from its
    own mean) and merged with Chan et al.'s formula, so M2 stays accurate when the mean
    is large next to the spread. A NaN propagates through sum, mean and M2 by itself;
    min and max are made NaN too (numpy's rule), looked for only when the sum is NaN.
    """
    for s in range(segments.shape[1]):
        k, start, n, stride = segments[0, s], segments[1, s], segments[2, s], segments[3, s]
        if n == 0:
            continue
        end = start + n * stride
        # First pass: sum, min and max.
        s0 = s1 = s2 = s3 = 0.0
        lo = np.inf
        hi = -np.inf
        i = start
        step = _LANES * stride
        while i + step <= end:
            x0 = values[i]
            x1 = values[i + stride]
            x2 = values[i + 2 * stride]
            x3 = values[i + 3 * stride]
            s0 += x0
            s1 += x1
            s2 += x2
            s3 += x3
            lo = min(lo, x0, x1, x2, x3)
            hi = max(hi, x0, x1, x2, x3)
            i += step
        while i < end:
            x0 = values[i]
            s0 += x0
            lo = min(lo, x0)
            hi = max(hi, x0)
            i += stride
        seg_sum = (s0 + s1) + (s2 + s3)
        if math.isnan(seg_sum):  # a NaN went in (or inf - inf): min and max are NaN if any
            for i in range(start, end, stride):
                if math.isnan(values[i]):
                    lo = hi = np.nan
                    break
        seg_mean = seg_sum / n
        # Second pass: squared deviations from the segment's own mean.
        s0 = s1 = s2 = s3 = 0.0
        i = start
        while i + step <= end:
            d0 = values[i] - seg_mean
            d1 = values[i + stride] - seg_mean
            d2 = values[i + 2 * stride] - seg_mean
            d3 = values[i + 3 * stride] - seg_mean
            s0 += d0 * d0
            s1 += d1 * d1
            s2 += d2 * d2
            s3 += d3 * d3
            i += step
        while i < end:
            d0 = values[i] - seg_mean
            s0 += d0 * d0
            i += stride
        seg_m2 = (s0 + s1) + (s2 + s3)

        old = count[k]
        new = old + n
        if old == 0:
            mean[k] = seg_mean
            m2[k] = seg_m2
            vmin[k] = lo
            vmax[k] = hi
        else:
            delta = seg_mean - mean[k]
            mean[k] += delta * (n / new)
            m2[k] += seg_m2 + delta * delta * (old * (n / new))
            # NaN sticks: comparisons with NaN are false, so test it explicitly.
            if math.isnan(lo) or math.isnan(vmin[k]):
                vmin[k] = np.nan
                vmax[k] = np.nan
            else:
                vmin[k] = min(vmin[k], lo)
                vmax[k] = max(vmax[k], hi)
        count[k] = new
        total[k] += seg_sum


_I64 = "int64[::1]"
_F64 = "float64[::1]"
_SIGNATURE = f"void(int64[:, ::1], {_F64}, {_I64}, {_F64}, {_F64}, {_F64}, {_F64}, {_F64})"

# Not a decorator: numba is untyped for mypy, and an untyped decorator would make the
# function untyped too. cache=True keys the on-disk cache on this file and the name.
reduce_segments = numba.njit(_SIGNATURE, cache=True, nogil=True)(_reduce_segments_py)
