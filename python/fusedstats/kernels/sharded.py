"""Statistics of DTensors (FSDP2, tensor parallel): of the full logical tensors,
identical on every rank, with one collective per call.

Each rank runs the fused kernel over its local shards and gets one mergeable record
per tensor (count, shifted mean, M2, extremes, counts, sums: the C++ ``Partial``).
The records of all tensors travel in ONE ``all_gather`` over the process group that
covers the DTensors' mesh; every rank then merges, per tensor, the records of the
ranks that hold a distinct piece of it, in rank order, with the same Chan merge the
kernel uses — so every rank computes the same bits. A ``Replicate`` mesh dimension
counts its first coordinate only; plain tensors in the list are taken as replicated
(rank 0 of the group counts them). ``Partial`` placements (pending sums) are reduced
first, as DTensor would, at the cost of one collective each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import dispatch, inputs
from .result import TensorStats


def _torch() -> Any:
    torch = inputs.torch_module()
    assert torch is not None
    return torch


def _local_view(x: Any, torch: Any) -> tuple[Any, Any, tuple[Any, ...]]:
    """(local tensor, mesh or None, placements) of one item."""
    dtensor = inputs.dtensor_type()
    if dtensor is None or not isinstance(x, dtensor):
        return x, None, ()
    placements = tuple(x.placements)
    if any(p.is_partial() for p in placements):
        from torch.distributed.tensor import Replicate

        placements = tuple(Replicate() if p.is_partial() else p for p in placements)
        x = x.redistribute(x.device_mesh, placements)
    return x.to_local(), x.device_mesh, placements


def _mesh_ranks(mesh: Any) -> list[int]:
    return [int(r) for r in mesh.mesh.reshape(-1).tolist()]


def _group_of(meshes: Sequence[Any], torch: Any) -> tuple[Any, list[int]]:
    """(process group, its global ranks in group order) covering every mesh."""
    dist = torch.distributed
    world = dist.get_world_size()
    ranks: set[int] = set()
    for mesh in meshes:
        ranks.update(_mesh_ranks(mesh))
    if len(ranks) == world:
        return None, list(range(world))  # the default group
    if len(meshes) == 1 or all(set(_mesh_ranks(m)) == ranks for m in meshes):
        mesh = meshes[0]
        group = mesh.get_group() if mesh.ndim == 1 else mesh._flatten().get_group()
        return group, [dist.get_global_rank(group, i) for i in range(dist.get_world_size(group))]
    raise ValueError(
        "tensor_stats of DTensors on different meshes needs the meshes to cover all "
        f"ranks of the default process group (they cover {sorted(ranks)} of {world})"
    )


def _counted_here(rank: int, mesh: Any, placements: tuple[Any, ...]) -> bool:
    """Whether global ``rank`` holds a piece of the tensor that no lower-coordinate
    replica holds too (every Replicate mesh dimension at coordinate 0)."""
    coords = (mesh.mesh == rank).nonzero()
    if coords.numel() == 0:
        return False
    coord = coords[0].tolist()
    return all(c == 0 for c, p in zip(coord, placements, strict=True) if p.is_replicate())


_MASK_CACHE_SIZE = 16
_mask_cache: dict[tuple[Any, ...], tuple[Any, Any]] = {}


def _include_mask(
    layouts: list[tuple[Any, tuple[Any, ...]]], group_ranks: list[int], device: Any, torch: Any
) -> Any:
    """uint8 [world, n]: which rank's record of each tensor is merged. Cached per
    layout (meshes are long-lived; the cache holds them so their ids stay theirs)."""
    key = (tuple((id(m), p) for m, p in layouts), tuple(group_ranks), str(device))
    hit = _mask_cache.get(key)
    if hit is not None:
        return hit[0]
    columns: dict[tuple[int, tuple[Any, ...]], list[int]] = {}
    rows = []
    for mesh, placements in layouts:
        col_key = (id(mesh), placements)
        if col_key not in columns:
            if mesh is None:
                columns[col_key] = [1 if s == 0 else 0 for s in range(len(group_ranks))]
            else:
                columns[col_key] = [int(_counted_here(r, mesh, placements)) for r in group_ranks]
        rows.append(columns[col_key])
    if rows:
        mask = torch.tensor(rows, dtype=torch.uint8).t().contiguous().to(device)
    else:
        mask = torch.zeros((len(group_ranks), 0), dtype=torch.uint8, device=device)
    if len(_mask_cache) >= _MASK_CACHE_SIZE:
        _mask_cache.pop(next(iter(_mask_cache)))
    _mask_cache[key] = (mask, [m for m, _ in layouts])
    return mask


def _row_len(local: Any, placements: tuple[Any, ...], row_len: int, what: str) -> int:
    """The row length for dormant counting of a local shard: rows must be whole."""
    if row_len <= 0:
        return 0
    if any(p.is_shard() and p.dim in (1, -1) for p in placements):
        raise ValueError(
            f"{what} is a 2-D weight sharded along its rows (Shard(1)): the mean |w| of a "
            "row spans ranks, so dormant rows cannot be counted from the shards; pass "
            "dormant_threshold=None to weight_stats to skip them"
        )
    return int(local.shape[1]) if local.dim() == 2 and local.numel() > 0 else 0


def sharded_stats(
    items: Sequence[Any],
    names: Sequence[str],
    row_lens: Sequence[int] | None,
    dormant_threshold: float,
    out: Any,
    extended: bool,
    hist_out: Any,
) -> TensorStats:
    """tensor_stats of a list holding DTensors (a collective: every rank of the group
    must call it with the same list)."""
    torch = _torch()
    dist = torch.distributed
    views = [_local_view(x, torch) for x in items]
    meshes = [m for _, m, _ in views if m is not None]
    unique: list[Any] = []
    for m in meshes:
        if all(m is not u for u in unique):
            unique.append(m)
    group, group_ranks = _group_of(unique, torch)
    lens = [
        _row_len(
            local,
            placements,
            int(row_lens[i]) if row_lens is not None else 0,
            inputs.label(i, names),
        )
        for i, (local, _, placements) in enumerate(views)
    ]
    prep = inputs.prepare([v[0] for v in views], names, lens)
    n = len(prep.ptrs)
    local_records = dispatch.new_records(prep, n, extended)
    dispatch.records(prep, dormant_threshold, extended, local_records, accumulate=False)
    world = len(group_ranks)
    gathered = local_records.new_empty((world * n, local_records.shape[1]))
    # all_gather_single is the newer name of all_gather_into_tensor (which warns there)
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    gather(gathered, local_records, group=group)
    include = _include_mask([(m, p) for _, m, p in views], group_ranks, gathered.device, torch)
    merged = local_records.new_empty(local_records.shape)
    dispatch.merge(gathered, world, n, extended, include, merged)
    out, hist = dispatch.output_buffers(prep, extended, out, hist_out)
    dispatch.finalize(merged, n, extended, out, hist)
    return TensorStats(out, names, "sharded", extended=extended, histogram=hist)
