"""The CUDA path: chunk tables and workspaces of fusedstats._cuda, launched on the
caller's current stream with no host sync.

Interface used by dispatch.py (all on the current stream of the inputs' device):
``available()``, ``tensor_stats(prep, out, hist, dormant_threshold, extended)``,
``tensor_records(prep, dormant_threshold, extended, records, accumulate)``,
``finalize_records(records, n, extended, out, hist)``,
``merge_records(src, n_sources, n, extended, include, dst)``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from .. import _native
from .inputs import Prepared, torch_module


class CudaUnusable(RuntimeError):
    """fusedstats._cuda cannot run on this machine (e.g. a driver older than the
    toolkit it was built with, or a GPU it has no code for): the caller falls back."""


def available() -> bool:
    """True when CUDA tensors can run fusedstats._cuda."""
    torch = torch_module()
    return _native.cuda() is not None and torch is not None and torch.cuda.is_available()


def tensor_stats(
    prep: Prepared, out: Any, hist: Any, dormant_threshold: float, extended: bool
) -> Any:
    """Fills ``out`` (and ``hist`` when extended); returns an event recorded after the
    launch, or None."""
    if extended:
        raise NotImplementedError("the extended pass is not yet on the CUDA path")
    _run_cuda(_native.cuda(), prep, out, dormant_threshold)
    return None


def tensor_records(
    prep: Prepared, dormant_threshold: float, extended: bool, records: Any, accumulate: bool
) -> None:
    raise NotImplementedError("records are not yet on the CUDA path")


def finalize_records(records: Any, n: int, extended: bool, out: Any, hist: Any) -> None:
    raise NotImplementedError("records are not yet on the CUDA path")


def merge_records(src: Any, n_sources: int, n: int, extended: bool, include: Any, dst: Any) -> None:
    raise NotImplementedError("records are not yet on the CUDA path")


# ---- CUDA: chunk table and workspace cached per (device, stream, tensor list) ----------

_CUDA_CACHE_SIZE = 32
_cuda_cache: OrderedDict[tuple[Any, ...], tuple[Any, Any, int]] = OrderedDict()
_cuda_cache_lock = threading.Lock()


def _run_cuda(cuda_ext: Any, prep: Prepared, out: Any, dormant_threshold: float) -> None:
    torch = torch_module()
    assert torch is not None
    device = prep.device
    index = device.index if device.index is not None else torch.cuda.current_device()
    stream = torch.cuda.current_stream(index)
    # Same pointers, sizes and dtypes -> same table: a hit launches with no allocation
    # and no copy (and so can be captured in a CUDA graph after one warm-up call).
    key = (
        index,
        stream.cuda_stream,
        tuple(prep.ptrs),
        tuple(prep.numels),
        tuple(prep.dtypes),
        tuple(prep.row_lens),
    )
    with _cuda_cache_lock:
        entry = _cuda_cache.get(key)
        if entry is not None:
            _cuda_cache.move_to_end(key)
    if entry is None:
        table, n_chunks = cuda_ext.plan(prep.ptrs, prep.numels, prep.dtypes, prep.row_lens)
        host = torch.frombuffer(bytearray(table), dtype=torch.uint8).pin_memory()
        with torch.cuda.stream(stream):
            table_dev = host.to(torch.device("cuda", index), non_blocking=True)
            workspace = torch.zeros(
                cuda_ext.workspace_bytes(n_chunks, len(prep.ptrs)),
                dtype=torch.uint8,
                device=torch.device("cuda", index),
            )
        entry = (table_dev, workspace, n_chunks)
        with _cuda_cache_lock:
            _cuda_cache[key] = entry
            while len(_cuda_cache) > _CUDA_CACHE_SIZE:
                _cuda_cache.popitem(last=False)
    table_dev, workspace, n_chunks = entry
    cuda_ext.launch(
        index,
        table_dev.data_ptr(),
        n_chunks,
        len(prep.ptrs),
        any(prep.row_lens),
        workspace.data_ptr(),
        dormant_threshold,
        out.data_ptr(),
        stream.cuda_stream,
    )
