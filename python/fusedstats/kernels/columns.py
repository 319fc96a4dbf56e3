"""Names of the statistics, in the column order of the kernels' output buffer.

The meaning of every column is in docs/tensor_stats.md; the C++ side
(csrc/include/fusedstats/stats.h) exports the same names and tests check they agree.
"""

from __future__ import annotations

#: Statistics of tensor_stats, in buffer column order.
FIELDS: tuple[str, ...] = (
    "numel",
    "n_nan",
    "n_inf",
    "n_zero",
    "n_finite",
    "sum",
    "mean",
    "var",
    "var_pop",
    "std",
    "min",
    "max",
    "abs_max",
    "l1",
    "norm",
)

#: Every column of the buffer: FIELDS, then the dormant-row count used by weight_stats.
COLUMNS: tuple[str, ...] = (*FIELDS, "n_dormant_rows")
NUM_COLUMNS = len(COLUMNS)
COLUMN_INDEX = {name: i for i, name in enumerate(COLUMNS)}

#: Low-precision formats whose range health the extended pass reports.
FORMATS: tuple[str, ...] = ("bf16", "fp16", "e4m3", "e5m2")

#: The extended statistics (``extended=True``), after COLUMNS in the buffer.
EXTENDED_FIELDS: tuple[str, ...] = (
    "kurtosis",
    "min_abs_nonzero",
    "dynamic_range_log2",
    *(f"{kind}_{fmt}" for fmt in FORMATS for kind in ("underflow", "overflow")),
)
EXTENDED_COLUMNS: tuple[str, ...] = (*COLUMNS, *EXTENDED_FIELDS)
NUM_EXTENDED_COLUMNS = len(EXTENDED_COLUMNS)
EXTENDED_COLUMN_INDEX = {name: i for i, name in enumerate(EXTENDED_COLUMNS)}

#: Exponent histogram (``TensorStats.exponent_histogram``, extended pass): bin 0 counts
#: zeros, bin 1 nonzero |x| < 2**-149, bin ``e + HIST_BIN_OFFSET`` the elements with
#: floor(log2|x|) == e for e in [HIST_MIN_EXP, HIST_MAX_EXP] (the float32 range,
#: subnormals included), and the last bin |x| >= 2**128. Finite elements only.
HIST_MIN_EXP = -149
HIST_MAX_EXP = 127
HIST_BIN_OFFSET = 2 - HIST_MIN_EXP
HIST_BINS = HIST_BIN_OFFSET + HIST_MAX_EXP + 2


def hist_bin_exponents() -> list[int | None]:
    """For each histogram bin, the exponent e = floor(log2|x|) it counts (None for the
    zeros, below-range and above-range bins).

    Example:
        >>> edges = hist_bin_exponents()
        >>> len(edges), edges[:3], edges[-2:]
        (280, [None, None, -149], [127, None])
    """
    out: list[int | None] = [None] * HIST_BINS
    for e in range(HIST_MIN_EXP, HIST_MAX_EXP + 1):
        out[e + HIST_BIN_OFFSET] = e
    return out


def columns_for(extended: bool) -> tuple[str, ...]:
    """The buffer's columns with or without the extended statistics."""
    return EXTENDED_COLUMNS if extended else COLUMNS
