"""Logged one-element tensors to float64 in one native gather per device.

The compiled core reads a table of (data pointer, element type) entries, one per value
(``csrc/include/fusedstats/scalars.h``): on the CPU ``fusedstats._core.gather_scalars``
reads the host pointers directly; on a GPU ``fusedstats._cuda.gather_scalars`` is one
kernel launch over the table (copied to the device) that writes a float64 buffer on
the device, on the current stream, and the caller copies that buffer to the host once.
No torch call per value on the reduce path: each tensor is looked at once here (dtype,
one element, its storage), a few hundred nanoseconds.

Memory safety, the rule of the tensor-stats kernels: a pointer reaches the core only
for a plain, strided ``torch.Tensor`` (not a subclass: it could misreport) of a type
the core reads, with one element, whose storage holds that element *now* (storage
bytes against offset and size: a storage resized away, as FSDP does, or a tensor
without data, meta or fake, is never read). Anything else takes the plain torch path
(one ``.to(float64)`` per value, then a stack), as before this module.

The CUDA path is compiled and written to the CUDA runtime's rules, but has not yet
run on a GPU (none was lent to this project's sessions): see README "On GPU".
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from .. import _native

# ScalarType codes of scalars.h and element sizes, by torch dtype (filled on first use:
# torch is never imported here).
_TYPES: dict[Any, tuple[int, int]] = {}


def _types(torch: Any) -> dict[Any, tuple[int, int]]:
    if not _TYPES:
        _TYPES.update(
            {
                torch.float32: (0, 4),
                torch.float64: (1, 8),
                torch.float16: (2, 2),
                torch.bfloat16: (3, 2),
                torch.int8: (4, 1),
                torch.uint8: (5, 1),
                torch.int16: (6, 2),
                torch.int32: (7, 4),
                torch.int64: (8, 8),
                torch.bool: (9, 1),
            }
        )
    return _TYPES


def scalar_ref(torch: Any, t: Any) -> tuple[int, int] | None:
    """(data pointer, ScalarType) of a one-element tensor the core may read, or None for
    one it may not (see the module's memory-safety rule), which takes the torch path.

    Raises:
        ValueError: a plain tensor whose storage no longer holds its element (freed or
            shrunk after it was logged, as FSDP frees shards): no path may read it
            (torch itself crashes the process on it).
    """
    cls = t.__class__
    if (cls is not torch.Tensor and cls is not torch.nn.Parameter) or t.is_meta:
        return None  # a subclass may misreport; meta has no data: torch's business
    if t.layout is not torch.strided:
        return None
    kind = _types(torch).get(t.dtype)
    try:
        if t.dim() != 0 and t.numel() != 1:
            return None
        offset = t.storage_offset()
        nbytes = t.untyped_storage().nbytes()
        ptr = t.data_ptr()
    except (RuntimeError, NotImplementedError, TypeError):  # no storage to ask
        return None
    size = kind[1] if kind is not None else t.element_size()
    if not ptr or (offset + 1) * size > nbytes:
        raise ValueError(
            f"a logged {t.dtype} tensor on {t.device} lost its value: its storage holds "
            f"{nbytes} bytes, the element is at byte {offset * size} (freed or resized "
            "after it was logged, as FSDP frees shards); log a copy (.clone()) instead"
        )
    return None if kind is None else (ptr, kind[0])


def to_host(values: list[Any]) -> list[Any]:
    """``values`` with every one-element torch tensor replaced by its python float, each
    device's in one native gather (a GPU's with one copy to the host); other values
    (floats, many-element tensors in lists) stay as they are."""
    torch = sys.modules.get("torch")
    if torch is None:
        return values
    tensor = torch.Tensor
    # device index (-1: CPU) -> positions in values, and their table entries
    native: dict[int, tuple[list[int], list[tuple[int, int]]]] = {}
    other: dict[Any, list[int]] = {}  # device -> positions for the torch path
    for i, v in enumerate(values):
        if not isinstance(v, tensor):
            continue
        ref = scalar_ref(torch, v)
        if ref is not None and (v.is_cpu or v.is_cuda):
            at, refs = native.setdefault(v.get_device(), ([], []))
            at.append(i)
            refs.append(ref)
        elif v.numel() == 1:
            other.setdefault(v.device, []).append(i)
    if not native and not other:
        return values
    out = list(values)
    for device, (at, refs) in native.items():
        if device < 0:
            got: list[float] = _native.core.gather_scalars(np.asarray(refs, np.int64).ravel())
        else:
            on_device = _gather_cuda(torch, device, refs)
            got = (
                on_device.cpu().tolist()
                if on_device is not None
                else _torch_path(torch, values, at)
            )
        for i, x in zip(at, got, strict=True):
            out[i] = x
    for at in other.values():
        for i, x in zip(at, _torch_path(torch, values, at), strict=True):
            out[i] = x
    return out


def on_device(values: list[Any]) -> Any | None:
    """The one-element CUDA tensors ``values`` as one float64 tensor on their device,
    gathered natively, with no host sync; None when that cannot be done (another
    device, a tensor the core may not read, no ``_cuda``)."""
    torch = sys.modules.get("torch")
    if torch is None or not values:
        return None
    first = values[0]
    if not isinstance(first, torch.Tensor) or not first.is_cuda:
        return None
    device = first.get_device()
    refs = []
    for v in values:
        ref = scalar_ref(torch, v)
        if ref is None or not v.is_cuda or v.get_device() != device:
            return None
        refs.append(ref)
    return _gather_cuda(torch, device, refs)


def _gather_cuda(torch: Any, device: int, refs: list[tuple[int, int]]) -> Any | None:
    """One gather launch on device ``device``'s current stream: the table goes to the
    device (one asynchronous copy from pinned memory), the values come back as a float64
    device tensor. None without ``_cuda``."""
    if not _native.cuda_built():
        return None
    cuda = _native.cuda
    table = torch.from_numpy(np.asarray(refs, np.int64).ravel())
    with torch.cuda.device(device):
        where = torch.device("cuda", device)
        on_gpu = table.pin_memory().to(where, non_blocking=True)
        out = torch.empty(len(refs), dtype=torch.float64, device=where)
        stream = torch.cuda.current_stream(where).cuda_stream
        cuda.gather_scalars(on_gpu.data_ptr(), len(refs), out.data_ptr(), stream)
    return out


def _torch_path(torch: Any, values: list[Any], at: list[int]) -> list[float]:
    """The values at ``at`` (one device) through torch: one cast per value, one stack,
    one copy. For what the core may not read."""
    stacked = torch.stack([values[i].reshape(()).to(torch.float64) for i in at])
    got: list[float] = stacked.cpu().tolist()
    return got
