from collections.abc import Sequence
from typing import Any

UNUSABLE_CODES: list[int]

def plan(
    ptrs: Sequence[int], numels: Sequence[int], dtypes: Sequence[int], row_lens: Sequence[int]
) -> tuple[bytes, int]: ...
def workspace_bytes(n_chunks: int, n_tensors: int, extended: bool) -> int: ...
def finalize_workspace_bytes(extended: bool) -> int: ...
def launch_stats(
    table_ptr: int,
    n_chunks: int,
    n_tensors: int,
    has_rows: bool,
    extended: bool,
    workspace_ptr: int,
    dormant_threshold: float,
    out_ptr: int,
    hist_ptr: int,
    stream: int,
) -> int: ...
def launch_records(
    table_ptr: int,
    n_chunks: int,
    n_tensors: int,
    has_rows: bool,
    extended: bool,
    workspace_ptr: int,
    dormant_threshold: float,
    records_ptr: int,
    accumulate: bool,
    stream: int,
) -> int: ...
def launch_finalize(
    records_ptr: int,
    n: int,
    extended: bool,
    workspace_ptr: int,
    out_ptr: int,
    hist_ptr: int,
    stream: int,
) -> int: ...
def launch_merge(
    src_ptr: int,
    n_sources: int,
    n: int,
    extended: bool,
    include_ptr: int,
    dst_ptr: int,
    stream: int,
) -> int: ...
def probe() -> int: ...
def error_string(code: int) -> str: ...
def gather_scalars(table_ptr: int, n: int, out_ptr: int, stream: int) -> None: ...
def build_info() -> dict[str, Any]: ...
