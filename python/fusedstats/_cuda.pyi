from collections.abc import Sequence
from typing import Any

def plan(
    ptrs: Sequence[int], numels: Sequence[int], dtypes: Sequence[int], row_lens: Sequence[int]
) -> tuple[bytes, int]: ...
def workspace_bytes(n_chunks: int, n_tensors: int) -> int: ...
def launch(
    device: int,
    table_ptr: int,
    n_chunks: int,
    n_tensors: int,
    has_rows: bool,
    workspace_ptr: int,
    dormant_threshold: float,
    out_ptr: int,
    stream: int,
) -> None: ...
def gather_scalars(table_ptr: int, n: int, out_ptr: int, stream: int) -> None: ...
def build_info() -> dict[str, Any]: ...
