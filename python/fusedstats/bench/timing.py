"""Timing helpers for benchmarks on shared, noisy machines.

Every method of a race runs in the same loop, round-robin, with the starting method
rotated each round, so that a burst of noise from a neighbour lands on all of them and
medians stay comparable. The memory-read probes race along with the methods for the
same reason: the bandwidth line is measured under the same conditions as the kernels.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Sync = Callable[[], None]


def _no_sync() -> None:
    return None


@dataclass
class RaceResult:
    """Seconds per call of every method, and what each returned on its first call."""

    times: dict[str, list[float]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def median(self, name: str) -> float:
        """The median seconds of ``name``."""
        return statistics.median(self.times[name])


def race(
    fns: Mapping[str, Callable[[], Any]],
    reps: int,
    *,
    warmup: int = 1,
    sync: Sync | None = None,
    max_reps: Mapping[str, int] | None = None,
    budget_s: Mapping[str, float] | None = None,
) -> RaceResult:
    """Times every function ``reps`` times, interleaved, after ``warmup`` untimed calls.

    Args:
        fns: name -> function of no argument; its result must be on the host (or
            ``sync`` must wait for it).
        reps: timed calls of each function.
        warmup: untimed calls of each function first (first-touch page faults, thread
            pools, caches of compiled plans).
        sync: called before starting and after each call (``torch.cuda.synchronize``).
        max_reps: a lower repetition count for some functions (slow baselines).
        budget_s: caps some functions' repetitions to about this many seconds in all,
            judged from their last warm-up call (at least one repetition).

    Returns:
        The per-call times and the result of each function's first call.

    Example:
        >>> r = race({"noop": lambda: 1}, reps=3)
        >>> len(r.times["noop"]), r.outputs["noop"]
        (3, 1)
    """
    sync = sync or _no_sync
    result = RaceResult()
    want: dict[str, int] = {}
    for name, fn in fns.items():
        last = 0.0
        for i in range(max(warmup, 1)):
            sync()
            start = time.perf_counter()
            out = fn()
            sync()
            last = time.perf_counter() - start
            if i == 0:
                result.outputs[name] = out
        n = reps if max_reps is None else min(reps, max_reps.get(name, reps))
        if budget_s is not None and name in budget_s and last > 0:
            n = max(1, min(n, int(budget_s[name] / last)))
        want[name] = n
        result.times[name] = []
    names = list(fns)
    for rnd in range(max(want.values(), default=0)):
        shift = rnd % len(names)
        for name in names[shift:] + names[:shift]:
            if len(result.times[name]) >= want[name]:
                continue
            sync()
            start = time.perf_counter()
            fns[name]()
            sync()
            result.times[name].append(time.perf_counter() - start)
    return result


def race_with_setup(
    methods: Mapping[str, tuple[Callable[[], Any], Callable[[Any], Any]]],
    reps: int,
    *,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Like :func:`race`, for methods that need an untimed step before every call.

    ``methods``: name -> (setup, run); ``setup()`` runs untimed before each call, then a
    garbage collection (so one method's garbage is not collected on another's clock),
    then ``run(state)`` is timed. Interleaved and rotated as in :func:`race`.

    Example:
        >>> times = race_with_setup({"one": (lambda: 1, lambda s: s + 1)}, reps=3)
        >>> len(times["one"])
        3
    """
    import gc

    for setup, fn in methods.values():
        for _ in range(max(warmup, 1)):
            fn(setup())
    times: dict[str, list[float]] = {name: [] for name in methods}
    names = list(methods)
    for rnd in range(reps):
        shift = rnd % len(names)
        for name in names[shift:] + names[:shift]:
            setup, fn = methods[name]
            state = setup()
            gc.collect()
            start = time.perf_counter()
            fn(state)
            times[name].append(time.perf_counter() - start)
            del state
    return times


def with_threads(fn: Callable[[], Any], n: int) -> Callable[[], Any]:
    """``fn``, run with ``n`` CPU threads for both torch and fusedstats.

    On a shared box a parallel region waits for its slowest thread, which another
    process may hold for a scheduler tick (4 ms at HZ=250), so one thread can be the
    faster choice; benchmarks race both and compare each side at its faster count.
    """
    import torch

    import fusedstats

    def call() -> Any:
        before = torch.get_num_threads(), fusedstats.get_num_threads()
        torch.set_num_threads(n)
        fusedstats.set_num_threads(n)
        try:
            return fn()
        finally:
            torch.set_num_threads(before[0])
            fusedstats.set_num_threads(before[1])

    return call


def read_probes(nbytes: int, device: str) -> dict[str, Callable[[], Any]]:
    """Functions that read ``nbytes`` once as fast as the machine allows (a float32 sum).

    On CPU: numpy's sum (one thread, SIMD) and torch's sum (all intra-op threads); the
    faster of the two is the machine's measured read bandwidth. On CUDA: torch's sum.
    """
    import torch

    n = max(nbytes // 4, 1)
    if device == "cpu":
        host = np.ones(n, dtype=np.float32)  # written once, so every page is resident
        as_torch = torch.from_numpy(host)
        threads = torch.get_num_threads()
        return {
            "read_numpy_sum": lambda: float(host.sum()),
            f"read_torch_sum_{threads}t": lambda: float(as_torch.sum()),
        }
    buf = torch.ones(n, dtype=torch.float32, device=device)
    return {"read_torch_sum": buf.sum}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _l3_cache() -> str | None:
    path = "/sys/devices/system/cpu/cpu0/cache/index3/size"
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def host_info() -> dict[str, Any]:
    """The machine, for every benchmark's JSON: date (UTC), CPU model, cores, L3, memory,
    platform, python and the load average (the machines are shared)."""
    info: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "l3_cache": _l3_cache(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * page_size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    try:
        info["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        info["load_average_1_5_15"] = None
    return info


def machine_info(device: str) -> dict[str, Any]:
    """:func:`host_info` plus library versions, fusedstats' build and the device."""
    import torch

    import fusedstats

    info = host_info()
    info.update(
        {
            "numpy": np.__version__,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "fusedstats": fusedstats.__version__,
            "fusedstats_build": fusedstats.build_info(),
            "device": device,
        }
    )
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
    return info


def count_cuda_kernels(fn: Callable[[], Any]) -> int | None:
    """How many CUDA kernels one call of ``fn`` launches (torch.profiler), or None."""
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        return sum(
            1
            for e in prof.events()
            if str(e.device_type).endswith("CUDA") and not e.name.startswith(("Memcpy", "Memset"))
        )
    except Exception:  # the profiler is optional sugar; a failure must not end the run
        return None


__all__ = [
    "RaceResult",
    "count_cuda_kernels",
    "host_info",
    "machine_info",
    "race",
    "race_with_setup",
    "read_probes",
    "with_threads",
]
