# The CUDA kernels run on the host (tests only): the functions of fusedstats._cuda on
# host pointers, plus what the tests read.
from collections.abc import Sequence

UNUSABLE_CODES: tuple[int, ...]
CHUNK_ELEMS: int
THREADS: int
SPAN_MAX_CANCEL: float
SPAN_EXT_MAX_CANCEL: float

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
    rearm: bool = True,
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
def span_outcomes() -> dict[str, int]: ...
def reset_span_outcomes() -> None: ...
