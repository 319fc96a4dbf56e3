"""Per-unit sums of |x| (ReDo's dormant units), in one native pass on the CPU.

On the CPU the compiled core reads the output once, widening every element to float64
(``_core.unit_abs_sums``: no temporary, the same bits at any thread count). Measured
on the demo's policy (a [2048, 256] float32 output, one thread, this project's 2-core
machine): ~15 us, where the earlier torch version (``|x|`` into a reusable scratch in
slices, then ``sum``) took ~95 us and a plain ``x.abs().sum(0)`` ~70 us plus an
activation-sized allocation on every call. On CUDA one torch reduction over the whole
output (the caching allocator reuses its temporary).
"""

from __future__ import annotations

import math
from typing import Any

from .. import _native
from ..kernels import inputs


def add_unit_abs_sums(
    x: Any, dim: int, acc: Any, first: bool, prepared: inputs.Prepared | None = None
) -> None:
    """``acc[u] = (acc[u] if not first else 0) + sum of |x| over every dim but ``dim``,
    at index u along ``dim``. ``acc``: float64 ``[x.shape[dim]]`` on x's device
    (contiguous). NaN and Inf propagate into their unit's sum. ``prepared``: the
    checked descriptor of ``x`` when the caller has one (``inputs.prepare([x])``, as
    the watch's records pass made it), so that ``x`` is not checked twice.

    Raises:
        TypeError: ``x`` is not a tensor whose memory can be read safely (see
            :func:`fusedstats.kernels.inputs.prepare`), or of an unsupported dtype.
        ValueError: ``acc`` is not a contiguous float64 tensor of ``x.shape[dim]``
            elements on x's device.

    Example:
        >>> import torch
        >>> acc = torch.zeros(3, dtype=torch.float64)
        >>> add_unit_abs_sums(torch.tensor([[1.0, -2.0, 0.0], [3.0, 4.0, 0.0]]), 1, acc, True)
        >>> acc.tolist()
        [4.0, 6.0, 0.0]
    """
    import torch

    units = int(x.shape[dim])
    if (
        acc.dtype != torch.float64
        or acc.device != x.device
        or not acc.is_contiguous()
        or acc.numel() != units
    ):
        raise ValueError(
            f"acc must be a contiguous float64 tensor of {units} elements on {x.device}, "
            f"got {acc.dtype} {tuple(acc.shape)} on {acc.device}"
        )
    before = math.prod(x.shape[:dim])
    after = math.prod(x.shape[dim + 1 :])
    if not x.is_cpu:
        work = torch.float64 if x.dtype == torch.float64 else torch.float32
        v = x.reshape(before, units, after)
        part = (v if x.dtype.itemsize > 1 else v.to(work)).abs().sum((0, 2), dtype=work)
        if first:
            acc.copy_(part)
        else:
            acc.add_(part)
        return
    # Checked memory; contiguous (a copy if x is not).
    prep = prepared if prepared is not None else inputs.prepare([x], ["the output"])
    if first:
        acc.zero_()
    _native.core.unit_abs_sums(prep.ptrs[0], prep.dtypes[0], before, units, after, acc.data_ptr())
