from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray
from typing_extensions import Buffer as _Buffer

# A contiguous buffer: bytes, array.array, or a numpy array (its stubs do not declare
# the buffer protocol).
_Buf = _Buffer | npt.NDArray[np.generic]

COLUMNS: tuple[str, ...]
NUM_COLUMNS: int
EXTENDED_COLUMNS: tuple[str, ...]
NUM_EXT_COLUMNS: int
HIST_BINS: int
HIST_MIN_EXP: int
HIST_MAX_EXP: int
DTYPE_CODES: dict[str, int]
SERIES_OPS: dict[str, int]

def tensor_stats(
    ptrs: Sequence[int],
    numels: Sequence[int],
    dtypes: Sequence[int],
    row_lens: Sequence[int],
    dormant_threshold: float,
    out_ptr: int,
    extended: bool = False,
    hist_ptr: int = 0,
) -> None: ...
def tensor_records(
    ptrs: Sequence[int],
    numels: Sequence[int],
    dtypes: Sequence[int],
    row_lens: Sequence[int],
    dormant_threshold: float,
    extended: bool,
    records_ptr: int,
    accumulate: bool,
) -> None: ...
def finalize_records(
    records_ptr: int, n: int, extended: bool, out_ptr: int, hist_ptr: int = 0
) -> None: ...
def merge_records(
    src_ptr: int, n_sources: int, n: int, extended: bool, include_ptr: int, dst_ptr: int
) -> None: ...
def unit_abs_sums(
    data_ptr: int, dtype: int, before: int, units: int, after: int, acc_ptr: int
) -> None: ...
def record_bytes(extended: bool) -> int: ...
def series_reduce(series: list[Sequence[Any]], ops: _Buf, ema_coeffs: _Buf) -> list[Any]: ...
def series_percentiles(
    series: Sequence[Sequence[float]], q: Sequence[Sequence[float]]
) -> list[float]: ...
def series_merge_parallel(
    series: list[Sequence[Any]], group_first: _Buf, ops: _Buf, windows: _Buf
) -> list[list[Any]]: ...
def series_merge_blocks(
    blocks: list[_Buf], index: _Buf, ops: _Buf, windows: _Buf
) -> list[list[Any]]: ...
def series_flatten(series: list[Sequence[Any]]) -> tuple[bytes, list[int], bytes]: ...
def numbers_flatten(items: list[Any]) -> tuple[bytes, bytes]: ...
def gather_scalars(table: _Buf) -> list[float]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def simd_levels() -> list[str]: ...
def simd_level() -> str: ...
def set_simd_level(name: str) -> bool: ...
def build_info() -> dict[str, Any]: ...

class InfoFlattener:
    def __init__(
        self, classify_type: Callable[[type], int], leaf_array: Callable[[Any], Any]
    ) -> None: ...
    def walk(self, infos: Iterable[Any]) -> list[Any]: ...
    def finish(
        self, host: _Buf | None, lengths: Sequence[int] | None
    ) -> tuple[
        NDArray[np.int64], NDArray[np.float64], list[str], list[tuple[int, str, str, str]]
    ]: ...
    def intern(self, path: str) -> int: ...
    def forget(self, keep_periods: int) -> int: ...
    @property
    def ids(self) -> dict[str, int]: ...
    @property
    def names(self) -> list[str]: ...
    @property
    def node_count(self) -> int: ...
