"""tensor_stats: the public entry to the fused kernels."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from . import dispatch
from .result import TensorStats


def tensor_stats(
    tensors: Iterable[Any],
    names: Sequence[str] | None = None,
    *,
    out: Any = None,
) -> TensorStats:
    """Statistics of every tensor and of all together, in one pass over memory.

    Computes numel, NaN/Inf/zero counts, and over finite elements sum, mean, var
    (unbiased), var_pop, std, min, max, abs_max, l1 and norm, accumulating in
    float64. CPU tensors and numpy arrays run the C++/OpenMP kernel, CUDA tensors the
    CUDA kernel (no host sync until the result is read).

    Args:
        tensors: torch tensors on one device, or numpy arrays; float32, float64,
            float16 or bfloat16; any shape, empty and non-contiguous included.
        names: one name per tensor (default "0", "1", ...), used by ``per_tensor``
            and ``to_dict``.
        out: optional preallocated float64 buffer ``[len(tensors) + 1, NUM_COLUMNS]``
            on the inputs' device (for CUDA graphs or to avoid an allocation).

    Returns:
        A TensorStats whose last buffer row is the global one.

    Raises:
        TypeError: an item is not a tensor/array, or has an unsupported dtype.
        ValueError: items on different devices, bad ``names`` or ``out``.

    Example:
        >>> import numpy as np, fusedstats
        >>> s = fusedstats.tensor_stats([np.array([1.0, 2.0, 3.0], dtype=np.float32)])
        >>> s.global_["mean"], s.global_["var"], s.global_["max"]
        (2.0, 1.0, 3.0)
    """
    return _stats(tensors, names, None, 0.0, out)


def _stats(
    tensors: Iterable[Any],
    names: Sequence[str] | None,
    row_lens: Sequence[int] | None,
    dormant_threshold: float,
    out: Any,
) -> TensorStats:
    prep = dispatch.prepare(tensors, names, row_lens)
    if names is None:
        names = [str(i) for i in range(len(prep.ptrs))]
    elif len(set(names)) != len(names):
        seen: set[str] = set()
        dup = next(n for n in names if n in seen or seen.add(n))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate tensor name {dup!r}")
    if out is None:
        out = dispatch.new_output(prep)
    else:
        dispatch.check_output(prep, out)
    path = dispatch.run(prep, out, dormant_threshold)
    return TensorStats(out, names, path)
