"""What each rank of a gloo world runs for tests/kernels/test_sharded.py.

Every rank builds the same full tensors from a seed, distributes them as DTensors,
and returns the buffers tensor_stats / grad_stats / weight_stats computed, plus how
many collectives each call made; the test process compares them with the float64
reference over the full tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Partial, Replicate, Shard, distribute_tensor

import fusedstats

# Every collective a stats call could use; each is wrapped to count its calls.
_COLLECTIVES = (
    "all_gather_single",
    "all_gather_into_tensor",
    "all_gather",
    "all_gather_object",
    "all_reduce",
    "reduce_scatter_tensor",
    "broadcast",
    "all_to_all_single",
    "gather",
    "scatter",
    "reduce",
    "barrier",
)


@contextmanager
def counting_collectives() -> Iterator[dict[str, int]]:
    """Counts calls of torch.distributed's collectives inside the block."""
    counts: dict[str, int] = {}
    originals: dict[str, Callable[..., Any]] = {}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            counts[name] = counts.get(name, 0) + 1
            return fn(*args, **kwargs)

        return counted

    for name in _COLLECTIVES:
        originals[name] = getattr(dist, name)
        setattr(dist, name, wrap(name, originals[name]))
    try:
        yield counts
    finally:
        for name, fn in originals.items():
            setattr(dist, name, fn)


def full_tensors(seed: int) -> dict[str, torch.Tensor]:
    """The full (unsharded) tensors every rank starts from: uneven sizes, offsets,
    NaN/Inf, low precision, an empty tensor."""
    g = torch.Generator().manual_seed(seed)
    out = {
        "uneven_rows": torch.randn(13, 7, generator=g, dtype=torch.float64) * 1e-2 + 1e4,
        "uneven_cols": torch.randn(5, 9, generator=g) * 3,
        "replicated": torch.randn(6, generator=g),
        "tiny": torch.randn(3, 4, generator=g, dtype=torch.float64),
        "half": (torch.randn(10, 6, generator=g) * 100).to(torch.bfloat16),
        "empty": torch.zeros(0, 5),
        "plain": torch.randn(4, generator=g, dtype=torch.float64),
        # integer values: shares of it sum to it exactly, in any order
        "partial": torch.randint(-1000, 1000, (8, 3), generator=g).to(torch.float64),
    }
    out["uneven_cols"][2, 3] = float("nan")
    out["uneven_rows"][4, 1] = float("inf")
    return out


def _one_d_list(mesh: Any, full: dict[str, torch.Tensor], rank: int, world: int) -> list[Any]:
    # A Partial DTensor: each rank holds a share whose sum over ranks is the full tensor.
    g = torch.Generator().manual_seed(len(full["partial"]))
    shares = [
        torch.randint(-50, 50, (8, 3), generator=g).to(torch.float64) for _ in range(world - 1)
    ]
    shares.append(full["partial"] - sum(shares))
    return [
        distribute_tensor(full["uneven_rows"], mesh, [Shard(0)]),
        distribute_tensor(full["uneven_cols"], mesh, [Shard(1)]),
        distribute_tensor(full["replicated"], mesh, [Replicate()]),
        distribute_tensor(full["tiny"], mesh, [Shard(0)]),  # 3 rows: empty shards at 4 ranks
        distribute_tensor(full["half"], mesh, [Shard(0)]),
        distribute_tensor(full["empty"], mesh, [Shard(0)]),
        full["plain"],
        DTensor.from_local(shares[rank], mesh, [Partial()]),
    ]


ONE_D_NAMES = [
    "uneven_rows",
    "uneven_cols",
    "replicated",
    "tiny",
    "half",
    "empty",
    "plain",
    "partial",
]


def _buffers(stats: Any) -> dict[str, Any]:
    out = {"rows": stats.as_tensor().numpy().copy(), "path": stats.path}
    if stats.extended:
        out["hist"] = stats.exponent_histogram.numpy().copy()
    return out


def one_d(rank: int, world: int, seed: int) -> dict[str, Any]:
    """tensor_stats of a mixed list on a 1-D mesh (plain and extended), with counts."""
    mesh = init_device_mesh("cpu", (world,))
    full = full_tensors(seed)
    items = _one_d_list(mesh, full, rank, world)
    result: dict[str, Any] = {}
    no_partial = items[:-1]
    with counting_collectives() as counts:
        stats = fusedstats.tensor_stats(no_partial, names=ONE_D_NAMES[:-1])
    result["plain"] = _buffers(stats)
    result["plain_collectives"] = dict(counts)
    with counting_collectives() as counts:
        stats = fusedstats.tensor_stats(no_partial, names=ONE_D_NAMES[:-1], extended=True)
    result["extended"] = _buffers(stats)
    result["extended_collectives"] = dict(counts)
    result["with_partial"] = _buffers(fusedstats.tensor_stats(items, names=ONE_D_NAMES))
    return result


def two_d(rank: int, world: int, seed: int) -> dict[str, Any]:
    """HSDP (Replicate x Shard) and FSDP x TP (Shard(0) x Shard(1)) on a 2 x (world/2) mesh."""
    mesh = init_device_mesh("cpu", (2, world // 2), mesh_dim_names=("dp", "tp"))
    full = full_tensors(seed)
    items = [
        distribute_tensor(full["uneven_rows"], mesh, [Replicate(), Shard(0)]),
        distribute_tensor(full["uneven_cols"], mesh, [Shard(0), Shard(1)]),
        distribute_tensor(full["replicated"], mesh, [Replicate(), Replicate()]),
        distribute_tensor(full["half"], mesh, [Shard(1), Shard(0)]),
    ]
    with counting_collectives() as counts:
        stats = fusedstats.tensor_stats(items, names=["a", "b", "c", "d"])
    return {"plain": _buffers(stats), "collectives": dict(counts)}


class _Net(torch.nn.Module):
    """A model with > 20 parameters of uneven sizes (some smaller than the world)."""

    def __init__(self) -> None:
        super().__init__()
        sizes = [(7, 5), (5, 9), (9, 3), (3, 11), (11, 6), (6, 2), (2, 5), (5, 13), (13, 4), (4, 3)]
        self.layers = torch.nn.ModuleList(torch.nn.Linear(i, o) for i, o in sizes)
        self.norm = torch.nn.LayerNorm(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return self.norm(x)


def make_net(seed: int) -> _Net:
    torch.manual_seed(seed)
    net = _Net().double()
    with torch.no_grad():
        net.layers[3].weight[1].zero_()  # a dormant row
        net.layers[5].weight[0] = 1e-9
    return net


def net_input(seed: int) -> torch.Tensor:
    return torch.randn(
        16, 7, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64
    )


def fsdp(rank: int, world: int, seed: int) -> dict[str, Any]:
    """grad_stats / weight_stats of a fully_shard model (every rank, same input)."""
    from torch.distributed.fsdp import fully_shard

    net = make_net(seed)
    mesh = init_device_mesh("cpu", (world,))
    for layer in net.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(net, mesh=mesh)
    net(net_input(seed)).pow(2).sum().backward()
    with counting_collectives() as counts:
        grads = fusedstats.grad_stats(net, per_parameter=True)
    weights = fusedstats.weight_stats(net, per_parameter=True, dormant_threshold=1e-6)
    return {"grads": grads, "weights": weights, "collectives": dict(counts)}


def row_split_weight(rank: int, world: int) -> str:
    """weight_stats of a weight sharded along its rows: the error each rank sees."""
    mesh = init_device_mesh("cpu", (world,))
    layer = torch.nn.Linear(8, 4)
    weight = torch.nn.Parameter(distribute_tensor(layer.weight.detach(), mesh, [Shard(1)]))
    try:
        fusedstats.weight_stats({"w": weight})
    except ValueError as err:
        ok = fusedstats.weight_stats({"w": weight}, dormant_threshold=None)
        return f"{err}#{'weights/norm' in ok}"
    return "no error"


def expected_net_stats(seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """grad_stats / weight_stats of the same model unsharded, in one process."""
    net = make_net(seed)
    net(net_input(seed)).pow(2).sum().backward()
    return (
        fusedstats.grad_stats(net, per_parameter=True),
        fusedstats.weight_stats(net, per_parameter=True, dormant_threshold=1e-6),
    )


def as_numpy_rows(stats: Any) -> np.ndarray:
    return np.asarray(stats)
