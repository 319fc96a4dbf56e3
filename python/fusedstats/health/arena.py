"""Rows of mergeable statistics on one device, grown when a new slot appears.

An :class:`Arena` holds one row per watched output (a module's activation, or the
gradient flowing into it) on the device of that output. :meth:`Arena.record` merges
one tensor's statistics into a row with no host sync; :meth:`Arena.rows` turns rows
into ``tensor_stats`` columns (the only host sync).

Backends: ``"records"`` — the fused kernel writes and merges its own mergeable
records (``kernels.dispatch.records``; CPU tensors, and CUDA once ``fusedstats._cuda``
has a records entry point); ``"torch"`` — the same state accumulated with torch ops
on the device (:mod:`.device_records`), for CUDA until then.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..kernels import cuda_path, dispatch, inputs
from ..kernels.columns import HIST_BINS, NUM_COLUMNS, NUM_EXTENDED_COLUMNS
from . import device_records

#: Rows an arena starts with; it doubles when full (a copy on the device, no sync).
INITIAL_ROWS = 8

_probe_lock = threading.Lock()
_device_records_work: dict[Any, bool] = {}


def backend_for(device: Any) -> str:
    """ "records" when the fused kernel can write mergeable records on ``device``,
    "torch" for CUDA devices where it cannot yet. Probed once per device."""
    if device.type == "cpu":
        return "records"
    if device.type != "cuda":
        raise ValueError(f"tensors on {device} are not supported (cpu and cuda are)")
    with _probe_lock:
        known = _device_records_work.get(device)
        if known is None:
            known = _device_records_work[device] = _probe_device_records(device)
    return "records" if known else "torch"


def _probe_device_records(device: Any) -> bool:
    import torch

    if not cuda_path.available():
        return False
    probe = torch.zeros(1, device=device)
    prep = inputs.prepare([probe], None)
    scratch = dispatch.new_records(prep, 1, False)
    try:
        cuda_path.tensor_records(prep, 0.0, False, scratch, False)
    except (NotImplementedError, cuda_path.CudaUnusable):
        return False
    return True


class Arena:
    """Rows of accumulated statistics on one device (see the module docstring).

    Args:
        device: the torch device of every tensor recorded here.
        extended: whether the extended statistics (and exponent histograms) are kept.
        backend: "records" or "torch" (default: :func:`backend_for` the device).
    """

    def __init__(self, device: Any, extended: bool, backend: str | None = None) -> None:
        self.device = device
        self.extended = extended
        self.backend = backend_for(device) if backend is None else backend
        if self.backend not in ("records", "torch"):
            raise ValueError(f"backend must be 'records' or 'torch', got {self.backend!r}")
        self.n_rows = 0
        self._capacity = 0
        self._records: Any = None  # records: [capacity, record_bytes] uint8
        self._state: Any = None  # torch: [capacity, STATE_WIDTH] float64
        self._hist: Any = None  # torch + extended: [capacity, HIST_BINS] int64
        if self.backend == "records":
            words = dispatch.record_bytes(extended) // 8
            if words != device_records.record_words(extended):  # the wire format moved
                raise RuntimeError(
                    f"fusedstats' records are {words} words, health expects "
                    f"{device_records.record_words(extended)}: rebuild the package"
                )
        self._grow(INITIAL_ROWS)

    def _grow(self, capacity: int) -> None:
        import torch

        def bigger(old: Any, shape: tuple[int, ...], dtype: Any) -> Any:
            new = torch.zeros(shape, dtype=dtype, device=self.device)
            if old is not None:
                new[: old.shape[0]].copy_(old)
            return new

        if self.backend == "records":
            width = dispatch.record_bytes(self.extended)
            self._records = bigger(self._records, (capacity, width), torch.uint8)
        else:
            width = device_records.STATE_WIDTH
            self._state = bigger(self._state, (capacity, width), torch.float64)
            if self.extended:
                self._hist = bigger(self._hist, (capacity, HIST_BINS), torch.int64)
        self._capacity = capacity

    def add_row(self) -> int:
        """A new row's index (its first :meth:`record` must pass ``first=True``)."""
        if self.n_rows == self._capacity:
            self._grow(2 * self._capacity)
        self.n_rows += 1
        return self.n_rows - 1

    @property
    def nbytes(self) -> int:
        """Bytes of device memory the rows take."""
        held = (self._records, self._state, self._hist)
        return sum(int(t.numel() * t.element_size()) for t in held if t is not None)

    def record(self, row: int, x: Any, first: bool) -> inputs.Prepared | None:
        """Merges the statistics of tensor ``x`` into ``row`` (``first``: replaces what
        the row held). On the device, no host sync; ``x`` is not kept. Returns the
        checked descriptor of ``x`` the kernel read (``"records"`` backend), for other
        reads of the same tensor; None otherwise."""
        if self.backend == "records":
            prep = inputs.prepare([x], None)
            dispatch.records(prep, 0.0, self.extended, self._records[row : row + 1], not first)
            return prep
        import torch

        state = self._state[row]
        if first:
            state.copy_(device_records.empty_state(1, self.device)[0])
        hist = None
        if self.extended:
            hist = self._hist[row]
            if first:
                hist.zero_()
        with torch.no_grad():
            device_records.merge_into(state, device_records.partial(x, self.extended, hist))
        return None

    def rows(self, rows: list[int]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        """The ``tensor_stats`` rows (``[len(rows), width]`` float64; width with the
        extended columns when extended) and exponent histograms (``[len(rows),
        HIST_BINS]`` int64, extended only) of ``rows``, on the host. A host sync."""
        import torch

        k = len(rows)
        width = NUM_EXTENDED_COLUMNS if self.extended else NUM_COLUMNS
        if k == 0:
            return np.zeros((0, width)), (
                np.zeros((0, HIST_BINS), np.int64) if self.extended else None
            )
        index = torch.tensor(rows, dtype=torch.int64)
        if self.backend == "records":
            recs = self._records.index_select(0, index.to(self.device))
            out = torch.empty((k + 1, width), dtype=torch.float64, device=self.device)
            hist = (
                torch.empty((k + 1, HIST_BINS), dtype=torch.int64, device=self.device)
                if self.extended
                else None
            )
            dispatch.finalize(recs, k, self.extended, out, hist)
            host_rows = out[:k].cpu().numpy()
            host_hist = hist[:k].cpu().numpy() if hist is not None else None
            return host_rows, host_hist
        state = self._state.index_select(0, index.to(self.device)).cpu().numpy()
        hists = (
            self._hist.index_select(0, index.to(self.device)).cpu().numpy()
            if self.extended
            else None
        )
        packed = device_records.pack_records(state, hists, self.extended)
        out_np = np.empty((k + 1, width), dtype=np.float64)
        hist_np = np.empty((k + 1, HIST_BINS), dtype=np.int64) if self.extended else None
        dispatch.finalize(packed, k, self.extended, out_np, hist_np)
        return out_np[:k], (hist_np[:k] if hist_np is not None else None)
