"""The CUDA kernel on a GPU: reference results, same bits every call, no host sync, no
allocation after the first call, CUDA-graph capture (the review's F1, F2 and F5 repros,
now expected to pass), a compiled reduce-overhead step, the caller's stream and device,
and the GPU's buffers equal to the host emulation's bit for bit. Skipped without a GPU
(scripts/gpu_check.sh runs them where one is)."""

import numpy as np
import pytest
import torch
from hypothesis import given
from tests.gpu import sync_is_an_error
from tests.helpers import (
    CUDA_CHUNK,
    TORCH_DTYPES,
    assert_bitwise_equal,
    assert_matches_reference,
    cases,
    field_mismatch,
    make_tensors,
    property_settings,
    reference_buffer,
)
from torch import nn

import fusedstats
from fusedstats import COLUMNS, FIELDS, NUM_COLUMNS, _native

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
needs_kernel = pytest.mark.skipif(
    not _native.cuda_built(),
    reason="fusedstats._cuda is not built (CUDA tensors use the reference)",
)
two_gpus = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")


def _on_cpu(tensors):
    return [t.cpu() for t in tensors]


def _out(n: int, device="cuda") -> torch.Tensor:
    return torch.empty(n + 1, NUM_COLUMNS, dtype=torch.float64, device=device)


def _contiguous_tensors(seed: int, device="cuda") -> list[torch.Tensor]:
    """A fixed mix of dtypes and sizes around chunk edges, with NaN/Inf, all contiguous
    (non-contiguous inputs get a fresh copy, hence new pointers, on every call)."""
    rng = np.random.default_rng(seed)
    sizes = [3 * CUDA_CHUNK + 5, CUDA_CHUNK, 1, 0, 4097, 2 * CUDA_CHUNK - 1]
    out = []
    for i, numel in enumerate(sizes):
        values = rng.normal(float(rng.choice([0.0, 1e4])), 2.0, numel)
        if numel > 10 and i % 2:
            values[rng.integers(0, numel, 3)] = [np.nan, np.inf, -np.inf]
        dtype = list(TORCH_DTYPES.values())[i % len(TORCH_DTYPES)]
        out.append(torch.from_numpy(values).to(device=device, dtype=dtype))
    return out


@needs_kernel
@property_settings(max_examples=40)
@given(case=cases(libs=("torch",)))
def test_matches_reference_on_random_lists(case):
    tensors = make_tensors(case, device="cuda")
    stats = fusedstats.tensor_stats(tensors)
    assert stats.path == "cuda"
    assert stats.as_tensor().device == tensors[0].device
    assert_matches_reference(stats.as_tensor(), _on_cpu(tensors))


@needs_kernel
@pytest.mark.parametrize("start", [0, 1, 2, 3, 7])  # 16-byte aligned head or not
@pytest.mark.parametrize("dtype", list(TORCH_DTYPES))
def test_chunk_edges_and_unaligned_starts(dtype, start):
    rng = np.random.default_rng(start)
    base = torch.from_numpy(rng.normal(1.0, 3.0, 3 * CUDA_CHUNK + 64))
    base = base.to(device="cuda", dtype=TORCH_DTYPES[dtype])
    base[CUDA_CHUNK] = float("nan")
    sizes = [1, 5, CUDA_CHUNK - 1, CUDA_CHUNK, CUDA_CHUNK + 1, 2 * CUDA_CHUNK + 7]
    tensors = [base[start : start + n] for n in sizes]
    assert all(t.is_contiguous() for t in tensors)
    assert_matches_reference(fusedstats.tensor_stats(tensors).as_tensor(), _on_cpu(tensors))


@needs_kernel
def test_many_small_tensors():
    rng = np.random.default_rng(4)
    tensors = [
        torch.from_numpy(rng.normal(0, 1, int(rng.integers(0, 50)))).to("cuda", torch.float32)
        for _ in range(2000)
    ]
    assert_matches_reference(fusedstats.tensor_stats(tensors).as_tensor(), _on_cpu(tensors))


@needs_kernel
def test_same_bits_every_call():
    tensors = _contiguous_tensors(1)
    first = fusedstats.tensor_stats(tensors).as_tensor().clone()
    out = _out(len(tensors))
    for _ in range(3):
        assert_bitwise_equal(first, fusedstats.tensor_stats(tensors).as_tensor())
        assert_bitwise_equal(first, fusedstats.tensor_stats(tensors, out=out).as_tensor())
    copies = [t.clone() for t in tensors]  # other addresses, so another cached table
    assert_bitwise_equal(first, fusedstats.tensor_stats(copies).as_tensor())
    assert_matches_reference(first, _on_cpu(tensors))


@needs_kernel
def test_result_lives_on_the_input_device():
    tensors = _contiguous_tensors(2)
    buffer = fusedstats.tensor_stats(tensors).as_tensor()
    assert buffer.device == tensors[0].device
    assert buffer.dtype == torch.float64
    assert buffer.shape == (len(tensors) + 1, NUM_COLUMNS)


@needs_kernel
def test_no_host_sync_once_the_list_is_known():
    tensors = _contiguous_tensors(3)
    out = _out(len(tensors))
    fusedstats.tensor_stats(tensors, out=out)  # first call: plans the chunk table
    with sync_is_an_error():
        fusedstats.tensor_stats(tensors, out=out)
        stats = fusedstats.tensor_stats(tensors)
    assert_matches_reference(stats.as_tensor(), _on_cpu(tensors))  # reading syncs: allowed


@needs_kernel
def test_no_host_sync_on_the_first_call():
    # The spec allows an allocation on the first call for a list, not a sync: the chunk
    # table goes up with a non-blocking copy from pinned memory.
    tensors = _contiguous_tensors(4)
    with sync_is_an_error():
        stats = fusedstats.tensor_stats(tensors)
    assert_matches_reference(stats.as_tensor(), _on_cpu(tensors))


@needs_kernel
def test_no_allocation_after_the_first_call():
    tensors = _contiguous_tensors(5)
    out = _out(len(tensors))
    fusedstats.tensor_stats(tensors, out=out)  # caches the chunk table and workspace

    def allocations() -> int:
        return torch.cuda.memory_stats()["allocation.all.allocated"]

    before = allocations()
    for _ in range(3):
        fusedstats.tensor_stats(tensors, out=out)
    assert allocations() - before == 0, "allocated with out= and a known list"

    before = allocations()
    fusedstats.tensor_stats(tensors)
    assert allocations() - before <= 1, "more than the result buffer allocated"
    torch.cuda.synchronize()
    assert_matches_reference(out, _on_cpu(tensors))


@needs_kernel
def test_cuda_graph_replay_matches_eager():
    rng = np.random.default_rng(6)
    tensors = _contiguous_tensors(6)
    out = _out(len(tensors))
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up on the capture stream: the table is cached there
        fusedstats.tensor_stats(tensors, out=out)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        fusedstats.tensor_stats(tensors, out=out)

    for mean in (0.0, 1e4, -3.0):  # replays twice or more: the finishing ticket re-arms
        for t in tensors:
            fresh = torch.from_numpy(rng.normal(mean, 2.0, t.numel())).to(t.dtype)
            t.copy_(fresh.view(t.shape))
        out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        eager = fusedstats.tensor_stats(tensors).as_tensor()
        assert_bitwise_equal(out, eager, "graph replay vs eager")
        assert_matches_reference(out, _on_cpu(tensors))


@needs_kernel
@pytest.mark.skipif(not hasattr(torch.cuda, "_sleep"), reason="torch.cuda._sleep is private")
def test_out_on_a_non_default_stream_runs_on_that_stream():
    n = 3 * CUDA_CHUNK
    x = torch.zeros(n, device="cuda")
    new = torch.randn(n, device="cuda")
    out = _out(1)
    stream = torch.cuda.Stream()
    torch.cuda.synchronize()
    with torch.cuda.stream(stream):
        fusedstats.tensor_stats([x], out=out)  # plans on this stream
        torch.cuda._sleep(50_000_000)  # keeps the stream busy: a launch elsewhere runs first
        x.copy_(new)
        stats = fusedstats.tensor_stats([x], out=out)
    assert stats.as_tensor() is out
    stream.synchronize()
    assert_matches_reference(out, [new.cpu()])


def test_mixed_devices_are_a_value_error():
    gpu, cpu = torch.ones(3, device="cuda"), torch.ones(3)
    with pytest.raises(ValueError, match=r"item 1 \('b'\) is on cpu"):
        fusedstats.tensor_stats([gpu, cpu], names=["a", "b"])
    with pytest.raises(ValueError, match=r"item 1 \('b'\) is on cuda"):
        fusedstats.tensor_stats([cpu, gpu], names=["a", "b"])
    with pytest.raises(ValueError, match="item 1"):
        fusedstats.tensor_stats([np.ones(3), gpu])


def test_out_on_another_device_is_a_value_error():
    with pytest.raises(ValueError, match="out must be"):
        fusedstats.tensor_stats([torch.ones(3, device="cuda")], out=_out(1, device="cpu"))


@two_gpus
def test_tensors_on_a_second_gpu_leave_the_current_device_alone():
    # cuda_path switches with torch.cuda.device only when needed; the caller's device
    # must survive it (and no cudaSetDevice from our C++: review F10).
    x = torch.randn(3 * CUDA_CHUNK, device="cuda:1")
    with torch.cuda.device(0):
        stats = fusedstats.tensor_stats([x])
        assert torch.cuda.current_device() == 0
    assert stats.as_tensor().device == x.device
    torch.cuda.synchronize(1)
    assert_matches_reference(stats.as_tensor(), [x.cpu()])


@two_gpus
def test_two_gpus_in_one_list_are_a_value_error():
    with pytest.raises(ValueError, match="item 1"):
        fusedstats.tensor_stats([torch.ones(3, device="cuda:0"), torch.ones(3, device="cuda:1")])


def _assert_keyed_close(got: dict, prefix: str, reference_row: np.ndarray) -> None:
    expected = dict(zip(COLUMNS, reference_row.tolist(), strict=True))
    for field in FIELDS:
        key = f"{prefix}variance" if field == "var" else f"{prefix}{field}"
        why = field_mismatch(field, got[key], expected, 1e-6)
        assert not why, f"{key}: {why}"


@needs_kernel
def test_grad_and_weight_stats_on_cuda():
    torch.manual_seed(0)
    # rows longer than a CUDA chunk, and many short rows per chunk
    model = nn.Sequential(nn.Linear(40_000, 3), nn.ReLU(), nn.Linear(3, 30_000)).cuda()
    with torch.no_grad():
        model[2].weight[::4].zero_()
    model(torch.randn(2, 40_000, device="cuda")).sum().backward()

    grads = [p.grad.cpu() for p in model.parameters()]
    _assert_keyed_close(fusedstats.grad_stats(model), "grad/", reference_buffer(grads)[-1])

    values = [p.detach().cpu() for p in model.parameters()]
    row_lens = [p.shape[1] if p.dim() == 2 else 0 for p in values]
    ref = reference_buffer(values, row_lens, 1e-6)
    got = fusedstats.weight_stats(model)
    _assert_keyed_close(got, "weights/", ref[-1])
    dormant = COLUMNS.index("n_dormant_rows")
    assert ref[2, dormant] >= 30_000 / 4
    assert got["weights/dormant_frac/2.weight"] == ref[2, dormant] / 30_000
    assert got["weights/dormant_frac/0.weight"] == ref[0, dormant] / 3


# ---- the review's repros (F1, F2, F5, F6, F7, F11), graphs, compile -------------------


@needs_kernel
def test_f1_a_captured_graph_survives_40_other_lists_and_empty_cache():
    params = _contiguous_tensors(20)
    out = _out(len(params))
    fusedstats.tensor_stats(params, out=out)  # warm-up: the table is planned here
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fusedstats.tensor_stats(params, out=out)
    for i in range(40):  # more lists than the LRU holds
        fusedstats.tensor_stats([torch.randn(1000 + i, device="cuda")])
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    other = torch.cuda.CUDAGraph()
    with torch.cuda.graph(other):  # __enter__ empties the cache again
        torch.zeros(1, device="cuda").add_(1)
    for p in params:
        p.mul_(2.0).add_(1.0)
    out.fill_(float("nan"))
    graph.replay()
    torch.cuda.synchronize()
    assert_matches_reference(out, _on_cpu(params))


@needs_kernel
def test_f2_warm_up_on_a_side_stream_then_capture_without_stream_argument():
    tensors = _contiguous_tensors(21)
    out = _out(len(tensors))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # torch's documented warm-up
        fusedstats.tensor_stats(tensors, out=out)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):  # captures on torch's default capture stream
        fusedstats.tensor_stats(tensors, out=out)
    for t in tensors:
        t.add_(3.0)
    graph.replay()
    torch.cuda.synchronize()
    assert_matches_reference(out, _on_cpu(tensors))


@needs_kernel
def test_a_miss_while_capturing_is_a_clear_error():
    from fusedstats.kernels.cuda_path import GraphCaptureError

    tensors = _contiguous_tensors(22)
    fusedstats.tensor_stats(tensors[:2])  # another list: the kernels are loaded
    graph = torch.cuda.CUDAGraph()
    with pytest.raises(GraphCaptureError, match="before capturing"), torch.cuda.graph(graph):
        fusedstats.tensor_stats(tensors)


@needs_kernel
def test_f5_replays_overlapping_eager_calls_leave_later_calls_right():
    tensors = _contiguous_tensors(23)
    out = _out(len(tensors))
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fusedstats.tensor_stats(tensors, out=out)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=s):
        fusedstats.tensor_stats(tensors, out=out)
    torch.cuda.synchronize()
    for _ in range(20):
        graph.replay()  # on the current stream, overlapping the eager calls on s
        with torch.cuda.stream(s):
            fusedstats.tensor_stats(tensors)
    torch.cuda.synchronize()
    cpu = _on_cpu(tensors)
    assert_matches_reference(out, cpu)
    for stream in (s, torch.cuda.current_stream()):
        with torch.cuda.stream(stream):
            stats = fusedstats.tensor_stats(tensors)
        assert_matches_reference(stats.as_tensor(), cpu)  # the read waits for its event


@needs_kernel
@pytest.mark.skipif(not hasattr(torch.cuda, "_sleep"), reason="torch.cuda._sleep is private")
def test_f6_a_result_read_on_another_stream_waits_for_the_launch():
    x = torch.randn(3 * CUDA_CHUNK, device="cuda")
    s = torch.cuda.Stream()
    torch.cuda.synchronize()
    with torch.cuda.stream(s):
        fusedstats.tensor_stats([x])  # planned
        torch.cuda._sleep(100_000_000)  # the launch below waits behind this on s
        stats = fusedstats.tensor_stats([x])
    got = stats.global_  # read on the default stream
    assert got["numel"] == x.numel()
    assert_matches_reference(stats.as_tensor(), [x.cpu()])


@needs_kernel
def test_f7_threads_with_different_thresholds_on_one_stream():
    import threading

    from fusedstats.kernels import api

    w = torch.rand(4000, 64, device="cuda")
    means = w.abs().mean(dim=1).cpu()
    thresholds = [float(means.quantile(q)) + 1e-7 for q in (0.1, 0.5, 0.9)]
    errors: list[str] = []

    def worker(threshold: float) -> None:
        for _ in range(50):
            st = api._stats([w], None, [64], threshold, None)
            got = st.global_["n_dormant_rows"]
            want = float((means < threshold).sum())
            if got != want:
                errors.append(f"threshold {threshold}: {got} != {want}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in thresholds]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:5]


@needs_kernel
def test_f11_copied_inputs_do_not_fill_the_cache():
    from fusedstats.kernels import cuda_path

    base = torch.randn(300, 500, device="cuda")
    xs = [base.t(), base[:, ::3]]
    fusedstats.tensor_stats(xs)
    before = cuda_path.launcher().cached()
    for _ in range(5):
        stats = fusedstats.tensor_stats(xs)
    assert cuda_path.launcher().cached() == before
    assert_matches_reference(stats.as_tensor(), _on_cpu(xs))


@needs_kernel
def test_f4_the_kernels_load_on_this_gpu():
    assert _native.cuda.probe() == 0


@needs_kernel
@pytest.mark.parametrize("extended", [False, True])
def test_graph_capture_of_the_extended_pass_and_records(extended):
    from fusedstats.kernels import dispatch, inputs

    tensors = _contiguous_tensors(24)
    prep = inputs.prepare(tensors, None)
    out = dispatch.new_output(prep, extended)
    hist = dispatch.new_histogram(prep) if extended else None
    records = dispatch.new_records(prep, len(tensors), extended)
    fusedstats.tensor_stats(tensors, out=out, extended=extended, hist_out=hist)
    dispatch.records(prep, 0.0, extended, records, False)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fusedstats.tensor_stats(tensors, out=out, extended=extended, hist_out=hist)
        dispatch.records(prep, 0.0, extended, records, False)
    for t in tensors:
        t.add_(1.0)
    graph.replay()
    torch.cuda.synchronize()
    eager = fusedstats.tensor_stats(tensors, extended=extended)
    assert_bitwise_equal(out, eager.as_tensor(), "graph replay vs eager")
    if extended:
        assert torch.equal(hist, eager.exponent_histogram)
    assert_matches_reference(out[:, :NUM_COLUMNS], _on_cpu(tensors))


@needs_kernel
@pytest.mark.parametrize("extended", [False, True])
def test_records_finalize_and_merge_on_the_gpu_equal_the_cpu_core(extended):
    from fusedstats.kernels import dispatch, inputs

    tensors = _contiguous_tensors(25)
    n = len(tensors)
    prep = inputs.prepare(tensors, None)
    records = dispatch.new_records(prep, n, extended)
    dispatch.records(prep, 0.0, extended, records, False)
    dispatch.records(prep, 0.0, extended, records, True)  # the same data again
    src = torch.cat([records, records, records])
    include = (torch.rand(3, n, device="cuda") < 0.6).to(torch.uint8)
    merged = torch.empty_like(records)
    dispatch.merge(src, 3, n, extended, include, merged)
    core = _native.core
    host_src, host_inc = src.cpu(), include.cpu()
    cpu_merged = torch.empty_like(host_src[:n])
    core.merge_records(
        host_src.data_ptr(), 3, n, extended, host_inc.data_ptr(), cpu_merged.data_ptr()
    )
    assert torch.equal(merged.cpu(), cpu_merged), "GPU merge differs from the CPU core's"
    out = dispatch.new_output(prep, extended)
    hist = dispatch.new_histogram(prep) if extended else None
    with sync_is_an_error():
        dispatch.finalize(records, n, extended, out, hist)
    doubled = [torch.cat([t, t]) for t in _on_cpu(tensors)]
    assert_matches_reference(out[:, :NUM_COLUMNS], doubled)


@needs_kernel
def test_no_host_sync_in_the_extended_pass_and_the_records_api():
    from fusedstats.kernels import dispatch, inputs

    tensors = _contiguous_tensors(26)
    prep = inputs.prepare(tensors, None)
    records = dispatch.new_records(prep, len(tensors), True)
    fusedstats.tensor_stats(tensors, extended=True)
    with sync_is_an_error():
        stats = fusedstats.tensor_stats(tensors, extended=True)
        dispatch.records(prep, 0.0, True, records, True)
    assert_matches_reference(stats.as_tensor()[:, :NUM_COLUMNS], _on_cpu(tensors))


@needs_kernel
def test_a_compiled_reduce_overhead_step_with_tensor_stats():
    # Parameters are static inputs of cudagraph trees: the warm-up run plans their table,
    # the recording run captures the op (a hit), later calls replay it.
    model = nn.Sequential(nn.Linear(300, 200), nn.ReLU(), nn.Linear(200, 10)).cuda()

    @torch.compile(mode="reduce-overhead")
    def step(x):
        loss = model(x).square().mean()
        return loss, fusedstats.tensor_stats(list(model.parameters())).as_tensor()

    x = torch.randn(64, 300, device="cuda")
    for i in range(5):  # warm-up, recording, replays
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * i)
        _, rows = step(x)
        rows = rows.clone()
        torch.cuda.synchronize()
        assert_matches_reference(rows, [p.detach().cpu() for p in model.parameters()])


@needs_kernel
def test_gpu_buffers_equal_the_host_emulation_bit_for_bit():
    from tests.kernels.emulation import (
        case_tensors,
        emu_records,
        emu_stats,
        recording_cases,
        run_on_gpu,
        same_bits,
    )

    from fusedstats.kernels.columns import EXTENDED_COLUMN_INDEX

    dyn = EXTENDED_COLUMN_INDEX["dynamic_range_log2"]
    for case in recording_cases():
        host, row_lens = case_tensors(case)
        gpu = run_on_gpu(case)
        rows, hist = emu_stats(host, row_lens, case.threshold, case.extended)
        a, b = rows, gpu["rows"]
        if case.extended:
            np.testing.assert_array_equal(hist, gpu["hist"], err_msg=case.name)
            a, b = np.delete(a, dyn, axis=1), np.delete(b, dyn, axis=1)
        assert same_bits(a, b), f"{case.name} (extended={case.extended}): rows differ"
        records = emu_records(host, None, row_lens, case.threshold, case.extended)
        assert np.array_equal(records.numpy(), gpu["records"]), case.name
