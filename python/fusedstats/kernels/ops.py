"""The kernels as PyTorch custom ops, so that torch.compile and CUDA graphs see one op.

``torch.ops.fusedstats.tensor_stats(tensors, row_lens, dormant_threshold, extended)``
returns ``(rows, histogram)``; ``tensor_stats_out`` writes into given buffers. They
are defined with ``torch.library`` ``define``/``impl`` (the implementation is the
Python code that hands raw pointers to ``_core``/``_cuda``; nothing links libtorch)
plus a fake implementation with the exact output shapes for tracing.

They are registered the first time fusedstats works with torch — never at
``import fusedstats``. Under torch.compile that first time may be inside tracing:
:func:`ensure_registered` is marked as a constant for dynamo (what
``torch._dynamo.assume_constant_result`` does), so dynamo runs it for real and
traces on, with no graph break.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .columns import HIST_BINS
from .inputs import torch_module

if TYPE_CHECKING:
    from .result import TensorStats

_lock = threading.Lock()
_library: Any = None

_SCHEMA = "(Tensor[] tensors, int[] row_lens, float dormant_threshold, bool extended)"


def ensure_registered() -> bool:
    """Registers the fusedstats ops with torch (once; thread-safe). Returns True."""
    global _library  # noqa: PLW0603
    if _library is not None:
        return True
    with _lock:
        if _library is None:
            _library = _register(torch_module())
    return True


# Dynamo calls a function marked so at trace time and uses its result as a constant
# (torch._dynamo.assume_constant_result sets exactly this attribute; setting it here
# needs no torch import).
ensure_registered._dynamo_marked_constant = True  # type: ignore[attr-defined]


def _register(torch: Any) -> Any:
    from . import dispatch, inputs
    from .columns import NUM_COLUMNS, NUM_EXTENDED_COLUMNS

    lib = torch.library.Library("fusedstats", "DEF")
    lib.define(f"tensor_stats{_SCHEMA} -> (Tensor, Tensor)")
    lib.define(f"tensor_stats_out{_SCHEMA[:-1]}, Tensor(a!) out, Tensor(b!) hist) -> ()")

    def width(extended: bool) -> int:
        return NUM_EXTENDED_COLUMNS if extended else NUM_COLUMNS

    def hist_shape(n: int, extended: bool) -> tuple[int, ...]:
        return (n + 1, HIST_BINS) if extended else (0,)

    def run_into(
        tensors: Sequence[Any],
        row_lens: Sequence[int],
        threshold: float,
        extended: bool,
        out: Any,
        hist: Any,
    ) -> None:
        prep = inputs.prepare(tensors, None, list(row_lens) or None)
        dispatch.check_output(prep, out, extended)
        if extended:
            dispatch.check_histogram(prep, hist)
        dispatch.run(prep, out, hist if extended else None, threshold, extended)

    def stats_impl(
        tensors: Sequence[Any], row_lens: Sequence[int], threshold: float, extended: bool
    ) -> tuple[Any, Any]:
        first = tensors[0]
        out = torch.empty(
            (len(tensors) + 1, width(extended)), dtype=torch.float64, device=first.device
        )
        hist = torch.empty(
            hist_shape(len(tensors), extended), dtype=torch.int64, device=first.device
        )
        run_into(tensors, row_lens, threshold, extended, out, hist)
        return out, hist

    def stats_fake(
        tensors: Sequence[Any], row_lens: Sequence[int], threshold: float, extended: bool
    ) -> tuple[Any, Any]:
        _check_traced(tensors, row_lens, torch)
        first = tensors[0]
        out = first.new_empty((len(tensors) + 1, width(extended)), dtype=torch.float64)
        hist = first.new_empty(hist_shape(len(tensors), extended), dtype=torch.int64)
        return out, hist

    def stats_out_impl(
        tensors: Sequence[Any],
        row_lens: Sequence[int],
        threshold: float,
        extended: bool,
        out: Any,
        hist: Any,
    ) -> None:
        run_into(tensors, row_lens, threshold, extended, out, hist)

    def stats_out_fake(
        tensors: Sequence[Any],
        row_lens: Sequence[int],
        threshold: float,
        extended: bool,
        out: Any,
        hist: Any,
    ) -> None:
        _check_traced(tensors, row_lens, torch)

    for key in ("CPU", "CUDA"):
        lib.impl("tensor_stats", stats_impl, key)
        lib.impl("tensor_stats_out", stats_out_impl, key)
    torch.library.register_fake("fusedstats::tensor_stats", stats_fake, lib=lib)
    torch.library.register_fake("fusedstats::tensor_stats_out", stats_out_fake, lib=lib)
    return lib


def _check_traced(tensors: Sequence[Any], row_lens: Sequence[int], torch: Any) -> None:
    """The checks that can be made while tracing (dtypes, one device, row lengths)."""
    from .inputs import label, torch_dtype_codes

    if not tensors:
        raise ValueError("fusedstats.tensor_stats op needs at least one tensor")
    if row_lens and len(row_lens) != len(tensors):
        raise ValueError(f"got {len(row_lens)} row lengths for {len(tensors)} tensors")
    codes = torch_dtype_codes(torch)
    device = tensors[0].device
    for i, x in enumerate(tensors):
        if x.dtype not in codes:
            raise TypeError(f"{label(i, None)} has dtype {x.dtype}; not supported by fusedstats")
        if x.device != device:
            raise ValueError(f"{label(i, None)} is on {x.device} but item 0 is on {device}")


def compiled_stats(
    items: Sequence[Any],
    names: Sequence[str],
    row_lens: Sequence[int] | None,
    dormant_threshold: float,
    out: Any,
    extended: bool,
    hist_out: Any,
) -> TensorStats:
    """tensor_stats while torch.compile traces: one custom op in the graph."""
    from .result import TensorStats

    torch = torch_module()
    assert torch is not None
    ensure_registered()
    tensors = [x.detach() for x in items]
    if not tensors:
        raise ValueError("tensor_stats inside torch.compile needs at least one tensor")
    lens = list(row_lens) if row_lens is not None else []
    if out is None:
        rows, hist = torch.ops.fusedstats.tensor_stats(tensors, lens, dormant_threshold, extended)
    else:
        if hist_out is None:
            hist_out = out.new_empty(
                (len(tensors) + 1, HIST_BINS) if extended else (0,), dtype=torch.int64
            )
        torch.ops.fusedstats.tensor_stats_out(
            tensors, lens, dormant_threshold, extended, out, hist_out
        )
        rows, hist = out, hist_out
    return TensorStats(
        rows, names, "compiled", extended=extended, histogram=hist if extended else None
    )
