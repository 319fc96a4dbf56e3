"""Key paths and settings of a rank's logger: their digest, the union over ranks, and
the plan of a merge (everything the settings decide, worked out once per key set).

Every rank sends the digest of its schema with its values; the schemas themselves
travel only when digests differ. A rank keeps the plan of its last key set, so a
steady-state call compares (path, settings) pairs and reuses everything else.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..logger.ops import MAX, MIN, SUM, Settings
from ..logger.stats import Stats, settings_of

Path = tuple[str, ...]


@dataclass
class Plan:
    """A merge's key set and what its settings decide, per key (union index ``u``).

    ``maps[r][i]`` is the union index of rank r's i-th key (None: every rank has exactly
    these keys in this order); ``first[u]`` = (rank, index there) of the first rank
    that has key u, whose previous results the merged Stats takes (as
    ``merge_and_log_n_dicts`` does).
    """

    paths: list[Path]
    settings: list[Settings]
    maps: list[list[int]] | None = None
    first: list[tuple[int, int]] | None = None
    error: str | None = None
    blob: bytes = b""
    digest: bytes = b""
    ops: bytes = b""  # merge op codes (percentiles merge as lists)
    windows: array[int] = field(default_factory=lambda: array("q"))
    passed: list[int] = field(default_factory=list)  # lists, percentiles: values pass through
    extremes: list[int] = field(default_factory=list)  # sum/min/max: ints may matter
    lifetime: list[int] = field(default_factory=list)  # sums with no window, no clear
    throughput: list[int] = field(default_factory=list)
    int_aware: np.ndarray[Any, Any] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    _index: dict[int, array[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.error is not None:
            return
        sts = self.settings
        self.ops = bytes(st.merge_op for st in sts)
        self.windows = array("q", [st.window_len for st in sts])
        self.passed = [u for u, st in enumerate(sts) if st.passes_values]
        self.extremes = [u for u, st in enumerate(sts) if st.op in (MIN, MAX, SUM)]
        self.int_aware = np.array([st.keeps_ints for st in sts], dtype=bool)
        self.lifetime = [u for u, st in enumerate(sts) if st.lifetime_sum]
        self.throughput = [u for u, st in enumerate(sts) if st.with_throughput]

    def index(self, n_ranks: int) -> array[int]:
        """Where each key is on each rank, key-major (``[u * n_ranks + r]``; -1: absent),
        as the native merge reads it."""
        got = self._index.get(n_ranks)
        if got is None:
            where = np.full((len(self.paths), n_ranks), -1, dtype=np.int64)
            if self.maps is None:
                where[:, :] = np.arange(len(self.paths))[:, None]
            else:
                for r, mapping in enumerate(self.maps):
                    where[mapping, r] = np.arange(len(mapping))
            got = self._index[n_ranks] = array("q", where.ravel().tolist())
        return got


# (signature, Plan) of this rank's last key set: one reference, read and replaced whole,
# so threads syncing different groups never pair one key set with another's plan.
_local: list[tuple[list[tuple[Path, Settings]], Plan] | None] = [None]


def local_plan(paths: list[Path], stats: list[Stats]) -> Plan:
    """The plan of this rank's keys, with their schema (JSON) and its 16-byte digest.
    Kept from the last call: comparing (path, settings) pairs is far cheaper than
    encoding them again."""
    signature = list(zip(paths, settings_of(stats), strict=True))
    cached = _local[0]
    if cached is not None and cached[0] == signature:  # settings compare by identity
        return cached[1]
    blob = json.dumps([[list(p), *st.to_json()] for p, st in signature]).encode()
    plan = Plan(list(paths), [c for _, c in signature])
    plan.blob = blob
    plan.digest = hashlib.blake2b(blob, digest_size=16).digest()
    _local[0] = (signature, plan)
    return plan


def decode_schema(blob: bytes) -> list[tuple[Path, Settings]]:
    return [(tuple(item[0]), Settings.from_json(item[1:])) for item in json.loads(blob)]


def union_plan(schemas: Sequence[list[tuple[Path, Settings]]]) -> Plan:
    """The plan over the union of the ranks' keys (in order of first appearance, rank
    order), or one that holds the reason there is none: a key with different settings
    on different ranks, or a metric on one rank that holds nested metrics on another.
    The same on every rank: it depends on the schemas only."""
    index: dict[Path, int] = {}
    paths: list[Path] = []
    cfgs: list[Settings] = []
    first: list[tuple[int, int]] = []
    maps: list[list[int]] = []
    clashes: dict[Path, list[str]] = {}
    for rank, keys in enumerate(schemas):
        mapping = []
        for i, (path, cfg) in enumerate(keys):
            u = index.get(path)
            if u is None:
                u = index[path] = len(paths)
                paths.append(path)
                cfgs.append(cfg)
                first.append((rank, i))
            elif cfgs[u] is not cfg:
                clashes[path] = []
            mapping.append(u)
        maps.append(mapping)
    if clashes:
        for rank, keys in enumerate(schemas):
            for path, cfg in keys:
                if path in clashes:
                    clashes[path].append(f"rank {rank}: {cfg.describe()}")
        shown = list(clashes.items())[:5]
        more = f" (and {len(clashes) - len(shown)} more keys)" if len(clashes) > len(shown) else ""
        text = "; ".join(f"key {_key(p)}: " + " | ".join(d) for p, d in shown)
        return Plan([], [], error=f"ranks logged keys with different settings: {text}{more}")
    for path in paths:
        for cut in range(1, len(path)):
            if path[:cut] in index:
                return Plan(
                    [],
                    [],
                    error=f"key {_key(path[:cut])} is a metric on some rank and holds nested "
                    f"metrics ({_key(path)}) on another",
                )
    return Plan(paths, cfgs, maps=maps, first=first)


def _key(path: Path) -> str:
    return repr(path[0]) if len(path) == 1 else repr(path)
