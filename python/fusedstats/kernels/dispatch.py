"""The choice of kernel, and the buffers it writes.

CPU tensors and numpy arrays run fusedstats._core; CUDA tensors run fusedstats._cuda
(cuda_path.py) when it is built and usable, else the exact pure-torch fallback on the
device (fallback.py: one device-to-host copy a call; mergeable records: the CPU core
on a host copy). Validation is in inputs.py.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .. import _native
from . import cuda_path
from .columns import HIST_BINS, NUM_COLUMNS, NUM_EXTENDED_COLUMNS
from .inputs import Prepared, torch_module

_log = logging.getLogger("fusedstats")


def width(extended: bool) -> int:
    return NUM_EXTENDED_COLUMNS if extended else NUM_COLUMNS


def record_bytes(extended: bool) -> int:
    """Bytes of one tensor's mergeable record (the C++ Partial or ExtRecord)."""
    return int(_native.core.record_bytes(extended))


def _empty(prep_kind: str, device: Any, shape: tuple[int, ...], dtype_name: str) -> Any:
    if prep_kind == "numpy":
        return np.empty(shape, dtype=np.dtype(dtype_name))
    torch = torch_module()
    assert torch is not None
    return torch.empty(shape, dtype=getattr(torch, dtype_name), device=device)


def new_output(prep: Prepared, extended: bool) -> Any:
    """An uninitialized [n + 1, width] float64 buffer on the inputs' device."""
    return _empty(prep.kind, prep.device, (len(prep.ptrs) + 1, width(extended)), "float64")


def new_histogram(prep: Prepared) -> Any:
    """An uninitialized [n + 1, HIST_BINS] int64 buffer on the inputs' device."""
    return _empty(prep.kind, prep.device, (len(prep.ptrs) + 1, HIST_BINS), "int64")


def new_records(prep: Prepared, n: int, extended: bool) -> Any:
    """An uninitialized byte buffer for n records on the inputs' device."""
    return _empty(prep.kind, prep.device, (n, record_bytes(extended)), "uint8")


def check_buffer(
    prep: Prepared, buf: Any, shape: tuple[int, ...], dtype_name: str, what: str
) -> None:
    """ValueError unless ``buf`` is a writable contiguous buffer of this shape and dtype
    of the inputs' kind and device."""
    torch = torch_module()
    if isinstance(buf, np.ndarray):
        ok = (
            prep.kind == "numpy"
            and buf.shape == shape
            and buf.dtype == np.dtype(dtype_name)
            and buf.flags.c_contiguous
            and buf.flags.writeable
        )
    elif torch is not None and isinstance(buf, torch.Tensor):
        ok = (
            prep.kind != "numpy"
            and type(buf) in (torch.Tensor, torch.nn.Parameter)
            and tuple(buf.shape) == shape
            and buf.dtype == getattr(torch, dtype_name)
            and buf.device == prep.device
            and buf.is_contiguous()
            and buf.data_ptr() != 0
            and (buf.storage_offset() + buf.numel()) * buf.element_size()
            <= buf.untyped_storage().nbytes()
        )
    else:
        ok = False
    if not ok:
        raise ValueError(
            f"{what} must be a contiguous {dtype_name} buffer of shape {shape} of the inputs' "
            f"kind and device ({prep.kind}, {prep.device})"
        )


def check_output(prep: Prepared, out: Any, extended: bool) -> None:
    check_buffer(prep, out, (len(prep.ptrs) + 1, width(extended)), "float64", "out")


def check_histogram(prep: Prepared, hist: Any) -> None:
    check_buffer(prep, hist, (len(prep.ptrs) + 1, HIST_BINS), "int64", "hist_out")


def output_buffers(prep: Prepared, extended: bool, out: Any, hist_out: Any) -> tuple[Any, Any]:
    """(rows buffer, histogram buffer or None) for a call: the caller's, checked, or new."""
    if out is None:
        out = new_output(prep, extended)
    else:
        check_output(prep, out, extended)
    if not extended:
        return out, None
    if hist_out is None:
        return out, new_histogram(prep)
    check_histogram(prep, hist_out)
    return out, hist_out


def ptr(buf: Any) -> int:
    if buf is None:
        return 0
    if isinstance(buf, np.ndarray):
        return int(buf.ctypes.data)
    return int(buf.data_ptr())


def run(
    prep: Prepared, out: Any, hist: Any, dormant_threshold: float, extended: bool
) -> tuple[str, Any]:
    """Fills ``out`` (and ``hist`` when extended); returns (path, event): which path ran
    ("cpu", "cuda" or "torch") and, on CUDA, an event recorded after the launch."""
    if prep.kind == "cuda":
        if cuda_path.available():
            try:
                return "cuda", cuda_path.tensor_stats(prep, out, hist, dormant_threshold, extended)
            except cuda_path.CudaUnusable:
                pass  # said once by cuda_path; fall through to the torch path
        else:
            _say_no_cuda_once()
        torch_path(prep, out, hist, dormant_threshold, extended)
        return "torch", None
    _native.core.tensor_stats(
        prep.ptrs,
        prep.numels,
        prep.dtypes,
        prep.row_lens,
        dormant_threshold,
        ptr(out),
        extended,
        ptr(hist),
    )
    return "cpu", None


def torch_path(
    prep: Prepared, out: Any, hist: Any, dormant_threshold: float, extended: bool
) -> None:
    """Fills ``out`` (and ``hist``) with the exact pure-torch code of fallback.py, on the
    tensors' device: what CUDA tensors get without a usable ``_cuda``."""
    from . import fallback

    rows, counts = fallback.stats_buffers(prep.keep, prep.row_lens, dormant_threshold, extended)
    out.copy_(rows)
    if extended:
        hist.copy_(counts)


def records(
    prep: Prepared, dormant_threshold: float, extended: bool, buf: Any, accumulate: bool
) -> None:
    """Per-tensor mergeable records of ``prep`` into ``buf`` ([n, record_bytes] uint8 on
    the inputs' device); with ``accumulate`` merged into what ``buf`` holds."""
    core = _native.core
    if prep.kind != "cuda":
        core.tensor_records(
            prep.ptrs,
            prep.numels,
            prep.dtypes,
            prep.row_lens,
            dormant_threshold,
            extended,
            ptr(buf),
            accumulate,
        )
        return
    if cuda_path.available():
        try:
            cuda_path.tensor_records(prep, dormant_threshold, extended, buf, accumulate)
            return
        except cuda_path.CudaUnusable:
            pass
    # No usable _cuda: the CPU core on a host copy (one transfer each way).
    host = [t.cpu() for t in prep.keep]
    acc = buf.cpu()
    core.tensor_records(
        [t.data_ptr() for t in host],
        prep.numels,
        prep.dtypes,
        prep.row_lens,
        dormant_threshold,
        extended,
        acc.data_ptr(),
        accumulate,
    )
    buf.copy_(acc)


def finalize(records_buf: Any, n: int, extended: bool, out: Any, hist: Any) -> None:
    """Rows (and histograms) of ``n`` records into ``out`` (and ``hist``), same device."""
    torch = torch_module()
    core = _native.core
    on_cuda = torch is not None and isinstance(records_buf, torch.Tensor) and records_buf.is_cuda
    if not on_cuda:
        core.finalize_records(ptr(records_buf), n, extended, ptr(out), ptr(hist) if extended else 0)
        return
    if cuda_path.available():
        try:
            cuda_path.finalize_records(records_buf, n, extended, out, hist)
            return
        except cuda_path.CudaUnusable:
            pass
    host_out = out.cpu()
    host_hist = hist.cpu() if extended else None
    core.finalize_records(
        records_buf.cpu().data_ptr(), n, extended, host_out.data_ptr(), ptr(host_hist)
    )
    out.copy_(host_out)
    if extended:
        hist.copy_(host_hist)


def merge(src: Any, n_sources: int, n: int, extended: bool, include: Any, dst: Any) -> None:
    """dst[t] = src[s][t] merged over s in order where include[s][t] (same device)."""
    torch = torch_module()
    core = _native.core
    on_cuda = torch is not None and isinstance(src, torch.Tensor) and src.is_cuda
    if not on_cuda:
        core.merge_records(ptr(src), n_sources, n, extended, ptr(include), ptr(dst))
        return
    if cuda_path.available():
        try:
            cuda_path.merge_records(src, n_sources, n, extended, include, dst)
            return
        except cuda_path.CudaUnusable:
            pass
    host_src, host_dst = src.cpu(), dst.cpu()
    host_inc = include.cpu() if include is not None else None
    core.merge_records(
        host_src.data_ptr(), n_sources, n, extended, ptr(host_inc), host_dst.data_ptr()
    )
    dst.copy_(host_dst)


_said_no_cuda = False


def _say_no_cuda_once() -> None:
    global _said_no_cuda  # noqa: PLW0603
    if not _said_no_cuda:
        _said_no_cuda = True
        _log.info(
            "fusedstats: CUDA tensors but fusedstats._cuda is not built; using the torch path"
        )
