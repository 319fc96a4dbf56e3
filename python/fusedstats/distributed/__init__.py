"""Metrics of every rank of a torch.distributed job, merged with the caller's process group.

:func:`sync_logger` merges the :class:`~fusedstats.MetricsLogger` of every rank (what
``merge_and_log_n_dicts`` does with results of parallel workers), :func:`sync_rollout_stats`
the rollout statistics of every rank's environments. Both are collective calls: every
rank of the group calls them, in the same order as its other collectives. They use the
caller's group only (gloo buffers on the host, NCCL buffers on the current CUDA device)
and no thread or process group of their own; a call that cannot complete fails after
the group's own timeout (``init_process_group(timeout=...)``), it does not hang.

Without torch.distributed (torch not imported, or no process group initialized) they
work on this process's numbers alone, so the same trainer code runs on one process.

Results of ``MetricsLogger.reduce()`` and ``get_state()`` are plain enough for Ray's
object store: see ``examples/ray_merge.py``.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from ..logger import MetricsLogger, Stats
from ..logger.metrics_logger import _build, _leaves
from ._schema import Plan, decode_schema, local_plan, union_plan
from ._transport import World, exchange, world_of
from ._wire import merge, pack, unpack

if TYPE_CHECKING:
    from ..rollout import RolloutStats

__all__ = ["sync_logger", "sync_rollout_stats", "world_size"]

_UNIONS_KEPT = 8  # schemas of ranks with different keys, merged once and remembered


def world_size(group: Any = None) -> int:
    """The number of ranks of ``group`` (default: the whole job); 1 when torch.distributed
    is not initialized. Never imports torch.

    Example:
        >>> world_size()  # no process group here
        1
    """
    return world_of(group).size


@overload
def sync_logger(
    logger: MetricsLogger | Mapping[str, Any], group: Any = None, dst: None = None
) -> dict[str, Any]: ...
@overload
def sync_logger(
    logger: MetricsLogger | Mapping[str, Any], group: Any = None, dst: int | None = None
) -> dict[str, Any] | None: ...
def sync_logger(
    logger: MetricsLogger | Mapping[str, Any], group: Any = None, dst: int | None = None
) -> dict[str, Any] | None:
    """The metrics of every rank, merged: a collective call (every rank of ``group``).

    Each rank passes its logger (then it is reduced here, in place of its ``reduce()``)
    or the result of its ``reduce()``. The result has the shape of ``reduce()``'s, with
    Stats leaves: for every key logged on any rank, the Stats that
    ``merge_and_log_n_dicts`` builds from all ranks' reduced results (windows, EMAs,
    lists, percentiles; NaN/Inf as in one process) — except lifetime sums (``"sum"``,
    no window, no ``clear_on_reduce``), which hold the sum of all ranks' totals, as a
    single-process ``reduce()`` would: their previous result is the sum of the ranks'
    previous ones, so merging the result into a driver's logger downstream adds what
    is new, as merging every rank's result there would. The previous results
    (``peek(previous=True)``) are the first rank's, as in ``merge_and_log_n_dicts``,
    except for lists and percentiles, whose previous results are not sent (they read
    0); a ``with_throughput`` sum's clock starts at the sync.

    All keys travel in a few flat buffers: one ``all_gather`` per call once the buffer
    size is known (the first call, and one that outgrows it, take two), device tensors
    stay on the device for NCCL. Ranks may log different keys: the result holds the
    union (a key a rank lacks counts as empty there; the schemas then travel once more,
    until the same key sets come back). A key logged with different settings on
    different ranks, or a failure on any rank, raises the same error on every rank.
    Like any collective, calls on one group must not overlap (one thread at a time).

    Args:
        logger: this rank's ``MetricsLogger``, or its ``reduce()`` result (Stats leaves).
        group: the process group (default: the whole job).
        dst: a global rank: only it merges and gets the result, the others get None.

    Returns:
        ``{key: Stats}`` nested as in ``reduce()`` (None on ranks other than ``dst``).

    Raises:
        ValueError: ranks logged a key with different settings (on every rank).
        RuntimeError: a rank could not reduce or pack its metrics (on every rank).

    Example:
        >>> from fusedstats import MetricsLogger
        >>> logger = MetricsLogger()
        >>> logger.log_value("loss", 0.5, window=10); logger.log_value("steps", 64, reduce="sum")
        >>> merged = sync_logger(logger)  # every rank calls it; here: no process group
        >>> MetricsLogger.peek_results(merged)
        {'loss': 0.5, 'steps': 64}
    """
    world = world_of(group)
    _check_dst(world, dst)
    # A sync allocates a few containers per key, and in a process that imported torch a
    # young-generation collection then walks a large heap: measured 3-5x slower packing
    # with the collector on (nothing here makes reference cycles).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _sync_logger(world, logger, dst)
    finally:
        if collecting:
            gc.enable()


def _sync_logger(world: World, logger: Any, dst: int | None) -> dict[str, Any] | None:
    plan: Plan | None = None
    local_error: Exception | None = None
    try:
        paths, stats = _reduced(logger)
        plan = local_plan(paths, stats)
        on_device = world.device is not None and world.device.type != "cpu"
        packed = pack(stats, plan, keep_tensors=on_device)
        d0, d1 = np.frombuffer(plan.digest, dtype=np.int64).tolist()
        fields = [len(stats), packed.n_f64, packed.n_pickle, d0, d1, 0]
        payload, slots = packed.payload, packed.slots
    except Exception as err:  # every rank must still take part, then all raise
        local_error = err
        fields, payload, slots = [0, 0, 0, 0, 0, 1], _error_text(err), []
    rows = exchange(world, "logger", fields, payload, slots)
    _raise_failures("sync_logger", [(f[5], p) for f, p in rows], local_error)
    assert plan is not None
    digests = [(f[3], f[4]) for f, _ in rows]
    if len(set(digests)) > 1:
        plan = _union(world, plan.blob, digests)
    if dst is not None and world.rank != dst:
        return None
    merged = merge(plan, [unpack(data, f[0], f[1], f[2]) for f, data in rows])
    if all(len(p) == 1 for p in plan.paths):
        return {p[0]: s for p, s in zip(plan.paths, merged, strict=True)}
    return _build(list(zip(plan.paths, merged, strict=True)))


def _reduced(logger: Any) -> tuple[list[tuple[str, ...]], list[Stats]]:
    """The key paths and reduced Stats of a logger (reduced here) or of a reduce() result."""
    if isinstance(logger, MetricsLogger):
        return logger._reduce_leaves()
    return _stats_leaves(logger)


def _stats_leaves(result: Any) -> tuple[list[tuple[str, ...]], list[Stats]]:
    if isinstance(result, Stats):
        raise TypeError("sync_logger takes a MetricsLogger or a reduce() result dict, not a Stats")
    if not isinstance(result, Mapping):
        raise TypeError(
            f"sync_logger takes a MetricsLogger or a reduce() result dict, got "
            f"{type(result).__name__}"
        )
    paths: list[tuple[str, ...]] = []
    stats: list[Stats] = []
    for path, leaf in _leaves(result):
        if not isinstance(leaf, Stats):
            raise TypeError(
                f"key {path!r}: expected a Stats leaf (a reduce() result with "
                f"return_stats_obj=True), got {type(leaf).__name__}"
            )
        if not all(isinstance(k, str) for k in path):
            raise TypeError(f"key {path!r}: keys must be str")
        paths.append(path)
        stats.append(leaf)
    return paths, stats


def _union(world: World, blob: bytes, digests: list[tuple[int, int]]) -> Plan:
    """The ranks' key union, by their digests: remembered per group, so ranks that keep
    logging different keys send their schemas once (the cache evolves from what every
    rank received, so it is the same on all ranks)."""
    cache = world.state.unions
    key = tuple(np.array(d, dtype=np.int64).tobytes() for d in digests)
    union = cache.get(key)
    if union is None:
        rows = exchange(world, "schema", [], blob)
        union = union_plan([decode_schema(p.tobytes()) for _, p in rows])
        cache[key] = union
        while len(cache) > _UNIONS_KEPT:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    if union.error is not None:
        raise ValueError(f"sync_logger: {union.error}")
    return union


def sync_rollout_stats(
    stats: RolloutStats, group: Any = None, dst: int | None = None
) -> RolloutStats | None:
    """Every rank's rollout statistics merged into one ``RolloutStats``: a collective call.

    Count, sum, mean, std, min and max of every key are those of all ranks' values
    together (exact merges: sums, counts, Chan's M2), keys in order of first appearance
    in rank order. The merged object holds statistics only: its ``get(key)`` has no
    values. One ``all_gather`` (two the first time) of each rank's
    ``RolloutStats.export_state()``.

    Args:
        stats: this rank's statistics (not changed).
        group: the process group (default: the whole job).
        dst: a global rank: only it merges and gets the result, the others get None.

    Example:
        >>> from fusedstats.rollout import RolloutStats
        >>> mine = RolloutStats(); mine.add([{"game/score": 1.0}, {"game/score": 2.0}])
        >>> sync_rollout_stats(mine).means()  # here: no process group, this rank alone
        {'game/score': 1.5}
    """
    from ..rollout import RolloutStats

    world = world_of(group)
    _check_dst(world, dst)
    local_error: Exception | None = None
    try:
        payload = json.dumps(stats.export_state()).encode()
        failed = 0
    except Exception as err:
        local_error, payload, failed = err, _error_text(err), 1
    rows = exchange(world, "rollout", [failed], payload)
    _raise_failures("sync_rollout_stats", [(f[0], p) for f, p in rows], local_error)
    if dst is not None and world.rank != dst:
        return None
    merged = RolloutStats()
    for _, data in rows:
        merged.merge_state(json.loads(data.tobytes()))
    return merged


def _check_dst(world: World, dst: int | None) -> None:
    if dst is None:
        return
    ranks = [0] if world.dist is None else world.dist.get_process_group_ranks(world.group)
    if dst not in ranks:
        raise ValueError(f"dst={dst!r} is not a rank of the group (its ranks: {ranks})")


def _error_text(err: Exception) -> bytes:
    return f"{type(err).__name__}: {err}".encode()


def _raise_failures(
    what: str, flagged: list[tuple[int, np.ndarray[Any, Any]]], local: Exception | None
) -> None:
    """Raises one RuntimeError, the same on every rank, if any rank failed locally."""
    texts = [
        f"rank {r}: {p.tobytes().decode(errors='replace')}"
        for r, (flag, p) in enumerate(flagged)
        if flag
    ]
    if texts:
        raise RuntimeError(f"{what} failed on some rank; " + "; ".join(texts)) from local
