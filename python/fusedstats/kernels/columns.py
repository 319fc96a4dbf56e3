"""Names of the statistics, in the column order of the kernels' output buffer."""

from __future__ import annotations

#: Statistics of tensor_stats, in buffer column order (spec/tensor_stats.md).
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
