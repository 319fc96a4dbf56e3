"""From user tensors to kernel descriptors: validation, and the memory-safety rule.

No pointer reaches a compiled kernel unless every element the kernel will read lies
inside memory the item owns: a dense strided tensor (or numpy array) whose extent
(storage offset, sizes, strides) fits in its storage. Everything else — wrapper
subclasses (``__torch_dispatch__``: DTensor outside its own path, FakeTensor,
FunctionalTensor, TwoTensor, ...), sparse, nested, quantized and meta tensors, freed
storage (``data_ptr() == 0``, as FSDP leaves unsharded parameters), views past the
end of their storage — gets a clear ``TypeError`` naming the item. The check runs
before any copy, because a contiguous copy of an out-of-bounds view would itself read
outside the storage.

Policy lives here; the compiled core trusts what it is handed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: dtype codes shared with csrc/include/fusedstats/stats.h (checked against _core.DTYPE_CODES)
DTYPE_CODES = {
    "float32": 0,
    "float64": 1,
    "float16": 2,
    "bfloat16": 3,
    "float8_e4m3fn": 4,
    "float8_e5m2": 5,
}
_SUPPORTED = "float32, float64, float16, bfloat16, float8_e4m3fn, float8_e5m2"


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


def torch_module() -> Any | None:
    """torch if the caller has imported it (fusedstats never imports it for them)."""
    return sys.modules.get("torch")


def label(index: int, names: Sequence[str] | None) -> str:
    if names is not None:
        return f"item {index} ({names[index]!r})"
    return f"item {index}"


_torch_codes: dict[Any, int] = {}


def torch_dtype_codes(torch: Any) -> dict[Any, int]:
    """torch dtype -> kernel dtype code."""
    if not _torch_codes:
        for name, code in DTYPE_CODES.items():
            dtype = getattr(torch, name, None)
            if dtype is not None:
                _torch_codes[dtype] = code
    return _torch_codes


def _unsupported_dtype(what: str, dtype: Any) -> TypeError:
    return TypeError(f"{what} has dtype {dtype}; supported: {_SUPPORTED}")


def dtensor_type() -> Any | None:
    """torch's DTensor class if torch.distributed.tensor is loaded (else no item is one)."""
    module = sys.modules.get("torch.distributed.tensor")
    return getattr(module, "DTensor", None) if module is not None else None


# ---- torch tensors -----------------------------------------------------------------


def _reject_exotic(x: Any, what: str, torch: Any) -> None:
    """TypeError for tensors that are not plain dense memory (checked before any read)."""
    kind = type(x).__name__
    if type(x) not in (torch.Tensor, torch.nn.Parameter):
        keys = torch._C._dispatch_keys(x)
        if keys.has(torch._C.DispatchKey.Python):
            raise TypeError(
                f"{what} is a {kind}, a tensor subclass with __torch_dispatch__ (its "
                "data is not in its own storage); pass plain tensors, e.g. "
                "x.to_local() for a DTensor shard"
            )
    if x.layout != torch.strided:
        raise TypeError(f"{what} is a {x.layout} tensor ({kind}); only dense tensors are supported")
    if x.is_nested:
        raise TypeError(f"{what} is a nested tensor; only dense tensors are supported")
    if x.is_quantized:
        raise TypeError(f"{what} is a quantized tensor; only float tensors are supported")
    if x.device.type == "meta":
        raise TypeError(f"{what} is a meta tensor: it has no data")
    if x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{what} is on device {x.device}; supported: cpu, cuda")


def _check_extent(x: Any, what: str, contiguous: bool = False) -> None:
    """TypeError unless every element of ``x`` lies inside its storage."""
    numel = x.numel()
    if numel == 0:
        return
    if x.data_ptr() == 0:
        raise TypeError(
            f"{what} has {numel} elements but no data (data_ptr() is 0: its storage was "
            "freed or resized to 0, as FSDP does with unsharded parameters)"
        )
    offset = x.storage_offset()
    if contiguous:
        last = offset + numel - 1
    else:
        last = offset
        for size, stride in zip(x.shape, x.stride(), strict=True):
            if stride < 0:
                raise TypeError(f"{what} has a negative stride {x.stride()}")
            last += (size - 1) * stride
    nbytes = x.untyped_storage().nbytes()
    if offset < 0 or (last + 1) * x.element_size() > nbytes:
        raise TypeError(
            f"{what} reaches past the end of its storage (offset {x.storage_offset()}, "
            f"sizes {tuple(x.shape)}, strides {x.stride()}, storage {nbytes} bytes)"
        )


def readable_tensor(x: Any, what: str, torch: Any) -> tuple[Any, int, bool]:
    """(tensor whose memory holds its values contiguously, dtype code, copied?).

    Raises TypeError/ValueError for anything whose memory cannot be read safely."""
    _reject_exotic(x, what, torch)
    code = torch_dtype_codes(torch).get(x.dtype)
    if code is None:
        raise _unsupported_dtype(what, x.dtype)
    _check_extent(x, what)
    x = x.detach()  # no autograd graph for the copies below
    copied = False
    if x.is_neg():  # a lazily negated view: its memory holds -x
        x, copied = x.resolve_neg(), True
    if not x.is_contiguous():
        x, copied = x.contiguous(), True
    return x, code, copied


# ---- numpy arrays --------------------------------------------------------------------


def _numpy_owner_bounds(x: np.ndarray[Any, Any]) -> tuple[int, int] | None:
    """Address range [low, high) of the memory that owns ``x``'s data, if known: an
    ndarray that owns its data, a torch tensor's storage (``tensor.numpy()``), or any
    object with the buffer protocol (bytes, memoryview, mmap); stride-trick wrappers
    (``as_strided``'s DummyArray) are followed through their ``base``."""
    base: Any = x
    for _ in range(64):
        if isinstance(base, np.ndarray):
            if base.flags.owndata or base.base is None:
                return _array_extent(base)
            base = base.base
            continue
        torch = torch_module()
        if torch is not None and isinstance(base, torch.Tensor):
            storage = base.untyped_storage()
            return storage.data_ptr(), storage.data_ptr() + storage.nbytes()
        try:
            view = np.frombuffer(base, dtype=np.uint8)
        except (TypeError, ValueError, BufferError, AttributeError):
            inner = getattr(base, "base", None)
            if inner is None:
                return None
            base = inner
            continue
        low = view.ctypes.data
        return low, low + view.nbytes
    return None


def _array_extent(x: np.ndarray[Any, Any]) -> tuple[int, int]:
    """Address range [low, high) that ``x``'s elements span (its data, by its strides)."""
    low = high = int(x.ctypes.data)
    if x.size == 0:
        return low, low
    for size, stride in zip(x.shape, x.strides, strict=True):
        span = (size - 1) * stride
        low, high = (low + span, high) if span < 0 else (low, high + span)
    return low, high + x.itemsize


def _check_array_extent(x: np.ndarray[Any, Any], what: str) -> None:
    if x.size == 0 or (x.flags.owndata and x.flags.c_contiguous):
        return
    low, high = _array_extent(x)
    bounds = _numpy_owner_bounds(x)
    if bounds is None or low < bounds[0] or high > bounds[1]:
        raise TypeError(
            f"{what} is a view whose elements are not all inside the memory it comes from "
            f"(shape {x.shape}, strides {x.strides}); pass a copy (numpy.array(x))"
        )


def readable_array(x: np.ndarray[Any, Any], what: str) -> tuple[Any, int, bool]:
    """(C-contiguous native-endian array, dtype code, copied?)."""
    code = DTYPE_CODES.get(x.dtype.name)  # ml_dtypes' types are named like torch's
    if code is None:
        raise _unsupported_dtype(what, x.dtype)
    _check_array_extent(x, what)
    if not x.dtype.isnative:
        return x.astype(x.dtype.newbyteorder("=")), code, True
    if not x.flags.c_contiguous:
        return np.ascontiguousarray(x), code, True
    return x, code, False


# ---- the list ------------------------------------------------------------------------


def check_list(tensors: Any, names: Sequence[str] | None) -> tuple[list[Any], list[str] | None]:
    """The items of ``tensors`` as a list, and ``names`` checked against them."""
    torch = torch_module()
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
    return items, names


def prepare(
    items: Sequence[Any],
    names: Sequence[str] | None,
    row_lens: Sequence[int] | None = None,
) -> Prepared:
    """Validates ``items`` (plain tensors or arrays) and returns their descriptors.

    Raises:
        TypeError: an item that is not a dense tensor/array whose memory can be read
            safely, or an unsupported dtype (names the item).
        ValueError: items on different devices, or row lengths of the wrong length.
    """
    if row_lens is not None and len(row_lens) != len(items):
        raise ValueError(f"got {len(row_lens)} row lengths for {len(items)} tensors")
    torch = torch_module()
    prep = Prepared(kind="numpy", device=None)
    if torch is not None:
        # Metadata of __torch_function__ subclasses is read as the plain tensor's: a
        # subclass that misreports numel() or data_ptr() cannot steer the kernel.
        with torch._C.DisableTorchFunctionSubclass():
            _describe_all(items, names, prep, torch)
    else:
        _describe_all(items, names, prep, None)
    prep.row_lens = [0] * len(items) if row_lens is None else [int(r) for r in row_lens]
    return prep


def _describe_all(
    items: Sequence[Any], names: Sequence[str] | None, prep: Prepared, torch: Any | None
) -> None:
    plain = (torch.Tensor, torch.nn.Parameter) if torch is not None else ()
    strided = torch.strided if torch is not None else None
    tensor_type = torch.Tensor if torch is not None else ()
    codes = torch_dtype_codes(torch) if torch is not None else {}
    first_key: Any = None
    key: Any
    for i, item in enumerate(items):
        if type(item) in plain:
            # Hot path (~1 us a tensor): a plain contiguous tensor on CPU or CUDA. is_cpu
            # and is_cuda cost ~60 ns where tensor.device.type costs ~500 ns.
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
                or item.is_nested
                or not item.is_contiguous()
                or item.is_neg()
            ):
                x, code, copied = readable_tensor(item, label(i, names), torch)
                prep.n_copied += copied
            else:
                _check_extent(item, label(i, names), contiguous=True)
                x = item
            ptr, numel = x.data_ptr(), x.numel()
        elif isinstance(item, tensor_type):
            x, code, copied = readable_tensor(item, label(i, names), torch)
            prep.n_copied += copied
            kind, key = ("cuda", ("cuda", x.get_device())) if x.is_cuda else ("cpu", "cpu")
            ptr, numel = x.data_ptr(), x.numel()
        elif isinstance(item, np.ndarray):
            x, code, copied = readable_array(item, label(i, names))
            prep.n_copied += copied
            key, kind = "cpu", "numpy"
            ptr, numel = x.ctypes.data, x.size
        else:
            raise TypeError(
                f"{label(i, names)} is a {type(item).__name__}; expected a torch.Tensor or "
                "numpy.ndarray"
            )
        if i == 0:
            first_key = key
            prep.kind = kind
            prep.device = x.device if kind != "numpy" else None
        elif key != first_key:
            raise ValueError(
                f"{label(i, names)} is on {_device_name(x)} but {label(0, names)} is on "
                f"{_device_name(items[0])}; all tensors must be on one device"
            )
        elif kind == "cpu" and prep.kind == "numpy":
            prep.kind, prep.device = "cpu", x.device  # torch CPU tensors win the output type
        prep.ptrs.append(ptr)
        prep.numels.append(numel)
        prep.dtypes.append(code)
        prep.keep.append(x)


def _device_name(x: Any) -> str:
    return "cpu (numpy)" if isinstance(x, np.ndarray) else str(x.device)
