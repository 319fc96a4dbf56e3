"""The flat buffers in one process: device slots land where their values belong, and
keys that cannot ride as float64 (strings, huge ints, ints mixed with floats) survive."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from fusedstats import MetricsLogger
from fusedstats.distributed import _schema, _transport, _wire


def _roundtrip(logger: MetricsLogger, keep_tensors: bool) -> tuple[list[Any], _wire.RankData]:
    """Each key's values as they come out of this rank's payload, and the payload."""
    items = list(logger._paths.items())
    stats = [s for _, s in items]
    plan = _schema.local_plan([p for p, _ in items], stats)
    packed = _wire.pack(stats, plan, keep_tensors=keep_tensors)
    header = np.zeros(_transport.HEADER_FIELDS, dtype=np.int64)
    world = _transport.World(None, None, 1, 0, torch.device("cpu"), _transport.GroupState())
    cap = -(-len(packed.payload) // 64) * 64
    buf = _transport._buffer(world, header, packed.payload, cap, packed.slots)
    data = buf.numpy()[_transport.HEADER_BYTES :]
    rank = _wire.unpack(data, len(stats), packed.n_f64, packed.n_pickle)
    return [rank.series(i) for i in range(len(stats))], rank


def test_tensor_slots_are_filled_in_place() -> None:
    logger = MetricsLogger()
    values = [1.5, torch.tensor(2.25), 3.0, torch.tensor(-4.0, dtype=torch.float64)]
    for v in values:
        logger.log_value("w", v, window=10)
        logger.log_value("plain", 7.0, window=3)
    logger.log_value("after", torch.tensor(0.5), window=2)
    on_device, _ = _roundtrip(logger, keep_tensors=True)
    assert on_device == [[1.5, 2.25, 3.0, -4.0], [7.0, 7.0, 7.0], [0.5]]
    on_host, _ = _roundtrip(logger, keep_tensors=False)
    assert on_host == on_device


def test_objects_and_ints_keep_their_types() -> None:
    logger = MetricsLogger()
    for v in ("a", "b"):
        logger.log_value("names", v, reduce=None)
    logger.log_value("huge", 2**60 + 1, reduce="sum")
    logger.log_value("mixed", 1, reduce="max", window=4)
    logger.log_value("mixed", 2.5, reduce="max", window=4)
    logger.log_value("ints", 3, reduce="min", window=4)
    logger.log_value("nan", math.nan, window=4)
    logger.reduce()
    logger.log_value("huge", 5, reduce="sum")
    series, rank = _roundtrip(logger, keep_tensors=False)
    names, huge, mixed, ints, nan = series
    assert names == [] and huge == [2**60 + 1, 5] and type(huge[0]) is int
    assert mixed == [1, 2.5] and type(mixed[0]) is int
    assert ints == [3] and type(ints[0]) is int
    assert math.isnan(nan[0])
    assert rank.prev[1] == 2**60 + 1 and type(rank.prev[1]) is int
