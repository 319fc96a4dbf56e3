"""The CUDA path's Python logic (kernels/cuda_path.py) on the host: chunk tables keyed
without the stream, tables used while capturing never evicted, a workspace per capture,
copied inputs never cached, events at launch, and the fallback when the build cannot
run here. The launcher runs the real kernel code through the host emulation
(fusedstats._cuda_emu) on CPU buffers; only what needs a GPU (streams, capture state,
device memory) is played by HostApi."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import numpy as np
import pytest
import torch
from tests.helpers import assert_matches_reference

import fusedstats._cuda_emu as emu
from fusedstats import _native
from fusedstats.kernels import cuda_path, dispatch, inputs
from fusedstats.kernels.columns import NUM_COLUMNS
from fusedstats.kernels.cuda_path import CudaUnusable, GraphCaptureError, Launcher

INSUFFICIENT_DRIVER = 35  # cudaErrorInsufficientDriver
NO_KERNEL_IMAGE = 209  # cudaErrorNoKernelImageForDevice
ILLEGAL_ADDRESS = 700  # cudaErrorIllegalAddress


class Stream:
    def __init__(self, handle: int) -> None:
        self.cuda_stream = handle


class HostApi:
    """cuda_path.TorchCuda on the host: CPU buffers (the emulated kernels read and write
    host memory), streams as numbers, a capture flag the test sets."""

    def __init__(self) -> None:
        self.stream = Stream(1)
        self.capturing = False
        self.uploads = 0
        self.allocations: list[int] = []
        self.graph_pool: list[torch.Tensor] = []
        self.used_on: list[tuple[int, int]] = []

    def index(self, device: Any) -> int:
        return 0

    def on_device(self, index: int) -> Any:
        return nullcontext()

    def current_stream(self, index: int) -> Stream:
        return self.stream

    def handle(self, stream: Stream) -> int:
        return stream.cuda_stream

    def is_capturing(self) -> bool:
        return self.capturing

    def upload(self, data: bytes, index: int, stream: Stream) -> torch.Tensor:
        self.uploads += 1
        return torch.frombuffer(bytearray(data), dtype=torch.uint8)

    def empty(self, nbytes: int, index: int, stream: Stream) -> torch.Tensor:
        buf = torch.full((nbytes,), 0xA5, dtype=torch.uint8)  # garbage, as on a device
        self.allocations.append(buf.data_ptr())
        if self.capturing:  # the graph's private pool keeps what a capture allocated
            self.graph_pool.append(buf)
        return buf

    def use_on(self, buf: torch.Tensor, stream: Stream) -> None:
        self.used_on.append((buf.data_ptr(), stream.cuda_stream))

    def record_event(self, stream: Stream) -> tuple[str, int]:
        return ("event", stream.cuda_stream)


class Ext:
    """fusedstats._cuda_emu with the launches it was asked for recorded, and errors
    injected where a test says."""

    def __init__(self, probe_error: int = 0, launch_error: int = 0) -> None:
        self.probe_error = probe_error
        self.launch_error = launch_error
        self.probes = 0
        self.workspaces: list[int] = []
        self.UNUSABLE_CODES = (INSUFFICIENT_DRIVER, NO_KERNEL_IMAGE)
        self.plan = emu.plan
        self.workspace_bytes = emu.workspace_bytes
        self.finalize_workspace_bytes = emu.finalize_workspace_bytes

    def probe(self) -> int:
        self.probes += 1
        return self.probe_error

    def error_string(self, code: int) -> str:
        return f"error {code}"

    def launch_stats(self, *args: Any) -> int:
        self.workspaces.append(args[5])
        return self.launch_error or emu.launch_stats(*args)

    def launch_records(self, *args: Any) -> int:
        self.workspaces.append(args[5])
        return self.launch_error or emu.launch_records(*args)

    def launch_finalize(self, *args: Any) -> int:
        return self.launch_error or emu.launch_finalize(*args)

    def launch_merge(self, *args: Any) -> int:
        return self.launch_error or emu.launch_merge(*args)


def tensors(seed: int, n: int = 3) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(rng.normal(1.0, 2.0, int(rng.integers(1, 70_000)))) for _ in range(n)]


def run(launcher: Launcher, xs: list[torch.Tensor], extended: bool = False) -> tuple[Any, Any]:
    prep = inputs.prepare(xs, None)
    out = dispatch.new_output(prep, extended)
    hist = dispatch.new_histogram(prep) if extended else None
    event = launcher.tensor_stats(prep, out, hist, 0.0, extended)
    return out, event


@pytest.fixture
def api() -> HostApi:
    return HostApi()


@pytest.fixture
def ext() -> Ext:
    return Ext()


@pytest.fixture
def launcher(ext: Ext, api: HostApi) -> Launcher:
    return Launcher(ext, api)


def test_results_are_the_kernels(launcher: Launcher) -> None:
    xs = [*tensors(0), torch.zeros(0), torch.tensor([np.nan, 1.0])]
    for _ in range(2):  # the second call reuses the cached table and workspace
        out, _ = run(launcher, xs)
        assert_matches_reference(out, xs)


def test_warm_up_on_one_stream_then_capture_on_another_is_a_hit(
    launcher: Launcher, api: HostApi, ext: Ext
) -> None:
    xs = tensors(1)
    run(launcher, xs)  # the warm-up, on stream 1
    api.stream, api.capturing = Stream(2), True  # torch.cuda.graph's own stream
    out, event = run(launcher, xs)
    assert api.uploads == 1, "capture re-planned the table (keyed by stream?)"
    assert event is None, "an event recorded while capturing cannot be waited on"
    assert_matches_reference(out, xs)


def test_a_miss_while_capturing_is_a_clear_error(
    launcher: Launcher, api: HostApi, ext: Ext
) -> None:
    api.capturing = True
    with pytest.raises(GraphCaptureError, match="Call it once with the same tensors before"):
        run(launcher, tensors(2))
    assert api.uploads == 0
    assert ext.probes == 0, "probed inside a capture"


def test_tables_used_while_capturing_are_never_evicted(launcher: Launcher, api: HostApi) -> None:
    xs, other = tensors(3), tensors(4)
    run(launcher, xs)
    run(launcher, other)
    api.capturing = True
    run(launcher, xs)
    api.capturing = False
    prep = inputs.prepare(xs, None)
    table = launcher.table_of(prep)
    content = table.clone()
    keep = [tensors(100 + i, 1) for i in range(cuda_path.CACHE_SIZE + 8)]  # other lists
    for ys in keep:
        run(launcher, ys)
    assert launcher.cached() == cuda_path.CACHE_SIZE
    assert launcher.captured() == 1
    assert launcher.table_of(prep) is table, "the captured graph's table was dropped"
    assert torch.equal(table, content)
    assert launcher.table_of(inputs.prepare(other, None)) is None, "the LRU never evicts"
    uploads = api.uploads
    api.capturing = True  # a second capture of the same list: still a hit
    out, _ = run(launcher, xs)
    assert api.uploads == uploads
    assert_matches_reference(out, xs)


def test_each_capture_gets_its_own_workspace(launcher: Launcher, api: HostApi, ext: Ext) -> None:
    xs = tensors(5)
    run(launcher, xs)
    run(launcher, xs)
    eager = set(ext.workspaces)
    assert len(eager) == 1, "eager calls on one stream reuse their workspace"
    api.capturing = True
    run(launcher, xs)
    run(launcher, xs)
    captured = ext.workspaces[2:]
    assert len(set(captured)) == 2 and not set(captured) & eager


def test_a_second_stream_gets_its_own_workspace_and_keeps_the_table_alive(
    launcher: Launcher, api: HostApi, ext: Ext
) -> None:
    xs = tensors(6)
    run(launcher, xs)
    api.stream = Stream(7)
    run(launcher, xs)
    run(launcher, xs)
    assert api.uploads == 1
    assert ext.workspaces[0] != ext.workspaces[1] == ext.workspaces[2]
    table = launcher.table_of(inputs.prepare(xs, None))
    # record_stream once for the new stream, never for the stream that uploaded it
    assert api.used_on == [(table.data_ptr(), 7)]


def test_copied_inputs_are_never_cached(launcher: Launcher, api: HostApi) -> None:
    base = torch.from_numpy(np.random.default_rng(7).normal(0, 1, (300, 40)))
    xs = [base.t(), base[:, ::2]]  # non-contiguous: copied on every call
    for i in range(3):
        out, _ = run(launcher, xs)
        assert_matches_reference(out, xs)
        assert launcher.cached() == 0
        assert api.uploads == i + 1
    api.capturing = True
    with pytest.raises(GraphCaptureError, match="2 input\\(s\\) of tensor_stats need a contiguous"):
        run(launcher, xs)


def test_an_event_is_recorded_at_each_launch(launcher: Launcher, api: HostApi) -> None:
    api.stream = Stream(9)
    _, event = run(launcher, tensors(8))
    assert event == ("event", 9)


@pytest.mark.parametrize("where", ["probe", "launch"])
def test_a_driver_that_cannot_run_the_build_disables_cuda_once(
    where: str, api: HostApi, caplog: pytest.LogCaptureFixture
) -> None:
    ext = (
        Ext(probe_error=INSUFFICIENT_DRIVER)
        if where == "probe"
        else Ext(launch_error=NO_KERNEL_IMAGE)
    )
    launcher = Launcher(ext, api)
    with caplog.at_level(logging.WARNING, logger="fusedstats"):
        for _ in range(3):
            with pytest.raises(CudaUnusable, match="error"):
                run(launcher, tensors(9))
    assert launcher.unusable is not None
    assert ext.probes == 1
    warnings = [r for r in caplog.records if "cannot run on this machine" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.skipif(
    not _native.cuda_built() or torch.cuda.is_available(),
    reason="needs fusedstats._cuda built and no usable GPU driver (this machine's case)",
)
def test_the_real_runtime_without_a_driver_is_unusable(api: HostApi) -> None:
    """Review F4 with the real static CUDA runtime: with no (or too old a) driver, the
    first use says the build cannot run here, instead of raising on every call."""
    ext = _native.cuda
    assert ext.probe() in ext.UNUSABLE_CODES
    launcher = Launcher(ext, api)
    with pytest.raises(CudaUnusable, match="cudaError"):
        run(launcher, tensors(16))
    assert "cudaError" in str(launcher.unusable)


def test_other_launch_errors_raise_and_leave_cuda_on(api: HostApi) -> None:
    ext = Ext(launch_error=ILLEGAL_ADDRESS)
    launcher = Launcher(ext, api)
    with pytest.raises(RuntimeError, match="fusedstats CUDA launch failed: error 700"):
        run(launcher, tensors(10))
    assert launcher.unusable is None
    ext.launch_error = 0
    out, _ = run(launcher, tensors(10))
    assert_matches_reference(out, tensors(10))


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Installs a launcher as the process's (restored after) and makes the CUDA path
    look available: dispatch then takes it for inputs marked as CUDA tensors."""
    monkeypatch.setattr(cuda_path, "available", lambda: True)
    old = cuda_path.set_launcher(None)

    def install(launcher: Launcher) -> None:
        cuda_path.set_launcher(launcher)

    yield install
    cuda_path.set_launcher(old)


def test_dispatch_takes_the_torch_path_when_the_build_cannot_run(
    installed: Any, api: HostApi
) -> None:
    installed(Launcher(Ext(probe_error=INSUFFICIENT_DRIVER), api))
    xs = tensors(11)
    prep = inputs.prepare(xs, None)
    prep.kind = "cuda"  # as for CUDA tensors
    out = dispatch.new_output(prep, False)
    path, event = dispatch.run(prep, out, None, 0.0, False)
    assert (path, event) == ("torch", None)
    assert_matches_reference(out, xs)
    installed(Launcher(Ext(), api))
    path, event = dispatch.run(prep, out, None, 0.0, False)
    assert path == "cuda" and event is not None
    assert_matches_reference(out, xs)


def test_more_chunks_than_a_launch_takes_is_a_value_error(launcher: Launcher, ext: Ext) -> None:
    ext.plan = lambda *args: (emu.plan(*args)[0], cuda_path.MAX_GRID + 1)
    with pytest.raises(ValueError, match="more than one CUDA launch can take"):
        run(launcher, tensors(12))


def test_threads_with_different_thresholds_get_their_own_counts(launcher: Launcher) -> None:
    """Review F7's race needs a GPU; here: the Python side holds no shared state that two
    threads calling with one list could mix up."""
    rng = np.random.default_rng(13)
    w = torch.from_numpy(rng.random((400, 50)))
    row_means = w.abs().mean(dim=1)
    prep = inputs.prepare([w], None, [50])
    results: dict[float, list[float]] = {}
    errors: list[BaseException] = []

    def worker(threshold: float) -> None:
        try:
            for _ in range(20):
                out = dispatch.new_output(prep, False)
                launcher.tensor_stats(prep, out, None, threshold, False)
                results.setdefault(threshold, []).append(float(out[0, -1]))
        except BaseException as err:
            errors.append(err)

    thresholds = [float(row_means.quantile(q)) + 1e-9 for q in (0.2, 0.5, 0.8)]
    threads = [threading.Thread(target=worker, args=(t,)) for t in thresholds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    for threshold in thresholds:
        want = float((row_means < threshold).sum())
        assert results[threshold] == [want] * 20


@pytest.mark.parametrize("extended", [False, True])
def test_records_finalize_and_merge_through_the_launcher(
    launcher: Launcher, extended: bool
) -> None:
    core = _native.core
    xs = tensors(14, 4)
    ys = [
        torch.from_numpy(np.random.default_rng(i).normal(5.0, 1.0, x.numel()))
        for i, x in enumerate(xs)
    ]
    prep = inputs.prepare(xs, None)
    n = len(xs)
    records = dispatch.new_records(prep, n, extended)
    launcher.tensor_records(prep, 0.0, extended, records, False)
    launcher.tensor_records(inputs.prepare(ys, None), 0.0, extended, records, True)
    out = dispatch.new_output(prep, extended)
    hist = dispatch.new_histogram(prep) if extended else None
    launcher.finalize_records(records, n, extended, out, hist)
    both = [torch.cat([x, y]) for x, y in zip(xs, ys, strict=True)]
    assert_matches_reference(out[:, :NUM_COLUMNS], both)
    # merge: two sources, the second tensor counted from source 1 only
    src = torch.cat([records, records])
    include = torch.ones((2, n), dtype=torch.uint8)
    include[0, 1] = 0
    merged = torch.empty_like(records)
    launcher.merge_records(src, 2, n, extended, include, merged)
    cpu = torch.empty_like(records)
    core.merge_records(src.data_ptr(), 2, n, extended, include.data_ptr(), cpu.data_ptr())
    assert torch.equal(merged, cpu)
    with pytest.raises(ValueError, match="records must be a contiguous"):
        launcher.tensor_records(prep, 0.0, extended, records[:, :-8], False)
