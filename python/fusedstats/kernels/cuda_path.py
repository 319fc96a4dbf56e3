"""The CUDA path: chunk tables and workspaces of fusedstats._cuda, launched on the
caller's current stream with no host sync.

Interface used by dispatch.py (all on the current stream of the inputs' device):
``available()``, ``tensor_stats(prep, out, hist, dormant_threshold, extended)``,
``tensor_records(prep, dormant_threshold, extended, records, accumulate)``,
``finalize_records(records, n, extended, out, hist)``,
``merge_records(src, n_sources, n, extended, include, dst)``. They raise
:class:`CudaUnusable` when this build cannot run on this machine (the caller then takes
the torch path).

Buffers and their lifetimes:

- The chunk table of a tensor list is keyed by (device, pointers, sizes, dtypes, row
  lengths), not by stream, and kept in an LRU of 32 lists: a warm-up call on any stream
  makes a later CUDA-graph capture a hit (review F2).
- A table used while a graph is being captured is baked into that graph: it moves to a
  set that is never evicted (review F1; a table is 40 bytes per chunk).
- A miss while capturing raises :class:`GraphCaptureError`: the table goes up from
  pinned host memory, which cannot be captured safely. So do inputs that need a
  contiguous copy, since the copies get new memory in every capture.
- Workspaces need no initialization (each launch clears its ticket and histograms with
  a memset, review F5). Eager calls use one per (list, stream, extended), cached with
  the table. A capture allocates its own inside the capture, from the graph's private
  pool, which the graph keeps alive like any captured op's temporaries. So no two graphs,
  and no graph and eager call, ever share one.
- Inputs that needed a contiguous copy have new pointers on every call: their table
  and workspace are made per call and never cached (review F11).
- Errors that mean "this build cannot run here" (driver older than the toolkit, no
  kernel image for this GPU) disable the CUDA path for the process, logged once (F4).
- The device is switched with ``torch.cuda.device`` only when it is not already current
  (F10); the launch returns an event recorded on the launch stream, which reads wait on
  (F6); the GIL is held while a launch sequence is enqueued (F7).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from .. import _native
from .columns import HIST_BINS, NUM_COLUMNS, NUM_EXTENDED_COLUMNS
from .inputs import Prepared, torch_module

_log = logging.getLogger("fusedstats")

CACHE_SIZE = 32  # tensor lists whose chunk tables are kept (not counting captured ones)
MAX_GRID = 2**31 - 1  # blocks in one launch (gridDim.x)
# Extended pass: a warp's histogram counters are 32-bit; a chunk (a whole row in row
# mode) longer than this could overflow one.
MAX_EXTENDED_CHUNK = 2**34


class CudaUnusable(RuntimeError):
    """fusedstats._cuda cannot run on this machine (e.g. a driver older than the
    toolkit it was built with, or a GPU it has no code for): the caller falls back."""


class GraphCaptureError(RuntimeError):
    """A call inside CUDA-graph capture that cannot be captured (its chunk table was
    not made before the capture)."""


def available() -> bool:
    """True when CUDA tensors can run fusedstats._cuda."""
    torch = torch_module()
    return _native.cuda_built() and torch is not None and torch.cuda.is_available()


# ---- the torch calls (a host test substitutes CPU stand-ins) --------------------------


class TorchCuda:
    """What the CUDA path asks of torch: devices, streams, capture state, buffers."""

    def __init__(self) -> None:
        torch = torch_module()
        assert torch is not None
        self.torch = torch

    def index(self, device: Any) -> int:
        return int(device.index if device.index is not None else self.torch.cuda.current_device())

    def on_device(self, index: int) -> AbstractContextManager[Any]:
        # torch's own switch (it never creates a context on the device it restores) and
        # only when needed: no cudaSetDevice from our C++ (review F10).
        if self.torch.cuda.current_device() == index:
            return nullcontext()
        return self.torch.cuda.device(index)  # type: ignore[no-any-return]

    def current_stream(self, index: int) -> Any:
        return self.torch.cuda.current_stream(index)

    def handle(self, stream: Any) -> int:
        return int(stream.cuda_stream)

    def is_capturing(self) -> bool:
        return bool(self.torch.cuda.is_current_stream_capturing())

    def upload(self, data: bytes, index: int, stream: Any) -> Any:
        torch = self.torch
        host = torch.frombuffer(bytearray(data), dtype=torch.uint8).pin_memory()
        with torch.cuda.stream(stream):
            return host.to(torch.device("cuda", index), non_blocking=True)

    def empty(self, nbytes: int, index: int, stream: Any) -> Any:
        torch = self.torch
        with torch.cuda.stream(stream):
            return torch.empty(nbytes, dtype=torch.uint8, device=torch.device("cuda", index))

    def use_on(self, buf: Any, stream: Any) -> None:
        """``buf`` (allocated on another stream) is read on ``stream``: its memory must
        not be reused before that work is done."""
        buf.record_stream(stream)

    def record_event(self, stream: Any) -> Any:
        event = self.torch.cuda.Event()
        event.record(stream)
        return event


# ---- the launcher -----------------------------------------------------------------------


@dataclass
class _Table:
    table: Any  # uint8 device tensor: Chunk[n_chunks], int64 first_chunk[n + 1]
    n_chunks: int
    used_on: set[int]  # streams it was used on (record_stream)
    workspaces: dict[tuple[int, bool], Any] = field(default_factory=dict)  # eager
    captured: bool = False


def _plan_key(index: int, prep: Prepared) -> tuple[Any, ...]:
    return (
        index,
        tuple(prep.ptrs),
        tuple(prep.numels),
        tuple(prep.dtypes),
        tuple(prep.row_lens),
    )


class Launcher:
    """Chunk tables, workspaces and launches of one kernel module (``ext``: the
    fusedstats._cuda module, or the host emulation in tests) through ``api``."""

    def __init__(self, ext: Any, api: Any) -> None:
        self.ext = ext
        self.api = api
        self._tables: OrderedDict[tuple[Any, ...], _Table] = OrderedDict()
        self._captured: dict[tuple[Any, ...], _Table] = {}
        self._lock = threading.Lock()
        self._probed: set[int] = set()
        #: Why this module cannot run here (then every call raises CudaUnusable).
        self.unusable: str | None = None

    # -- bookkeeping, for tests and diagnostics
    def cached(self) -> int:
        """Tensor lists whose chunk tables the LRU holds."""
        return len(self._tables)

    def captured(self) -> int:
        """Tensor lists whose chunk tables are held for captured graphs."""
        return len(self._captured)

    def table_of(self, prep: Prepared) -> Any:
        """The cached chunk table of ``prep`` (device tensor), or None."""
        key = _plan_key(self.api.index(prep.device), prep)
        with self._lock:
            entry = self._captured.get(key) or self._tables.get(key)
        return None if entry is None else entry.table

    # -- the four entry points
    def tensor_stats(
        self, prep: Prepared, out: Any, hist: Any, dormant_threshold: float, extended: bool
    ) -> Any:
        n = len(prep.ptrs)
        with self._on_device(prep.device) as (index, stream, capturing):
            table, n_chunks, workspace = self._buffers(prep, index, stream, capturing, extended)
            code = self.ext.launch_stats(
                table.data_ptr(),
                n_chunks,
                n,
                any(prep.row_lens),
                extended,
                workspace.data_ptr(),
                dormant_threshold,
                out.data_ptr(),
                hist.data_ptr() if extended else 0,
                self.api.handle(stream),
            )
            self._check(code)
            # An event recorded while capturing belongs to the graph: no host wait on it.
            return None if capturing else self.api.record_event(stream)

    def tensor_records(
        self,
        prep: Prepared,
        dormant_threshold: float,
        extended: bool,
        records: Any,
        accumulate: bool,
    ) -> None:
        n = len(prep.ptrs)
        _check_buffer(records, (n, _record_bytes(extended)), "uint8", prep.device, "records")
        if n == 0:
            return
        with self._on_device(prep.device) as (index, stream, capturing):
            table, n_chunks, workspace = self._buffers(prep, index, stream, capturing, extended)
            code = self.ext.launch_records(
                table.data_ptr(),
                n_chunks,
                n,
                any(prep.row_lens),
                extended,
                workspace.data_ptr(),
                dormant_threshold,
                records.data_ptr(),
                accumulate,
                self.api.handle(stream),
            )
            self._check(code)

    def finalize_records(self, records: Any, n: int, extended: bool, out: Any, hist: Any) -> None:
        device = records.device
        _check_buffer(records, (n, _record_bytes(extended)), "uint8", device, "records")
        width = NUM_EXTENDED_COLUMNS if extended else NUM_COLUMNS
        _check_buffer(out, (n + 1, width), "float64", device, "out")
        if extended:
            _check_buffer(hist, (n + 1, HIST_BINS), "int64", device, "hist")
        _check_grid(n, "records")
        with self._on_device(device) as (index, stream, _):
            workspace = self.api.empty(self.ext.finalize_workspace_bytes(extended), index, stream)
            code = self.ext.launch_finalize(
                records.data_ptr(),
                n,
                extended,
                workspace.data_ptr(),
                out.data_ptr(),
                hist.data_ptr() if extended else 0,
                self.api.handle(stream),
            )
            self._check(code)

    def merge_records(
        self, src: Any, n_sources: int, n: int, extended: bool, include: Any, dst: Any
    ) -> None:
        device = src.device
        rb = _record_bytes(extended)
        _check_buffer(src, (n_sources * n, rb), "uint8", device, "src")
        _check_buffer(dst, (n, rb), "uint8", device, "dst")
        if include is not None:
            _check_buffer(include, (n_sources, n), "uint8", device, "include")
        _check_grid(n, "records")
        if n == 0:
            return
        with self._on_device(device) as (_, stream, _capturing):
            code = self.ext.launch_merge(
                src.data_ptr(),
                n_sources,
                n,
                extended,
                include.data_ptr() if include is not None else 0,
                dst.data_ptr(),
                self.api.handle(stream),
            )
            self._check(code)

    # -- internals
    @contextmanager
    def _on_device(self, device: Any) -> Iterator[tuple[int, Any, bool]]:
        if self.unusable is not None:
            raise CudaUnusable(self.unusable)
        index = self.api.index(device)
        with self.api.on_device(index):
            capturing = self.api.is_capturing()
            if index not in self._probed and not capturing:
                # Loads the kernels for this GPU without launching: a driver or GPU this
                # build cannot run on shows here, at first use, not in a user's graph
                # (a captured call follows an eager one, or is a GraphCaptureError).
                self._check(self.ext.probe())
                self._probed.add(index)
            yield index, self.api.current_stream(index), capturing

    def _check(self, code: int) -> None:
        if code == 0:
            return
        message = str(self.ext.error_string(code))
        if code in tuple(self.ext.UNUSABLE_CODES):
            self.unusable = message
            _log.warning(
                "fusedstats: the CUDA kernels cannot run on this machine (%s); CUDA "
                "tensors use the torch path from now on",
                message,
            )
            raise CudaUnusable(message)
        raise RuntimeError(f"fusedstats CUDA launch failed: {message}")

    def _buffers(
        self, prep: Prepared, index: int, stream: Any, capturing: bool, extended: bool
    ) -> tuple[Any, int, Any]:
        """(device chunk table, n_chunks, workspace) for one launch."""
        n = len(prep.ptrs)
        _check_grid(n, "tensors")
        if extended and any(r > MAX_EXTENDED_CHUNK for r in prep.row_lens):
            raise ValueError(
                f"rows longer than {MAX_EXTENDED_CHUNK} elements are not supported by the "
                "extended pass on CUDA"
            )
        if prep.n_copied:
            if capturing:
                raise GraphCaptureError(
                    f"{prep.n_copied} input(s) of tensor_stats need a contiguous copy "
                    "(non-contiguous or lazily negated tensors): inside CUDA-graph capture "
                    "the copies get new memory every time, so their chunk table cannot be "
                    "made before the capture. Pass contiguous tensors (e.g. .contiguous() "
                    "outside the captured region)."
                )
            table_bytes, n_chunks = self.ext.plan(
                prep.ptrs, prep.numels, prep.dtypes, prep.row_lens
            )
            _check_grid(n_chunks, "chunks")
            table = self.api.upload(table_bytes, index, stream)
            workspace = self.api.empty(
                self.ext.workspace_bytes(n_chunks, n, extended), index, stream
            )
            return table, n_chunks, workspace
        key = _plan_key(index, prep)
        with self._lock:
            entry = self._captured.get(key)
            if entry is None:
                entry = self._tables.get(key)
                if entry is not None:
                    self._tables.move_to_end(key)
                    if capturing:  # baked into a graph from now on: never evicted
                        del self._tables[key]
                        entry.captured = True
                        self._captured[key] = entry
        handle = self.api.handle(stream)
        if entry is None:
            if capturing:
                raise GraphCaptureError(
                    "tensor_stats was called inside CUDA-graph capture with a tensor list it "
                    "has not seen: its chunk table goes to the GPU from pinned host memory, "
                    "which cannot be captured. Call it once with the same tensors before "
                    "capturing (on any stream)."
                )
            table_bytes, n_chunks = self.ext.plan(
                prep.ptrs, prep.numels, prep.dtypes, prep.row_lens
            )
            _check_grid(n_chunks, "chunks")
            fresh = _Table(self.api.upload(table_bytes, index, stream), n_chunks, {handle})
            with self._lock:
                entry = self._captured.get(key) or self._tables.get(key)
                if entry is None:  # (else another thread planned it meanwhile)
                    entry = fresh
                    self._tables[key] = entry
                    while len(self._tables) > CACHE_SIZE:
                        self._tables.popitem(last=False)
        ws_bytes = self.ext.workspace_bytes(entry.n_chunks, n, extended)
        if capturing:  # this capture's own, from the graph's pool
            return entry.table, entry.n_chunks, self.api.empty(ws_bytes, index, stream)
        with self._lock:
            if handle not in entry.used_on:
                entry.used_on.add(handle)
                self.api.use_on(entry.table, stream)
            workspace = entry.workspaces.get((handle, extended))
            if workspace is None:
                workspace = self.api.empty(ws_bytes, index, stream)
                entry.workspaces[(handle, extended)] = workspace
        return entry.table, entry.n_chunks, workspace


def _record_bytes(extended: bool) -> int:
    return int(_native.core.record_bytes(extended))


def _check_grid(n: int, what: str) -> None:
    if n > MAX_GRID:
        raise ValueError(f"{n} {what} is more than one CUDA launch can take ({MAX_GRID})")


def _check_buffer(buf: Any, shape: tuple[int, ...], dtype: str, device: Any, what: str) -> None:
    """ValueError unless ``buf`` is a contiguous, 8-byte aligned buffer of this shape and
    dtype on ``device``: the kernels write it through a raw pointer."""
    ok = (
        tuple(buf.shape) == shape
        and str(buf.dtype) == f"torch.{dtype}"
        and buf.device == device
        and buf.is_contiguous()
        and (buf.numel() == 0 or buf.data_ptr() % 8 == 0)
    )
    if not ok:
        raise ValueError(
            f"{what} must be a contiguous, 8-byte aligned {dtype} tensor of shape {shape} on "
            f"{device}; got {tuple(buf.shape)} {buf.dtype} on {buf.device}"
        )


# ---- the process's launcher -------------------------------------------------------------

_launcher: Launcher | None = None
_launcher_lock = threading.Lock()


def launcher() -> Launcher:
    """The launcher of fusedstats._cuda (made at first use)."""
    global _launcher  # noqa: PLW0603
    if _launcher is None:
        with _launcher_lock:
            if _launcher is None:
                if not _native.cuda_built():
                    raise CudaUnusable("fusedstats._cuda is not built")
                _launcher = Launcher(_native.cuda, TorchCuda())
    return _launcher


def set_launcher(new: Launcher | None) -> Launcher | None:
    """Replaces the process's launcher (tests: the host emulation); returns the old one."""
    global _launcher
    with _launcher_lock:
        old, _launcher = _launcher, new
    return old


def tensor_stats(
    prep: Prepared, out: Any, hist: Any, dormant_threshold: float, extended: bool
) -> Any:
    """Fills ``out`` (and ``hist`` when extended); returns an event recorded on the
    launch stream after the launch (None while capturing a CUDA graph)."""
    return launcher().tensor_stats(prep, out, hist, dormant_threshold, extended)


def tensor_records(
    prep: Prepared, dormant_threshold: float, extended: bool, records: Any, accumulate: bool
) -> None:
    """Per-tensor mergeable records of ``prep`` into ``records`` ([n, record_bytes]
    uint8 on the device); with ``accumulate`` merged into what they hold."""
    launcher().tensor_records(prep, dormant_threshold, extended, records, accumulate)


def finalize_records(records: Any, n: int, extended: bool, out: Any, hist: Any) -> None:
    """Rows of ``n`` records and the global row (their merge) into ``out`` (and
    ``hist`` when extended), on the records' device."""
    launcher().finalize_records(records, n, extended, out, hist)


def merge_records(src: Any, n_sources: int, n: int, extended: bool, include: Any, dst: Any) -> None:
    """``dst[t]`` = merge of ``src[s * n + t]`` over sources s in order, where
    ``include[s, t]`` (None: all)."""
    launcher().merge_records(src, n_sources, n, extended, include, dst)
