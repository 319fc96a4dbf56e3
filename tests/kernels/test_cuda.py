"""The CUDA kernel: reference results, same bits every call, no host sync, no allocation
after the first call, CUDA-graph capture, and the caller's stream and device."""

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
    _native.cuda() is None, reason="fusedstats._cuda is not built (CUDA tensors use the reference)"
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
    # The launcher calls cudaSetDevice(tensor device); the caller's device must survive it.
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
