"""Timing helpers for the logger benchmark: interleaved races with untimed setup.

``fusedstats.bench.timing.race`` times functions of no argument. The logger cases need
an untimed step before every repetition (re-log the values a ``reduce()`` consumes,
make a fresh downstream logger), so this module has its own race with the same rules:
every method runs in the same loop, round-robin, the starting method rotated each
round, so that noise from a neighbour lands on all of them and the medians compare.

It imports only the standard library (and torch, numpy, ray, fusedstats for their
versions when they are installed), so the benchmark also runs where some are missing.
"""

from __future__ import annotations

import gc
import importlib
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Case:
    """One method of a race: ``setup()`` untimed before each call of ``run(state)``.

    ``setup`` returns the state ``run`` gets. After the first warm-up call, ``check``
    (untimed) turns that state into a result to cross-check the methods with.
    """

    run: Callable[[Any], Any]
    setup: Callable[[], Any] = lambda: None
    check: Callable[[Any], Any] = lambda state: None


@dataclass
class Race:
    """Seconds per repetition of every method, its ``check`` after the first call, and
    the error of any method that raised (it is dropped from the race)."""

    times: dict[str, list[float]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.times[name])

    @property
    def names(self) -> list[str]:
        """The methods that ran to the end."""
        return [n for n in self.times if n not in self.errors]


def race(
    cases: Mapping[str, Case],
    reps: int,
    *,
    warmup: int = 1,
    collect: bool = True,
) -> Race:
    """Times every case ``reps`` times, interleaved, after ``warmup`` untimed calls.

    Before each call (warm-up or timed) the case's ``setup`` runs untimed and, with
    ``collect``, a full garbage collection, so that one method's garbage is not
    collected on another's clock. A method that raises is recorded in ``errors`` and
    leaves the race; the others go on.

    Example:
        >>> r = race({"one": Case(run=lambda s: s, setup=lambda: 1, check=str)}, reps=3)
        >>> len(r.times["one"]), r.outputs["one"]
        (3, '1')
    """
    result = Race()
    for name, case in cases.items():
        result.times[name] = []
        try:
            for i in range(max(warmup, 1)):
                state = case.setup()
                if collect:
                    gc.collect()
                case.run(state)
                if i == 0:
                    result.outputs[name] = case.check(state)
        except Exception as e:  # a broken method must not end the others' race
            result.errors[name] = f"{type(e).__name__}: {e}"[:2000]
    names = result.names
    for rnd in range(reps):
        shift = rnd % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            if name in result.errors:
                continue
            case = cases[name]
            try:
                state = case.setup()
                if collect:
                    gc.collect()
                start = time.perf_counter()
                case.run(state)
                result.times[name].append(time.perf_counter() - start)
            except Exception as e:
                result.errors[name] = f"{type(e).__name__}: {e}"[:2000]
    return result


def rss_bytes() -> int:
    """The resident set size of this process now (Linux ``/proc/self/statm``)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            resident_pages = int(f.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _version(module: str) -> str | None:
    try:
        return str(importlib.import_module(module).__version__)
    except Exception:  # absent or broken: reported as None, never fatal
        return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """fusedstats' host facts (CPU, cores, memory, load, date) plus the versions of
    every library raced here (and where python runs: the bench env or the main one)."""
    from fusedstats.bench.timing import host_info

    info = host_info()
    info.update(
        {
            "python_executable": sys.executable,
            "python_prefix": sys.prefix,
            "numpy": _version("numpy"),
            "torch": _version("torch"),
            "ray": _version("ray"),
            "fusedstats": _version("fusedstats"),
        }
    )
    return info


def fmt_time(seconds: float | None) -> str:
    """Seconds as a short human string (ns, us, ms or s)."""
    if seconds is None or math.isnan(seconds):
        return "-"
    for unit, scale in (("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3)):
        if seconds < 1000 * scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def render_table(header: list[str], rows: list[list[str]]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


__all__ = [
    "Case",
    "Race",
    "fmt_time",
    "load_average",
    "machine_info",
    "race",
    "render_table",
    "rss_bytes",
]
