"""Byte payloads of every rank to every rank through the caller's torch.distributed group.

One exchange is one ``all_gather`` of a fixed-size byte buffer per rank: a header of
int64 fields, then the rank's payload. All ranks must use the same buffer size, so the
size is remembered per group and channel (the largest payload of the last call plus
slack) and evolves only from what every rank received: every rank takes the same
decisions, and a steady-state call costs one collective. A payload that does not fit
(the first call, or a grown logger) is announced by its header and sent again in a
second round sized for the largest one; nothing is ever cut.

Why all_gather and not gather to ``dst``: every rank needs every header (sizes, schema
digests, errors) to take the same next step, and one all_gather of the whole buffer
costs about what a header all_gather alone costs at these sizes (latency-bound: ~1 ms
with 2 gloo ranks here, ~4.5 ms with 4 ranks on 2 cores).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..logger import gather

#: Header: magic, payload bytes, then the caller's fields.
HEADER_FIELDS = 8
HEADER_BYTES = 8 * HEADER_FIELDS
MAGIC = 0x6673_7379_6E63  # "fssync": a peer that sent something else is not in sync
_ALIGN = 64  # buffer sizes are multiples of this, so float64 views stay aligned

#: (byte offset in the payload, one-element tensor): device values that go into the
#: buffer on its device, with no trip to the host (offsets are multiples of 8).
Slots = list[tuple[int, Any]]


@dataclass
class GroupState:
    """What every rank of a group remembers between calls (identical on all of them)."""

    capacity: dict[str, int] = field(default_factory=dict)  # channel -> payload bytes
    # Schemas of ranks that logged different keys, by the ranks' digests: merged once.
    unions: OrderedDict[tuple[bytes, ...], Any] = field(default_factory=OrderedDict)


_states: dict[Any, GroupState] = {}


@dataclass
class World:
    """The group a call runs on; ``dist`` is None when torch.distributed is not in use
    (then the world is this process alone)."""

    dist: Any
    group: Any
    size: int
    rank: int  # global rank (what ``dst`` names)
    device: Any  # where the buffers live: cuda for NCCL, else cpu
    state: GroupState


def world_of(group: Any) -> World:
    """The world of ``group`` (None: the default group). torch is never imported here:
    without torch in ``sys.modules`` there can be no process group."""
    torch: Any = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None) if torch is not None else None
    if dist is None or not dist.is_available() or not dist.is_initialized():
        if group is not None:
            raise RuntimeError("a process group was given but torch.distributed is not initialized")
        return World(None, None, 1, 0, None, _states.setdefault(None, GroupState()))
    pg = group if group is not None else dist.group.WORLD
    backend = str(dist.get_backend(pg)).lower()
    # NCCL reduces CUDA tensors only; a mixed "cpu:gloo,cuda:nccl" group takes host ones.
    if "nccl" in backend and "gloo" not in backend:
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    return World(
        dist,
        pg,
        dist.get_world_size(pg),
        dist.get_rank(),
        device,
        _states.setdefault(pg, GroupState()),
    )


def exchange(
    world: World,
    channel: str,
    fields: list[int],
    payload: bytes,
    slots: Slots | None = None,
) -> list[tuple[list[int], np.ndarray[Any, Any]]]:
    """Every rank's (fields, payload bytes as uint8), in group rank order.

    ``slots`` are written into the buffer on the group's device (zeros in ``payload``
    hold their places); only a group on a CUDA device takes them.
    """
    header = np.zeros(HEADER_FIELDS, dtype=np.int64)
    header[0] = MAGIC
    header[1] = len(payload)
    header[2 : 2 + len(fields)] = fields
    if world.dist is None:
        return [(fields, np.frombuffer(payload, dtype=np.uint8))]
    caps = world.state.capacity
    cap = caps.get(channel, 0)
    rows = _round(world, header, payload if len(payload) <= cap else b"", cap, slots)
    heads = np.ascontiguousarray(rows[:, :HEADER_BYTES]).view(np.int64)
    if not (heads[:, 0] == MAGIC).all():
        raise RuntimeError(
            "fusedstats.distributed: a rank sent something else; every rank must make the "
            "same collective calls in the same order"
        )
    need = int(heads[:, 1].max())
    if need > cap:
        caps[channel] = cap = _with_slack(need)
        rows = _round(world, header, payload, cap, slots)
        heads = np.ascontiguousarray(rows[:, :HEADER_BYTES]).view(np.int64)
    elif 4 * need < cap:  # shrink, with hysteresis: a smaller call stays one round
        caps[channel] = _with_slack(need)
    out = []
    for r in range(world.size):
        n = int(heads[r, 1])
        out.append((heads[r, 2:].tolist(), rows[r, HEADER_BYTES : HEADER_BYTES + n]))
    return out


def _with_slack(n: int) -> int:
    return -(-(n + n // 4) // _ALIGN) * _ALIGN


def _buffer(world: World, header: Any, payload: bytes, cap: int, slots: Slots | None) -> Any:
    host = np.zeros(HEADER_BYTES + cap, dtype=np.uint8)
    host[:HEADER_BYTES] = header.view(np.uint8)
    if payload:
        host[HEADER_BYTES : HEADER_BYTES + len(payload)] = np.frombuffer(payload, np.uint8)
    torch = sys.modules["torch"]
    buf = torch.from_numpy(host)
    if world.device.type != "cpu":
        buf = buf.to(world.device)  # one host-to-device copy of the whole payload
    if slots and payload:
        _fill(torch, buf, slots)
    return buf


def _fill(torch: Any, buf: Any, slots: Slots) -> None:
    """Writes the slots' tensors into ``buf`` as float64: each source device's values in
    one native gather on that device (``logger/gather.py``), no host sync."""
    by_device: dict[Any, Slots] = {}
    for offset, tensor in slots:
        by_device.setdefault(tensor.device, []).append((offset, tensor))
    f64 = buf.view(torch.float64)
    for items in by_device.values():
        values = gather.on_device([t for _, t in items])
        if values is None:  # not a CUDA tensor the core may read: through torch
            values = torch.stack([t.reshape(()).to(torch.float64) for _, t in items])
        index = torch.tensor([(HEADER_BYTES + off) // 8 for off, _ in items], device=buf.device)
        f64[index] = values.to(buf.device)


def _round(world: World, header: Any, payload: bytes, cap: int, slots: Slots | None) -> Any:
    buf = _buffer(world, header, payload, cap, slots)
    torch = sys.modules["torch"]
    out = [torch.empty_like(buf) for _ in range(world.size)]
    world.dist.all_gather(out, buf, group=world.group)
    return torch.stack(out).cpu().numpy()  # one device-to-host copy of all ranks' buffers
