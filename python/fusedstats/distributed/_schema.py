"""Key paths and settings of a rank's logger: their digest, the union over ranks, and
the plan of a merge (everything the settings decide, worked out once per key set).

Every rank sends the digest of its schema with its values; the schemas themselves
travel only when digests differ. A rank keeps the plan of its last key set, so a
steady-state call compares (path, settings) pairs and reuses everything else.
"""

from __future__ import annotations

import hashlib
import json
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..logger.stats import EMA, MAX, MEAN, MIN, NONE, PERCENTILES, SUM, Stats

Path = tuple[str, ...]
Cfg = tuple[Any, ...]  # Stats.settings(): reduce, window, ema_coeff, clear, percentiles, throughput


def _cfg_json(cfg: Cfg) -> list[Any]:
    reduce, window, ema, clear, pct, throughput = cfg
    w = "inf" if window == math.inf else window
    return [reduce, w, ema, clear, None if pct is None else list(pct), throughput]


def _cfg_from_json(raw: list[Any]) -> Cfg:
    reduce, window, ema, clear, pct, throughput = raw
    w = math.inf if window == "inf" else window
    return (reduce, w, ema, bool(clear), None if pct is None else tuple(pct), bool(throughput))


def describe(cfg: Cfg) -> str:
    reduce, window, ema, clear, pct, throughput = cfg
    text = f"reduce={reduce!r}, window={window!r}, ema_coeff={ema!r}, clear_on_reduce={clear}"
    if pct is not None:
        text += f", percentiles={list(pct)}"
    return text + (", with_throughput=True" if throughput else "")


def op_of(cfg: Cfg) -> int:
    reduce, _, ema, _, _, _ = cfg
    if reduce == "mean":
        return EMA if ema is not None else MEAN
    return {"min": MIN, "max": MAX, "sum": SUM, "percentiles": PERCENTILES}.get(reduce or "", NONE)


def _prototype(cfg: Cfg) -> Stats:
    reduce, window, ema, clear, pct, throughput = cfg
    return Stats(
        reduce=reduce,
        window=window,
        ema_coeff=ema,
        clear_on_reduce=clear,
        percentiles=None if pct is None else list(pct),
        with_throughput=throughput,
    )


@dataclass
class Plan:
    """A merge's key set and what its settings decide, per key (union index ``u``).

    ``maps[r][i]`` is the union index of rank r's i-th key (None: every rank has exactly
    these keys in this order); ``first[u]`` = (rank, index there) of the first rank
    that has key u, whose previous results the merged Stats takes (as
    ``merge_and_log_n_dicts`` does).
    """

    paths: list[Path]
    cfgs: list[Cfg]
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
    prototypes: list[Stats] = field(default_factory=list)
    _group_first: dict[int, array[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.error is not None:
            return
        ops = [op_of(c) for c in self.cfgs]
        self.ops = bytes(NONE if op == PERCENTILES else op for op in ops)
        self.windows = array(
            "q", [0 if c[1] is None or c[1] == math.inf else int(c[1]) for c in self.cfgs]
        )
        self.passed = [u for u, op in enumerate(ops) if op in (NONE, PERCENTILES)]
        self.extremes = [u for u, op in enumerate(ops) if op in (MIN, MAX, SUM)]
        self.int_aware = np.array([op not in (MEAN, EMA) for op in ops], dtype=bool)
        self.lifetime = [
            u for u, c in enumerate(self.cfgs) if c[0] == "sum" and c[1] is None and not c[3]
        ]
        self.throughput = [u for u, c in enumerate(self.cfgs) if c[5]]
        protos: dict[Cfg, Stats] = {}
        self.prototypes = [protos.get(c) or protos.setdefault(c, _prototype(c)) for c in self.cfgs]

    def group_first(self, n_ranks: int) -> array[int]:
        """Series offsets of the merge's groups: key-major, one series per rank."""
        got = self._group_first.get(n_ranks)
        if got is None:
            got = self._group_first[n_ranks] = array(
                "q", range(0, n_ranks * len(self.paths) + 1, n_ranks)
            )
        return got


# (signature, Plan) of this rank's last key set: one reference, read and replaced whole,
# so threads syncing different groups never pair one key set with another's plan.
_local: list[tuple[list[tuple[Path, Cfg]], Plan] | None] = [None]


def local_plan(paths: list[Path], stats: list[Stats]) -> Plan:
    """The plan of this rank's keys, with their schema (JSON) and its 16-byte digest.
    Kept from the last call: comparing (path, settings) pairs is far cheaper than
    encoding them again."""
    signature = list(zip(paths, map(Stats.settings, stats), strict=True))
    cached = _local[0]
    if cached is not None and cached[0] == signature:
        return cached[1]
    blob = json.dumps([[list(p), *_cfg_json(c)] for p, c in signature]).encode()
    plan = Plan(list(paths), [c for _, c in signature])
    plan.blob = blob
    plan.digest = hashlib.blake2b(blob, digest_size=16).digest()
    _local[0] = (signature, plan)
    return plan


def decode_schema(blob: bytes) -> list[tuple[Path, Cfg]]:
    return [(tuple(item[0]), _cfg_from_json(item[1:])) for item in json.loads(blob)]


def union_plan(schemas: Sequence[list[tuple[Path, Cfg]]]) -> Plan:
    """The plan over the union of the ranks' keys (in order of first appearance, rank
    order), or one that holds the reason there is none: a key with different settings
    on different ranks, or a metric on one rank that holds nested metrics on another.
    The same on every rank: it depends on the schemas only."""
    index: dict[Path, int] = {}
    paths: list[Path] = []
    cfgs: list[Cfg] = []
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
            elif cfgs[u] != cfg:
                clashes[path] = []
            mapping.append(u)
        maps.append(mapping)
    if clashes:
        for rank, keys in enumerate(schemas):
            for path, cfg in keys:
                if path in clashes:
                    clashes[path].append(f"rank {rank}: {describe(cfg)}")
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
