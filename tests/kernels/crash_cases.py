"""Exotic inputs for tensor_stats, each run in its own process by test_crash.py.

``python -m tests.kernels.crash_cases NAME`` builds the input, calls tensor_stats and
prints one line: ``raised <ExceptionType>: <message>`` or ``result match`` /
``result mismatch`` (against the float64 reference of what the input holds). A crash
of the process (SIGSEGV, abort) is what the test exists to catch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import fusedstats
from fusedstats.kernels import reference

# name -> (builder returning (items for tensor_stats, the values they hold or None),
#          expected outcome: an exception type name, or "match")
CASES: dict[str, tuple[Callable[[], tuple[list[Any], list[Any] | None]], str]] = {}


def case(expected: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def register(fn: Callable[[], Any]) -> Callable[[], Any]:
        CASES[fn.__name__] = (fn, expected)
        return fn

    return register


@case("TypeError")
def fake_tensor() -> tuple[list[Any], None]:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.randn(48)
    return [torch.ones(3), x], None


@case("TypeError")
def functional_tensor() -> tuple[list[Any], None]:
    from torch._subclasses.functional_tensor import FunctionalTensorMode

    with FunctionalTensorMode():
        x = torch.ones(5)
    return [x], None


@case("TypeError")
def wrapper_subclass() -> tuple[list[Any], None]:
    from torch.testing._internal.two_tensor import TwoTensor

    a = torch.randn(64)
    return [TwoTensor(a, a.clone())], None


@case("TypeError")
def nested_tensor() -> tuple[list[Any], None]:
    return [torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])], None


@case("TypeError")
def sparse_coo() -> tuple[list[Any], None]:
    return [torch.eye(4).to_sparse()], None


@case("TypeError")
def sparse_csr() -> tuple[list[Any], None]:
    return [torch.eye(4).to_sparse_csr()], None


@case("TypeError")
def quantized() -> tuple[list[Any], None]:
    return [torch.quantize_per_tensor(torch.randn(8), 0.1, 0, torch.qint8)], None


@case("TypeError")
def meta_tensor() -> tuple[list[Any], None]:
    return [torch.empty(1 << 20, device="meta")], None


@case("TypeError")
def storage_resized_to_zero() -> tuple[list[Any], None]:
    # What FSDP does to an unsharded parameter outside forward/backward.
    x = torch.randn(1 << 16)
    x.untyped_storage().resize_(0)
    return [x], None


@case("TypeError")
def view_past_a_shrunk_storage() -> tuple[list[Any], None]:
    x = torch.randn(1 << 16)
    view = x[1 << 15 :]
    x.untyped_storage().resize_(1 << 10)
    return [view], None


@case("TypeError")
def strided_view_past_a_shrunk_storage() -> tuple[list[Any], None]:
    x = torch.randn(256, 256)
    view = x.t()
    x.untyped_storage().resize_(4096)
    return [view], None


@case("ValueError")
def out_with_freed_storage() -> tuple[list[Any], None]:
    out = torch.empty(2, fusedstats.NUM_COLUMNS, dtype=torch.float64)
    out.untyped_storage().resize_(0)
    fusedstats.tensor_stats([torch.ones(4)], out=out)
    return [], None


class _Liar(torch.Tensor):
    """A __torch_function__ subclass that misreports its size and address."""

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.Tensor.numel:
            return 1 << 40
        if func is torch.Tensor.data_ptr:
            return 16
        return super().__torch_function__(func, types, args, kwargs or {})


@case("match")
def subclass_that_misreports_numel() -> tuple[list[Any], list[Any]]:
    x = torch.randn(1000)
    return [x.as_subclass(_Liar)], [x]


@case("match")
def overlapping_as_strided() -> tuple[list[Any], list[Any]]:
    x = torch.randn(64)
    view = torch.as_strided(x, (40, 8), (1, 1))  # every row overlaps the next
    return [view], [view.clone()]


@case("match")
def zero_strides() -> tuple[list[Any], list[Any]]:
    x = torch.randn(3)
    view = torch.as_strided(x, (1 << 16, 3), (0, 1))
    return [view, x.expand(1000, 3)], [view.clone(), x.expand(1000, 3).clone()]


@case("match")
def large_storage_offset() -> tuple[list[Any], list[Any]]:
    x = torch.randn(1 << 20)
    view = torch.as_strided(x, (100,), (3,), (1 << 20) - 300)
    return [view], [view.clone()]


@case("TypeError")
def numpy_view_past_its_memory() -> tuple[list[Any], None]:
    x = np.ones(16)
    view = np.lib.stride_tricks.as_strided(x, shape=(1 << 20,), strides=(8,))
    return [view], None


@case("match")
def numpy_broadcast_view() -> tuple[list[Any], list[Any]]:
    x = np.random.default_rng().standard_normal(5)
    view = np.broadcast_to(x, (1000, 5))
    return [view], [np.ascontiguousarray(view)]


@case("match")
def numpy_views_of_other_memory() -> tuple[list[Any], list[Any]]:
    # numpy arrays whose memory belongs to a torch tensor, a bytearray, or an owner
    # seen through a reversed or strided view: all inside their memory, all fine.
    t = torch.randn(100)
    raw = bytearray(np.arange(12, dtype=np.float64).tobytes())
    items = [t.numpy(), t.numpy()[::-3], np.frombuffer(raw), np.ones((4, 5), order="F")[1:]]
    return items, [np.array(x) for x in items]


@case("match")
def single_rank_dtensor() -> tuple[list[Any], list[Any]]:
    import os
    import tempfile

    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    init = os.path.join(tempfile.mkdtemp(), "rendezvous")
    dist.init_process_group("gloo", init_method=f"file://{init}", rank=0, world_size=1)
    mesh = init_device_mesh("cpu", (1,))
    full = torch.randn(48)
    return [distribute_tensor(full, mesh, [Shard(0)])], [full]


def run(name: str) -> str:
    build, _ = CASES[name]
    try:
        items, values = build()
        if not items:
            return "result none"
        got = fusedstats.tensor_stats(items).as_tensor()
    except Exception as err:
        return f"raised {type(err).__name__}: {err}"
    want = reference.stats_buffer([torch.as_tensor(v) for v in values or []])
    got_np = got.numpy() if isinstance(got, torch.Tensor) else got
    ok = np.allclose(got_np, want.numpy(), rtol=1e-6, atol=0, equal_nan=True)
    return "result match" if ok else f"result mismatch: {got_np[-1]} vs {want.numpy()[-1]}"


if __name__ == "__main__":
    print(run(sys.argv[1]), flush=True)
