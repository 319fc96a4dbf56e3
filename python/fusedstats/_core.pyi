from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

COLUMNS: tuple[str, ...]
NUM_COLUMNS: int
DTYPE_CODES: dict[str, int]

def tensor_stats(
    ptrs: Sequence[int],
    numels: Sequence[int],
    dtypes: Sequence[int],
    row_lens: Sequence[int],
    dormant_threshold: float,
    out_ptr: int,
) -> None: ...
def series_reduce(
    values: npt.ArrayLike, offsets: npt.ArrayLike, ops: npt.ArrayLike, ema_coeffs: npt.ArrayLike
) -> npt.NDArray[np.float64]: ...
def series_percentiles(
    values: npt.ArrayLike, offsets: npt.ArrayLike, q: npt.ArrayLike, q_offsets: npt.ArrayLike
) -> npt.NDArray[np.float64]: ...
def series_merge_parallel(
    values: npt.ArrayLike,
    offsets: npt.ArrayLike,
    group_first: npt.ArrayLike,
    ops: npt.ArrayLike,
    windows: npt.ArrayLike,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def simd_levels() -> list[str]: ...
def simd_level() -> str: ...
def set_simd_level(name: str) -> bool: ...
def build_info() -> dict[str, Any]: ...
