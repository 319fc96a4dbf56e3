"""The race harness of every fusedstats benchmark: interleaved rounds, medians, JSON.

The machines these benchmarks run on are shared and noisy, so no time is compared
with a time measured in another run. Every method of a race runs in the same loop,
round-robin, the starting method rotated each round, so that a burst of noise from a
neighbour lands on all of them alike; what is reported are medians and the ratios of
medians measured in that one run. A method may need an untimed step before every call
(fresh inputs, a refilled logger): its ``setup`` runs off the clock and hands ``run``
its state. Multi-process benchmarks race inside every rank with the same loop (a
barrier as ``before``) and report, per repetition, the slowest rank
(:func:`slowest_rank`).

Every benchmark's JSON starts from :func:`new_report`: the machine (CPU, cores, memory,
load average, date, library versions, where fusedstats was imported from), the git
commit of the benchmark's checkout and whether it had changes, and the settings; and
is written by :func:`write_json`.

Example:
    >>> r = race({"sum": lambda: sum(range(100)), "len": lambda: len("abc")}, reps=5)
    >>> len(r.times["sum"]), r.outputs["len"], r.ratio("sum", "sum")
    (5, 3, 1.0)
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Clock = Callable[[], float]
# Times one call of a function of no argument: (seconds, its result).
Timer = Callable[[Callable[[], Any]], tuple[float, Any]]
# When a full garbage collection runs, if at all: right before the setup (the inputs then
# reach ``run`` as fresh as a producer hands them), or between setup and the clock (one
# method's garbage is then never collected on another's clock).
Collect = Literal["before_setup", "after_setup"]
# Files a benchmark writes into its checkout: their changes do not make it "dirty".
RESULTS_DIR = "bench/results"


@dataclass
class Method:
    """One contestant of a race.

    Attributes:
        run: the timed call; it gets what ``setup`` returned (None without a setup).
        setup: untimed, before every call (warm-up and timed): fresh inputs, a refill.
        check: untimed, after the first warm-up call, of the state ``run`` got: the
            method's output, to cross-check the contestants (default: what ``run``
            returned).
        max_reps: fewer timed calls than the race's (a slow baseline).
        budget_s: about this many seconds of timed calls at most, judged from the last
            warm-up call (at least one timed call; no cap without a warm-up).
    """

    run: Callable[[Any], Any]
    setup: Callable[[], Any] | None = None
    check: Callable[[Any], Any] | None = None
    max_reps: int | None = None
    budget_s: float | None = None

    def output(self) -> Any:
        """One untimed call (setup, run): the output a race records for it.

        Example:
            >>> Method(run=lambda s: s + 1, setup=lambda: 1).output()
            2
        """
        state = self.setup() if self.setup is not None else None
        out = self.run(state)
        return out if self.check is None else self.check(state)


def call(fn: Callable[[], Any], **options: Any) -> Method:
    """A :class:`Method` of a function of no argument (``options``: Method's fields).

    Example:
        >>> call(lambda: 42, max_reps=3).run(None)
        42
    """
    return Method(run=lambda _state: fn(), **options)


@dataclass
class Race:
    """What a race measured: seconds per call of every method, its output, its error.

    ``cpu_times`` (this thread's CPU seconds) and ``minor_faults`` (page faults served
    without I/O; each costs microseconds on a VM) are filled with ``measure_cpu``.
    """

    times: dict[str, list[float]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    cpu_times: dict[str, list[float]] = field(default_factory=dict)
    minor_faults: dict[str, list[int]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        """The methods that ran to the end, in the race's order."""
        return [n for n in self.times if n not in self.errors]

    def median(self, name: str) -> float:
        """The median seconds per call of ``name``."""
        return statistics.median(self.times[name])

    def medians(self) -> dict[str, float]:
        """Median seconds per call of every method that ran to the end."""
        return {n: self.median(n) for n in self.names}

    def ratio(self, slower: str, faster: str) -> float:
        """``median(slower) / median(faster)``: how many times faster ``faster`` is."""
        return self.median(slower) / self.median(faster)

    def fastest(self, names: Iterable[str]) -> str:
        """The one of ``names`` with the lowest median."""
        return min(names, key=self.median)

    def summary(self, name: str) -> dict[str, Any]:
        """Median, min, 90th percentile and count of ``name``'s seconds, for the JSON."""
        ts = sorted(self.times[name])
        out: dict[str, Any] = {
            "median_s": statistics.median(ts),
            "min_s": ts[0],
            "p90_s": ts[int(0.9 * (len(ts) - 1))],
            "reps": len(ts),
        }
        if self.cpu_times.get(name):
            out["median_cpu_s"] = statistics.median(self.cpu_times[name])
            out["median_minor_faults"] = statistics.median(self.minor_faults[name])
        return out


def _minor_faults() -> int:
    import resource  # POSIX only, and only with measure_cpu

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class _Racer:
    """One race's loop; :func:`race` documents it."""

    def __init__(
        self,
        methods: Mapping[str, Method],
        *,
        sync: Callable[[], Any] | None,
        before: Callable[[], Any] | None,
        collect: Collect | None,
        measure_cpu: bool,
        keep_going: bool,
        clock: Clock,
        timer: Timer | None,
    ) -> None:
        if collect not in (None, "before_setup", "after_setup"):
            raise ValueError(f"collect must be 'before_setup', 'after_setup' or None: {collect!r}")
        self.methods = methods
        self.sync = sync
        self.before = before
        self.collect = collect
        self.measure_cpu = measure_cpu
        self.keep_going = keep_going
        self.clock = clock
        self.timer = timer
        self.result = Race()
        for name in methods:
            self.result.times[name] = []
            if measure_cpu:
                self.result.cpu_times[name] = []
                self.result.minor_faults[name] = []

    def once(self, name: str) -> tuple[float, Any, Any]:
        """One call of ``name``: (seconds, run's result, the state it got)."""
        method = self.methods[name]
        if self.collect == "before_setup":
            gc.collect()
        state = method.setup() if method.setup is not None else None
        if self.collect == "after_setup":
            gc.collect()
        if self.before is not None:
            self.before()
        if self.sync is not None:
            self.sync()
        faults, cpu = (_minor_faults(), time.thread_time()) if self.measure_cpu else (0, 0.0)
        if self.timer is not None:
            seconds, out = self.timer(lambda: method.run(state))
        else:
            start = self.clock()
            out = method.run(state)
            if self.sync is not None:
                self.sync()
            seconds = self.clock() - start
        if self.measure_cpu:
            self.result.cpu_times[name].append(time.thread_time() - cpu)
            self.result.minor_faults[name].append(_minor_faults() - faults)
        return seconds, out, state

    def keep_output(self, name: str, out: Any, state: Any) -> None:
        """The output of ``name``'s first call."""
        if name not in self.result.outputs:
            check = self.methods[name].check
            self.result.outputs[name] = out if check is None else check(state)

    def warm_up(self, name: str, warmup: int, reps: int) -> int:
        """The untimed calls of ``name``; returns how many timed calls it gets."""
        method = self.methods[name]
        last = 0.0
        for _ in range(warmup):
            last, out, state = self.once(name)
            self.keep_output(name, out, state)
        if self.measure_cpu:  # the warm-up calls are not part of the record
            self.result.cpu_times[name].clear()
            self.result.minor_faults[name].clear()
        n = reps if method.max_reps is None else min(reps, method.max_reps)
        if method.budget_s is not None and last > 0:
            n = max(1, min(n, int(method.budget_s / last)))
        return n

    def timed(self, name: str) -> None:
        """One timed call of ``name``."""
        seconds, out, state = self.once(name)
        self.result.times[name].append(seconds)
        self.keep_output(name, out, state)

    def guarded(self, name: str, step: Callable[..., Any], *args: Any) -> Any:
        """``step(name, *args)``; with ``keep_going`` an error drops ``name`` from the race."""
        if not self.keep_going:
            return step(name, *args)
        try:
            return step(name, *args)
        except Exception as e:  # a broken method must not end the others' race
            self.result.errors[name] = f"{type(e).__name__}: {e}"[:2000]
            return None

    def run(self, reps: int, warmup: int) -> Race:
        want = {name: self.guarded(name, self.warm_up, warmup, reps) or 0 for name in self.methods}
        names = list(self.methods)
        for rnd in range(max(want.values(), default=0)):
            shift = rnd % len(names)
            for name in names[shift:] + names[:shift]:
                if name in self.result.errors or len(self.result.times[name]) >= want[name]:
                    continue
                self.guarded(name, self.timed)
        return self.result


def race(
    methods: Mapping[str, Method | Callable[[], Any]],
    reps: int,
    *,
    warmup: int = 1,
    sync: Callable[[], Any] | None = None,
    before: Callable[[], Any] | None = None,
    collect: Collect | None = None,
    measure_cpu: bool = False,
    keep_going: bool = False,
    clock: Clock = time.perf_counter,
    timer: Timer | None = None,
) -> Race:
    """Times every method ``reps`` times, interleaved, after ``warmup`` untimed calls each.

    Round ``r`` calls the methods in their order rotated by ``r``, so none always runs
    first (or right after a given other one). Around every call, off the clock: the
    method's ``setup``, a full garbage collection where ``collect`` says, ``before()``
    (a barrier between ranks), ``sync()``; on the clock: ``run(state)`` then ``sync()``
    (``torch.cuda.synchronize``: the call's kernels are done).

    Args:
        methods: name -> :class:`Method`, or a function of no argument.
        reps: timed calls of each method (fewer for one with ``max_reps``/``budget_s``).
        warmup: untimed calls of each method first (first-touch page faults, thread
            pools, compiled plans); 0 for methods that take minutes. The output of each
            method's first call is kept.
        sync: waits for a call's work to finish (device work).
        before: runs untimed right before each call, after the setup.
        collect: when a full garbage collection runs around each call (None: never).
        measure_cpu: also record each call's CPU seconds and minor page faults.
        keep_going: a method that raises is recorded in ``errors`` and leaves the race,
            the others go on (default: the error propagates).
        clock: the clock (seconds).
        timer: times a call in place of ``clock`` and ``sync`` (:func:`cuda_event_timer`:
            the GPU's own clock, for kernels too short for a host clock and a sync).

    Returns:
        The per-call seconds, outputs and errors of every method.

    Example:
        >>> ticks = iter(range(1000))
        >>> r = race({"a": Method(run=lambda s: s * 2, setup=lambda: 21)}, reps=3,
        ...          clock=lambda: float(next(ticks)))
        >>> r.times["a"], r.outputs["a"]
        ([1.0, 1.0, 1.0], 42)
    """
    as_methods = {n: m if isinstance(m, Method) else call(m) for n, m in methods.items()}
    racer = _Racer(
        as_methods,
        sync=sync,
        before=before,
        collect=collect,
        measure_cpu=measure_cpu,
        keep_going=keep_going,
        clock=clock,
        timer=timer,
    )
    return racer.run(reps, warmup)


def cuda_event_timer(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Times ``fn()`` with CUDA events on the current stream: the device's time from
    its first kernel to its last, without the host's launch and sync latency (tens of
    microseconds: several percent of a 1 GiB read on a fast GPU)."""
    import torch

    cuda: Any = torch.cuda  # Event is untyped in torch's stubs
    start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
    start.record()
    out = fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3, out


def slowest_rank(per_rank: Sequence[Mapping[str, Sequence[float]]]) -> dict[str, list[float]]:
    """Per method and repetition, the slowest rank's seconds: the time of a collective
    step is that of its last rank.

    ``per_rank``: every rank's :attr:`Race.times` (``all_gather_object`` of them); each
    rank raced the same methods the same number of times.

    Example:
        >>> slowest_rank([{"sync": [1.0, 5.0]}, {"sync": [3.0, 2.0]}])
        {'sync': [3.0, 5.0]}
    """
    if not per_rank:
        return {}
    first = per_rank[0]
    for rank, times in enumerate(per_rank):
        for name, ts in first.items():
            if len(times.get(name, ())) != len(ts):
                raise ValueError(f"rank {rank} raced {name!r} a different number of times")
    return {
        name: [max(times[name][i] for times in per_rank) for i in range(len(ts))]
        for name, ts in first.items()
    }


def gloo_world(target: Callable[..., None], world: int, cfg: Any, timeout_s: float = 1800) -> Any:
    """Spawns ``world`` processes running ``target(rank, world, init_file, cfg, queue)``
    (a ``file://`` rendezvous in a temporary folder, for :func:`init_gloo`) and returns
    the first object a rank puts on ``queue`` (by convention, rank 0's report).
    ``target`` must be importable by the spawned processes (module level)."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        procs = [
            ctx.Process(target=target, args=(r, world, init_file, cfg, queue)) for r in range(world)
        ]
        for p in procs:
            p.start()
        got = queue.get(timeout=timeout_s)
        for p in procs:
            p.join(timeout=60)
    return got


def init_gloo(rank: int, world: int, init_file: str, timeout_s: float) -> None:
    """Joins the gloo group of :func:`gloo_world` (in a rank's process)."""
    import torch.distributed as dist

    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=timeout_s),
    )


def with_threads(fn: Callable[[], Any], n: int) -> Callable[[], Any]:
    """``fn``, run with ``n`` CPU threads for both torch and fusedstats.

    On a shared box a parallel region waits for its slowest thread, which another
    process may hold for a scheduler tick (4 ms at HZ=250), so one thread can be the
    faster choice; benchmarks race both and compare each side at its faster count.
    """
    import torch

    import fusedstats

    def threaded() -> Any:
        before = torch.get_num_threads(), fusedstats.get_num_threads()
        torch.set_num_threads(n)
        fusedstats.set_num_threads(n)
        try:
            return fn()
        finally:
            torch.set_num_threads(before[0])
            fusedstats.set_num_threads(before[1])

    return threaded


# ---- the machine and the checkout --------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (the machines are shared), or None."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def version(distribution: str) -> str | None:
    """The installed version of ``distribution`` without importing it, or None.

    Example:
        >>> version("no-such-distribution-here") is None
        True
    """
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def host_info() -> dict[str, Any]:
    """The machine: date (UTC), CPU model, cores, L3, memory, platform, python (which
    interpreter: a benchmark environment or the main one) and the load average."""
    info: dict[str, Any] = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "l3_cache": _read("/sys/devices/system/cpu/cpu0/cache/index3/size"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "load_average_1_5_15": load_average(),
    }
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * page_size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return info


def machine_info(
    device: str = "cpu", libraries: Iterable[str] = ("numpy", "torch")
) -> dict[str, Any]:
    """:func:`host_info`, the versions of ``libraries`` (None where absent), fusedstats'
    version, build and the file it was imported from, the thread counts, the device.
    Imports torch only when ``device`` is "cuda" (its GPU is named)."""
    import fusedstats

    info = host_info()
    info.update({lib: version(lib) for lib in libraries})
    info.update(
        {
            "fusedstats": fusedstats.__version__,
            "fusedstats_file": fusedstats.__file__,
            "fusedstats_build": fusedstats.build_info(),
            "fusedstats_threads": fusedstats.get_num_threads(),
            "device": device,
        }
    )
    loaded = sys.modules.get("torch")
    if loaded is not None:
        info["torch_threads"] = loaded.get_num_threads()
    if device == "cuda":
        import torch

        props = torch.cuda.get_device_properties(0)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
    return info


def checkout_state(root: str | Path) -> dict[str, Any]:
    """The git commit of the checkout at ``root`` and whether its tracked files have
    changes (outside ``bench/results``, which benchmarks write); {} outside git.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     checkout_state(d)
        {}
    """

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return done.stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != Path(root).resolve():
            return {}  # a folder inside some other repository: not a checkout of ours
        commit = git("rev-parse", "HEAD")
        changed = git("diff", "--name-only", "HEAD", "--", ".", f":!{RESULTS_DIR}")
    except (OSError, subprocess.SubprocessError):
        return {}
    files = changed.splitlines()
    return {"commit": commit, "dirty": bool(files), "changed_files": files[:20]}


# ---- the report ------------------------------------------------------------------------


def new_report(
    benchmark: str,
    *,
    quick: bool,
    settings: Mapping[str, Any],
    device: str = "cpu",
    libraries: Iterable[str] = ("numpy", "torch"),
    checkout: str | Path | None = None,
) -> dict[str, Any]:
    """The head of a benchmark's JSON: its name, quick or not, the machine, the checkout
    (when ``checkout`` names its root) and the settings. :func:`finish_report` closes it.
    """
    report: dict[str, Any] = {
        "benchmark": benchmark,
        "quick": quick,
        "machine": machine_info(device, libraries),
    }
    if checkout is not None:
        report["checkout"] = checkout_state(checkout)
    report["settings"] = dict(settings)
    return report


def finish_report(report: dict[str, Any]) -> dict[str, Any]:
    """Adds the load average at the end (the start's is in ``machine``); returns it."""
    report["load_average_end"] = load_average()
    return report


def jsonable(x: Any) -> Any:
    """``x`` as JSON can hold it: keys as str, tuples as lists, NaN and infinities as
    strings, numpy scalars as numbers, anything else as its repr.

    Example:
        >>> jsonable({("a", 1): [float("nan"), 2.5, None]})
        {"('a', 1)": ['nan', 2.5, None]}
    """
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    tolist = getattr(x, "tolist", None)  # numpy scalars and arrays, tensors
    if callable(tolist):
        return jsonable(tolist())
    return repr(x)


def write_json(report: Mapping[str, Any], path: str | Path) -> Path:
    """Writes ``report`` as indented JSON (creating its folder); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(report), indent=1) + "\n", encoding="utf-8")
    return path


def output_path(out: str | Path | None, quick: bool, default: str | Path) -> Path | None:
    """Where a benchmark writes its JSON: ``out`` if given, else ``default`` — except
    that a quick run writes only where ``out`` says (quick numbers never replace the
    recorded ones).

    Example:
        >>> output_path(None, True, "results/x.json") is None, str(output_path(None, False, "x"))
        (True, 'x')
    """
    if out is not None:
        return Path(out)
    return None if quick else Path(default)


def save_report(
    report: Mapping[str, Any], out: str | Path | None, quick: bool, default: str | Path
) -> Path | None:
    """Writes ``report`` where :func:`output_path` says and prints where; returns the
    path (None: a quick run without ``out``, nothing written)."""
    path = output_path(out, quick, default)
    if path is not None:
        print(f"\nwrote {write_json(report, path)}")
    return path


def add_common_arguments(parser: argparse.ArgumentParser, default_out: str | Path) -> None:
    """``--quick`` and ``--out`` as every benchmark script has them."""
    parser.add_argument(
        "--quick", action="store_true", help="a short smoke run; writes JSON only with --out"
    )
    parser.add_argument(
        "--out", default=None, metavar="PATH", help=f"JSON path (default: {default_out})"
    )


# ---- printing ------------------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    """Seconds as a short string in ns, us, ms or s.

    Example:
        >>> fmt_time(0.00123), fmt_time(2.5e-8), fmt_time(None)
        ('1.23 ms', '25 ns', '-')
    """
    if seconds is None or math.isnan(seconds):
        return "-"
    for unit, scale in (("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3)):
        if seconds < 1000 * scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def render_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table, columns padded to their widest cell.

    Example:
        >>> print(render_table(["a", "bb"], [["xyz", 1]]))
        a    bb
        ---  --
        xyz  1
    """
    cells = [[str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])


__all__ = [
    "Method",
    "Race",
    "add_common_arguments",
    "call",
    "checkout_state",
    "cuda_event_timer",
    "finish_report",
    "fmt_time",
    "gloo_world",
    "host_info",
    "init_gloo",
    "jsonable",
    "load_average",
    "machine_info",
    "new_report",
    "output_path",
    "race",
    "render_table",
    "save_report",
    "slowest_rank",
    "version",
    "with_threads",
    "write_json",
]
