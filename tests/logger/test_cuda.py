"""CUDA tensors: logged with no host sync, reduced to the right numbers, moved to the host
in one batched transfer (docs/logger.md, "Tensors")."""

import math
import warnings
from contextlib import contextmanager

import pytest
import torch
from pytest import approx
from tests.gpu import sync_is_an_error
from tests.logger import spec_model
from tests.logger.compare import assert_same

from fusedstats import MetricsLogger

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

SETTINGS = {
    "window": {"window": 5},
    "ema": {"ema_coeff": 0.1},
    "sum": {"reduce": "sum"},
    "max": {"reduce": "max", "window": 3},
    "items": {"reduce": None},
}


@contextmanager
def count_syncs():
    """Counts host syncs (torch warns once per sync in "warn" mode)."""
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield caught
    finally:
        torch.cuda.set_sync_debug_mode(previous)


def _values(n=20):
    return [0.25 * i - 1.0 for i in range(n)]  # exact in float32


def test_logging_cuda_tensors_does_not_sync():
    numbers = _values()
    on_device = torch.tensor(numbers, device="cuda", requires_grad=True) * 1.0
    logger, model = MetricsLogger(), spec_model.MetricsLogger()
    with sync_is_an_error():
        for i in range(len(numbers)):
            for key, settings in SETTINGS.items():
                logger.log_value(key, on_device[i], **settings)
    for v in numbers:
        for key, settings in SETTINGS.items():
            model.log_value(key, v, **settings)
    got = logger.reduce(return_stats_obj=False)
    want = model.reduce(return_stats_obj=False)
    got["items"] = [float(x) for x in got["items"]]
    assert_same({k: v if isinstance(v, list) else float(v) for k, v in got.items()}, want)


def test_many_cuda_values_in_a_windowless_sum_do_not_sync():
    # Past the fold limit a window-less sum folds its buffer; that must not read the GPU.
    values = torch.ones(10_000, device="cuda")
    logger = MetricsLogger()
    with sync_is_an_error():
        for i in range(10_000):
            logger.log_value("n", values[i], reduce="sum")
            logger.log_value("ema", values[i])
    assert float(logger.peek("n")) == 10_000.0
    assert float(logger.peek("ema")) == approx(1.0)


def test_reduce_moves_all_keys_in_one_transfer():
    logger = MetricsLogger()
    x = torch.arange(3.0, device="cuda")
    for k in range(100):
        for i in range(3):
            logger.log_value(f"k{k}", x[i] + k, window=3)
    torch.cuda.synchronize()
    with count_syncs() as syncs:
        results = logger.reduce(return_stats_obj=False)
    assert len(syncs) <= 2, [str(w.message) for w in syncs]  # one per device, not per key
    assert all(float(results[f"k{k}"]) == approx(1.0 + k) for k in range(100))


def test_tensor_mode_with_cuda_tensors():
    loss = torch.tensor(0.5, device="cuda")  # made outside: the copy up is not the logger's
    logger = MetricsLogger()
    logger.activate_tensor_mode()
    with sync_is_an_error():
        logger.log_value("loss", loss, window=1)
    logged = logger.deactivate_tensor_mode()
    assert float(logged["loss"]) == 0.5
    logger.tensors_to_numpy(logged)
    assert float(logger.reduce(return_stats_obj=False)["loss"]) == 0.5


# ---- the native gather (docs/logger.md, "Tensors") -------------------------------------------


def test_the_gpu_gather_widens_every_16_bit_pattern_like_torch():
    """The kernel runs scalars.h, which the CPU tests check exhaustively; here the same
    65,536 patterns per type through the GPU."""
    from fusedstats.logger import gather

    for dtype in (torch.float16, torch.bfloat16):
        every = torch.arange(-(2**15), 2**15, dtype=torch.int32, device="cuda")
        every = every.to(torch.int16).view(dtype)
        got = gather.on_device([every[i] for i in range(every.numel())])
        assert got is not None
        want = every.to(torch.float64)
        same = (got == want) | (got.isnan() & want.isnan())
        assert bool(same.all()) and bool((got.signbit() == want.signbit())[~want.isnan()].all())


@pytest.mark.parametrize(
    "dtype",
    [
        torch.float32,
        torch.float64,
        torch.bfloat16,
        torch.int8,
        torch.uint8,
        torch.int64,
        torch.bool,
    ],
    ids=str,
)
def test_reduce_of_cuda_values_is_one_gather_and_one_copy(dtype):
    """1,000 keys x 10 device values: one gather launch, one device-to-host copy, one
    host sync; the numbers of the same values logged as floats."""
    from torch.profiler import ProfilerActivity, profile

    source = torch.arange(10_000, device="cuda") % 97
    values = source.to(dtype) if dtype is not torch.bool else source % 2 == 1
    logger, floats = MetricsLogger(), MetricsLogger()
    with sync_is_an_error():
        for k in range(1000):
            for i in range(10):
                logger.log_value(f"k{k}", values[10 * k + i], window=10)
    host = values.to(torch.float64).cpu().tolist()
    for k in range(1000):
        for i in range(10):
            floats.log_value(f"k{k}", host[10 * k + i], window=10)
    torch.cuda.synchronize()
    with count_syncs() as syncs, profile(activities=[ProfilerActivity.CUDA]) as prof:
        got = logger.reduce(return_stats_obj=False)
    names = [e.name for e in prof.events()]
    assert sum("gather_kernel" in n for n in names) == 1, names
    assert sum("DtoH" in n or "Device -> " in n for n in names) == 1, names
    assert len(syncs) == 1, [str(w.message) for w in syncs]
    assert got == floats.reduce(return_stats_obj=False)


def test_folding_and_gathering_on_the_gpu_do_not_sync():
    from fusedstats.logger import gather

    values = torch.rand(5000, device="cuda", dtype=torch.bfloat16)
    with sync_is_an_error():
        on_device = gather.on_device([values[i] for i in range(5000)])
        logger = MetricsLogger()
        for i in range(5000):  # past the fold limit: folded on the device
            logger.log_value("ema", values[i], ema_coeff=0.1)
    assert on_device is not None and on_device.dtype == torch.float64
    assert bool((on_device == values.to(torch.float64)).all())
    assert math.isfinite(float(logger.peek("ema")))


def test_a_freed_cuda_storage_is_refused_clearly():
    logger = MetricsLogger()
    t = torch.tensor([1.0, 2.0], device="cuda")[1]
    logger.log_value("x", t, window=3)
    t.untyped_storage().resize_(0)
    with pytest.raises(ValueError, match=r"'x'.*lost its value"):
        logger.reduce()
