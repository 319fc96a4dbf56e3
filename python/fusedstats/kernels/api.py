"""tensor_stats: the public entry to the fused kernels."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from . import dispatch, inputs, ops
from .result import TensorStats


def tensor_stats(
    tensors: Iterable[Any],
    names: Sequence[str] | None = None,
    *,
    out: Any = None,
    extended: bool = False,
    hist_out: Any = None,
) -> TensorStats:
    """Statistics of every tensor and of all together, in one pass over memory.

    Computes numel, NaN/Inf/zero counts, and over finite elements sum, mean, var
    (unbiased), var_pop, std, min, max, abs_max, l1 and norm, accumulating in
    float64. CPU tensors and numpy arrays run the C++/OpenMP kernel, CUDA tensors the
    CUDA kernel (no host sync until the result is read). DTensors (FSDP2, tensor
    parallel) give the statistics of the full tensors, identical on every rank, with
    one collective per call. Inside ``torch.compile`` the call is one custom op.

    Args:
        tensors: torch tensors on one device, DTensors, or numpy arrays; float32,
            float64, float16, bfloat16, float8_e4m3fn or float8_e5m2; any shape, empty
            and non-contiguous included.
        names: one name per tensor (default "0", "1", ...), used by ``per_tensor``
            and ``to_dict``.
        out: optional preallocated float64 buffer ``[len(tensors) + 1, width]`` on the
            inputs' device (``width`` = NUM_COLUMNS, or NUM_EXTENDED_COLUMNS with
            ``extended``), for CUDA graphs or to avoid an allocation.
        extended: also compute kurtosis, the smallest nonzero |x|, the dynamic range,
            the underflow/overflow fractions of bf16/fp16/e4m3/e5m2 and the exponent
            histogram, in the same pass.
        hist_out: optional preallocated int64 ``[len(tensors) + 1, HIST_BINS]`` buffer
            for the exponent histogram (with ``extended``).

    Returns:
        A TensorStats whose last buffer row is the global one.

    Raises:
        TypeError: an item is not a tensor/array whose memory can be read safely, or
            has an unsupported dtype (the message names the item).
        ValueError: items on different devices, bad ``names`` or ``out``.

    Example:
        >>> import numpy as np, fusedstats
        >>> s = fusedstats.tensor_stats([np.array([1.0, 2.0, 3.0], dtype=np.float32)])
        >>> s.global_["mean"], s.global_["var"], s.global_["max"]
        (2.0, 1.0, 3.0)
    """
    return _stats(tensors, names, None, 0.0, out, extended, hist_out)


def _check_names(names: Sequence[str] | None, n: int) -> list[str]:
    if names is None:
        return [str(i) for i in range(n)]
    if len(set(names)) != len(names):
        seen: set[str] = set()
        dup = next(n for n in names if n in seen or seen.add(n))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate tensor name {dup!r}")
    return list(names)


def _stats(
    tensors: Iterable[Any],
    names: Sequence[str] | None,
    row_lens: Sequence[int] | None,
    dormant_threshold: float,
    out: Any,
    extended: bool = False,
    hist_out: Any = None,
) -> TensorStats:
    items, names = inputs.check_list(tensors, names)
    torch = inputs.torch_module()
    other_path = None
    if torch is not None and torch.compiler.is_compiling():
        other_path = ops.compiled_stats
    else:
        dtensor = inputs.dtensor_type()
        if dtensor is not None and any(isinstance(x, dtensor) for x in items):
            from .sharded import sharded_stats as other_path
    if other_path is not None:
        named = _check_names(names, len(items))
        return other_path(items, named, row_lens, dormant_threshold, out, extended, hist_out)
    if torch is not None:
        ops.ensure_registered()  # the first use of torch by fusedstats (cheap after)
    prep = inputs.prepare(items, names, row_lens)
    names = _check_names(names, len(prep.ptrs))
    out, hist = dispatch.output_buffers(prep, extended, out, hist_out)
    path, event = dispatch.run(prep, out, hist, dormant_threshold, extended)
    return TensorStats(out, names, path, extended=extended, histogram=hist, event=event)
