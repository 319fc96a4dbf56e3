"""From user tensors to kernel descriptors, and the choice of kernel.

Policy lives here (validation, dtype/device checks, contiguous copies, fallbacks,
error messages); the compiled core trusts what it is handed.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _native
from .columns import COLUMNS, NUM_COLUMNS

_log = logging.getLogger("fusedstats")

# dtype codes shared with csrc/include/fusedstats/stats.h (checked against _core.DTYPE_CODES)
DTYPE_CODES = {"float32": 0, "float64": 1, "float16": 2, "bfloat16": 3}


@dataclass
class Prepared:
    """Descriptors of a validated tensor list, ready for a kernel."""

    kind: str  # "numpy", "cpu" (torch on CPU) or "cuda"
    device: Any  # torch.device for torch inputs, None for numpy
    ptrs: list[int] = field(default_factory=list)
    numels: list[int] = field(default_factory=list)
    dtypes: list[int] = field(default_factory=list)
    row_lens: list[int] = field(default_factory=list)
    # the inputs, or their contiguous copies: kept alive until the kernel has read them
    keep: list[Any] = field(default_factory=list)
    n_copied: int = 0  # how many inputs needed a contiguous copy


def _torch() -> Any | None:
    # torch is only ever imported by the caller: if it is not loaded, no item is a tensor.
    return sys.modules.get("torch")


def _label(index: int, names: Sequence[str] | None) -> str:
    if names is not None:
        return f"item {index} ({names[index]!r})"
    return f"item {index}"


_torch_codes: dict[Any, int] = {}


def _torch_dtype_table(torch: Any) -> dict[Any, int]:
    if not _torch_codes:
        _torch_codes.update(
            {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
        )
    return _torch_codes


def _numpy_dtype_code(dtype: np.dtype[Any]) -> int | None:
    return DTYPE_CODES.get(dtype.name)  # ml_dtypes' bfloat16 is named "bfloat16"


def _unsupported_dtype(label: str, dtype: Any) -> TypeError:
    return TypeError(f"{label} has dtype {dtype}; supported: float32, float64, float16, bfloat16")


def _readable_tensor(
    x: Any, i: int, names: Sequence[str] | None, torch: Any
) -> tuple[Any, int, bool]:
    """(tensor whose memory holds its values contiguously, dtype code, copied?)."""
    if x.layout != torch.strided:
        raise TypeError(
            f"{_label(i, names)} is a {x.layout} tensor; only dense tensors are supported"
        )
    code = _torch_dtype_table(torch).get(x.dtype)
    if code is None:
        raise _unsupported_dtype(_label(i, names), x.dtype)
    if x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{_label(i, names)} is on device {x.device}; supported: cpu, cuda")
    x = x.detach()  # no autograd graph for the copies below
    copied = False
    if x.is_neg():  # a lazily negated view: its memory holds -x
        x, copied = x.resolve_neg(), True
    if not x.is_contiguous():
        x, copied = x.contiguous(), True
    return x, code, copied


def _readable_array(
    x: np.ndarray[Any, Any], i: int, names: Sequence[str] | None
) -> tuple[Any, int, bool]:
    """(C-contiguous native-endian array, dtype code, copied?)."""
    code = _numpy_dtype_code(x.dtype)
    if code is None:
        raise _unsupported_dtype(_label(i, names), x.dtype)
    if not x.dtype.isnative:
        return x.astype(x.dtype.newbyteorder("=")), code, True
    if not x.flags.c_contiguous:
        return np.ascontiguousarray(x), code, True
    return x, code, False


def prepare(
    tensors: Iterable[Any],
    names: Sequence[str] | None,
    row_lens: Sequence[int] | None = None,
) -> Prepared:
    """Validates ``tensors`` and returns their descriptors.

    Raises:
        TypeError: not a list of tensors/arrays, or an unsupported dtype (names the item).
        ValueError: names of the wrong length, or items on different devices.
    """
    torch = _torch()
    if isinstance(tensors, np.ndarray) or (torch is not None and isinstance(tensors, torch.Tensor)):
        raise TypeError(
            "tensor_stats expects a list of tensors; got a single "
            f"{type(tensors).__name__}. Wrap it in a list: tensor_stats([x])."
        )
    if isinstance(tensors, (str, bytes, dict)) or not isinstance(tensors, Iterable):
        raise TypeError(
            f"tensor_stats expects a list or tuple of tensors, got {type(tensors).__name__}"
        )
    items = list(tensors)
    if names is not None:
        names = list(names)
        if len(names) != len(items):
            raise ValueError(f"got {len(names)} names for {len(items)} tensors")
    if row_lens is not None and len(row_lens) != len(items):
        raise ValueError(f"got {len(row_lens)} row lengths for {len(items)} tensors")

    prep = Prepared(kind="numpy", device=None)
    tensor_type = torch.Tensor if torch is not None else ()
    codes = _torch_codes if torch is None else _torch_dtype_table(torch)
    strided = torch.strided if torch is not None else None
    first_key: Any = None
    key: Any
    for i, item in enumerate(items):
        if isinstance(item, tensor_type):
            # Hot path, ~0.7 us per tensor: is_cpu/is_cuda cost ~60 ns where
            # tensor.device.type costs ~500 ns (it builds a torch.device).
            if item.is_cpu:
                kind, key = "cpu", "cpu"
            elif item.is_cuda:
                kind, key = "cuda", ("cuda", item.get_device())
            else:
                kind, key = "other", None
            code = codes.get(item.dtype)
            if (
                code is None
                or kind == "other"
                or item.layout is not strided
                or not item.is_contiguous()
                or item.is_neg()
            ):
                x, code, copied = _readable_tensor(item, i, names, torch)
                prep.n_copied += copied
            else:
                x = item
            ptr = x.data_ptr()
            numel = x.numel()
        elif isinstance(item, np.ndarray):
            x, code, copied = _readable_array(item, i, names)
            prep.n_copied += copied
            key, kind = "cpu", "numpy"
            ptr = x.ctypes.data
            numel = x.size
        else:
            raise TypeError(
                f"{_label(i, names)} is a {type(item).__name__}; expected a torch.Tensor or "
                "numpy.ndarray"
            )
        if i == 0:
            first_key = key
            prep.kind = kind
            prep.device = x.device if kind != "numpy" else None
        elif key != first_key:
            raise ValueError(
                f"{_label(i, names)} is on {_device_name(x)} but {_label(0, names)} is on "
                f"{_device_name(items[0])}; all tensors must be on one device"
            )
        elif kind == "cpu" and prep.kind == "numpy":
            prep.kind, prep.device = "cpu", x.device  # torch CPU tensors win the output type
        prep.ptrs.append(ptr)
        prep.numels.append(numel)
        prep.dtypes.append(code)
        prep.keep.append(x)
    prep.row_lens = [0] * len(items) if row_lens is None else [int(r) for r in row_lens]
    return prep


def _device_name(x: Any) -> str:
    return "cpu (numpy)" if isinstance(x, np.ndarray) else str(x.device)


def new_output(prep: Prepared) -> Any:
    """An uninitialized [n + 1, NUM_COLUMNS] float64 buffer on the inputs' device."""
    shape = (len(prep.ptrs) + 1, NUM_COLUMNS)
    if prep.kind == "numpy":
        return np.empty(shape, dtype=np.float64)
    torch = _torch()
    assert torch is not None
    return torch.empty(shape, dtype=torch.float64, device=prep.device)


def check_output(prep: Prepared, out: Any) -> None:
    shape = (len(prep.ptrs) + 1, NUM_COLUMNS)
    torch = _torch()
    if isinstance(out, np.ndarray):
        ok = (
            prep.kind == "numpy"
            and out.shape == shape
            and out.dtype == np.float64
            and out.flags.c_contiguous
            and out.flags.writeable
        )
    elif torch is not None and isinstance(out, torch.Tensor):
        ok = (
            prep.kind != "numpy"
            and tuple(out.shape) == shape
            and out.dtype == torch.float64
            and out.device == prep.device
            and out.is_contiguous()
        )
    else:
        ok = False
    if not ok:
        raise ValueError(
            f"out must be a contiguous float64 buffer of shape {shape} of the inputs' kind "
            f"and device ({prep.kind}, {prep.device})"
        )


def _out_ptr(out: Any) -> int:
    if isinstance(out, np.ndarray):
        return int(out.ctypes.data)
    return int(out.data_ptr())


def run(prep: Prepared, out: Any, dormant_threshold: float) -> str:
    """Fills ``out``; returns which path ran ("cpu", "cuda" or "reference")."""
    if prep.kind == "cuda":
        cuda_ext = _native.cuda()
        torch = _torch()
        assert torch is not None
        if cuda_ext is not None and torch.cuda.is_available():
            _run_cuda(cuda_ext, prep, out, dormant_threshold)
            return "cuda"
        _warn_no_cuda_once()
        from . import reference

        out.copy_(reference.stats_buffer(prep.keep, prep.row_lens, dormant_threshold))
        return "reference"
    core = _native.core()
    core.tensor_stats(
        prep.ptrs, prep.numels, prep.dtypes, prep.row_lens, dormant_threshold, _out_ptr(out)
    )
    return "cpu"


_warned_no_cuda = False


def _warn_no_cuda_once() -> None:
    global _warned_no_cuda  # noqa: PLW0603
    if not _warned_no_cuda:
        _warned_no_cuda = True
        _log.info(
            "fusedstats: CUDA tensors but fusedstats._cuda is not built; using the pure-torch path"
        )


# ---- CUDA: chunk table and workspace cached per (device, stream, tensor list) ----------

_CUDA_CACHE_SIZE = 32
_cuda_cache: OrderedDict[tuple[Any, ...], tuple[Any, Any, int]] = OrderedDict()
_cuda_cache_lock = threading.Lock()


def _run_cuda(cuda_ext: Any, prep: Prepared, out: Any, dormant_threshold: float) -> None:
    torch = _torch()
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


__all__ = ["COLUMNS", "DTYPE_CODES", "Prepared", "check_output", "new_output", "prepare", "run"]
