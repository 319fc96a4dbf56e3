"""Hostile inputs for RolloutStats.add, each run in a child process by test_flattener.py
(``python -c "from tests.rollout import hostile; hostile.main(NAME)"``): a scenario that
hangs is killed at the test's deadline, and one that crashes the interpreter shows as a
failed child, not a dead test run. Each scenario prints one JSON line of what it saw.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from fusedstats.rollout import RolloutStats

SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {}


def scenario(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    SCENARIOS[fn.__name__] = fn
    return fn


def chain(depth: int, leaf: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"x": leaf}
    for _ in range(depth - 1):
        info = {"d": info}
    return info


@scenario
def ten_thousand_keys() -> dict[str, Any]:
    """10,000 keys in one dict, in a nested one, and 10,000 new keys in each of 8 calls."""
    stats = RolloutStats()
    flat = {f"k{i}": float(i) for i in range(10_000)}
    stats.add([flat, {"sub": flat}, flat])
    for call in range(8):
        stats.add([{f"call{call}_k{i}": 1.0 for i in range(10_000)}])
    means = stats.means()
    return {
        "keys": len(stats),
        "k9999": means["k9999"],
        "sub/k5": means["sub/k5"],
        "count_k0": stats.summary()["k0"]["count"],
        "call7": means["call7_k9999"],
    }


@scenario
def deep_nesting() -> dict[str, Any]:
    """200 and 512 levels are read; 513 and 1,000 levels are refused, the rest kept."""
    stats = RolloutStats()
    stats.add([chain(200, 1.0), chain(512, 2.0), chain(513, 3.0), chain(1000, 4.0), {"y": 5.0}])
    return {
        "keys": sorted(k.count("/") for k in stats.keys()),  # noqa: SIM118
        "means": sorted(stats.means().values()),
        "rejected": stats.rejected,
        "last": stats.last_rejection,
    }


@scenario
def million_element_arrays() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    a = rng.random(1_000_000)
    b = rng.random(2_000_000).astype(np.float32)[::2]  # strided, 1 M elements
    c = rng.integers(0, 9, size=(1000, 1000)).T  # transposed int64
    d = rng.random(1_000_000) < 0.5
    stats = RolloutStats()
    stats.add([{"a": a, "b": b, "c": c, "d": d}, {"a": a[:10].tolist()}])
    s = stats.summary()
    want = {
        "a": np.concatenate([a, a[:10]]),
        "b": b.astype(np.float64),
        "c": c.astype(np.float64).ravel(),
        "d": d.astype(np.float64),
    }
    return {
        "counts": {k: s[k]["count"] for k in want},
        "mean_err": max(abs(s[k]["mean"] - float(np.mean(v))) for k, v in want.items()),
        "std_err": max(abs(s[k]["std"] - float(np.std(v))) for k, v in want.items()),
        "minmax": all(s[k]["min"] == v.min() and s[k]["max"] == v.max() for k, v in want.items()),
        "get_equal": all(np.array_equal(stats.get(k), v) for k, v in want.items()),
    }


class SlowNumber(float):
    """A number whose float() lets other threads run (it gives up the GIL)."""

    def __float__(self) -> float:
        time.sleep(0)
        return 1.0


@scenario
def mutated_by_another_thread() -> dict[str, Any]:
    """A thread adds and removes keys of an info dict (and of its nested dict) while
    add() reads it; the walk yields the GIL at the slow leaves. Every call's info is
    either read whole or refused as changed, never half, and nothing crashes."""
    info: dict[str, Any] = {"stable": 1.0, "slow": SlowNumber(1.0), "sub": {"slow": SlowNumber(1)}}
    stop = threading.Event()

    def mutate() -> None:
        i = 0
        while not stop.is_set():
            info[f"extra{i % 7}"] = 2.0
            info["sub"][f"extra{i % 5}"] = 3.0
            info.pop(f"extra{(i + 3) % 7}", None)
            info["sub"].pop(f"extra{(i + 2) % 5}", None)
            i += 1

    thread = threading.Thread(target=mutate, daemon=True)
    stats = RolloutStats()
    calls = 0
    thread.start()
    deadline = time.monotonic() + 1.5
    try:
        while time.monotonic() < deadline:
            stats.add([info, {"other": 1.0}])
            calls += 1
    finally:
        stop.set()
        thread.join(10)
    s = stats.summary()
    rejected = stats.rejected.get("changed during the call", 0)
    return {
        "calls": calls,
        "rejected": rejected,
        "other": s["other"]["count"],
        "stable": s.get("stable", {}).get("count", 0.0),
        "slow": s.get("slow", {}).get("count", 0.0),
        "stable_values": sorted(set(stats.get("stable", np.zeros(0)).tolist())),
        "reasons": sorted(stats.rejected),
    }


@scenario
def changed_by_its_own_leaf() -> dict[str, Any]:
    """A leaf whose __float__ removes a key of the dict being read."""
    info: dict[str, Any] = {"a": 1.0, "b": 2.0}

    class Thief(float):
        def __float__(self) -> float:
            info.pop("a", None)
            return 0.0

    info["thief"] = Thief(0.0)
    info["c"] = 3.0
    stats = RolloutStats()
    stats.add([info, {"a": 5.0}])
    return {"means": stats.means(), "rejected": stats.rejected, "last": stats.last_rejection}


class Proxy(Mapping[str, Any]):
    """A mapping that is not a dict (walked through items())."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __getitem__(self, k: str) -> Any:
        return self.data[k]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


@scenario
def cycles() -> dict[str, Any]:
    """Cyclic infos are refused and counted; the call's other infos (a dict shared
    twice is not a cycle) are kept."""
    self_loop: dict[str, Any] = {"x": 1.0}
    self_loop["me"] = self_loop
    a: dict[str, Any] = {"x": 1.0}
    b: dict[str, Any] = {"a": a}
    a["b"] = b
    through_proxy: dict[str, Any] = {"x": 1.0}
    through_proxy["p"] = Proxy({"back": through_proxy})
    deep = chain(100, 1.0)
    inner = deep
    for _ in range(99):
        inner = inner.get("d", inner)
    inner["loop"] = deep
    shared = {"v": 2.0}
    stats = RolloutStats()
    stats.add([self_loop, {"x": 3.0}, a, b, through_proxy, deep, {"s1": shared, "s2": shared}])
    return {"means": stats.means(), "rejected": stats.rejected, "last": stats.last_rejection}


@scenario
def shared_subdicts_blow_up() -> dict[str, Any]:
    """A DAG of shared dicts whose walk would visit 2**40 entries: refused as too large
    in bounded time."""
    d: dict[str, Any] = {"v": 1.0}
    for _ in range(40):
        d = {"a": d, "b": d}
    stats = RolloutStats()
    t = time.perf_counter()
    stats.add([d, {"ok": 1.0}])
    return {
        "seconds": time.perf_counter() - t,
        "rejected": stats.rejected,
        "means": stats.means(),
        "table": [len(stats._flattener.names), stats._flattener.node_count],
    }


SCENARIO_NAMES = list(SCENARIOS)


def main(name: str) -> None:
    result = SCENARIOS[name]()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
