"""MetricsLogger benchmark: fusedstats vs RLlib 2.40 vs a plain-Python logger.

    python bench/bench_logger.py [--quick] [--out PATH] [--reps N] [--profile]

Races, in one run and interleaved, ``fusedstats.MetricsLogger``, RLlib's
``MetricsLogger`` (when ``ray.rllib`` imports: the benchmark environment of
bench/README.md; skipped, and said so, otherwise) and
``fusedstats.bench.logger_baseline.PlainLogger``:

1. ``log_value`` on an existing key, a float, the same keyword settings on every call
   (mean over a window of 10, EMA, lifetime sum): ns per call.
2. ``reduce()`` of 1,000 keys (window 10), 20 new values per key logged before every
   repetition (untimed): ms per reduce.
3. ``merge_and_log_n_dicts`` of 32 results x 200 keys, each result a ``reduce()`` of an
   upstream logger (built once, untimed); a fresh downstream logger per repetition.
4. Logged tensors: ``log_value`` of a 0-d CPU tensor on an existing key (ns per call,
   256 distinct tensors cycled), and ``reduce()`` of 1,000 keys x 10 tensor values
   against the same values logged as floats (ms).
5. Memory: 10 million ``log_value`` calls on 10 windowed keys, no reduce, in a child
   process per logger: RSS along the way.

Cases 1-3 are ``fusedstats.bench.workloads.logger`` (``fusedstats bench`` races the
same, without RLlib). Targets, against RLlib 2.40 in the same run: ``log_value`` >= 6x
faster, ``reduce()`` >= 20x, the merge >= 20x; memory flat (after the first tenth of the
calls, RSS grows by at most 1 byte per call and at most 4 MiB). Logged tensors:
``log_value`` of a 0-d tensor <= 1 us, their ``reduce()`` <= 3 ms and <= 2.5x the same
values as floats. Where RLlib is not importable, the ratios are also given against
RLlib's medians measured on the project's 2-core machine (``RLLIB_REFERENCE_S``).

Prints a table (medians, ratios, targets) and writes JSON (default
bench/results/logger.json; a --quick run writes only where --out says).
fusedstats is the installed package (``import fusedstats``), never the source tree.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fusedstats.bench.harness import (
    Method,
    Race,
    add_common_arguments,
    finish_report,
    jsonable,
    new_report,
    race,
    render_table,
    save_report,
)
from fusedstats.bench.workloads import logger as w

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "logger.json"

FUSED, RLLIB, PLAIN = "fusedstats", "rllib", "plain"

# RLlib 2.40's medians on the project's 2-core machine (the ratios' reference where
# RLlib is not importable), and the speed-ups over RLlib fusedstats must reach.
RLLIB_REFERENCE_S = {"log_value": 1.6e-6, "reduce": 23e-3, "merge": 34e-3}
TARGET_SPEEDUP = {"log_value": 6.0, "reduce": 20.0, "merge": 20.0}
# RSS noise allowed after the first tenth of the calls: 1 byte per call, at most 4 MiB
# (a Python float kept per call costs about 32), at least 256 KiB (page-level noise).
FLAT_TOLERANCE_BYTES = 4 * 2**20
FLAT_TOLERANCE_MIN_BYTES = 256 * 2**10

MEMORY_KEYS = 10
MEMORY_CHECKPOINTS = 10
MEMORY_CHILD_TIMEOUT_S = 600


# --- the loggers ----------------------------------------------------------------


def load_loggers(only: list[str] | None = None) -> tuple[dict[str, type], dict[str, str]]:
    """{name: MetricsLogger class} of those that import, and {name: why not} of the rest."""
    found: dict[str, type] = {}
    missing: dict[str, str] = {}
    want = only or [FUSED, RLLIB, PLAIN]
    if FUSED in want:
        try:
            from fusedstats import MetricsLogger as FusedLogger

            found[FUSED] = FusedLogger
        except Exception as e:  # any import failure means: not ready, skip it
            missing[FUSED] = f"from fusedstats import MetricsLogger failed: {e!r}"
    if RLLIB in want:
        try:
            from ray.rllib.utils.metrics.metrics_logger import MetricsLogger as RllibLogger

            found[RLLIB] = RllibLogger
        except Exception as e:
            missing[RLLIB] = (
                "ray.rllib is not importable here (create the benchmark environment of "
                f"bench/README.md to race it): {e!r}"
            )
    if PLAIN in want:
        from fusedstats.bench.logger_baseline import PlainLogger

        found[PLAIN] = PlainLogger
    return found, missing


def logger_origin(name: str, cls: type) -> str:
    module = sys.modules.get(cls.__module__)
    return f"{cls.__module__}.{cls.__qualname__} ({getattr(module, '__file__', '?')})"


def rss_bytes() -> int:
    """The resident set size of this process now (Linux ``/proc/self/statm``)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            resident_pages = int(f.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- case 4: logged tensors --------------------------------------------------------
# Targets: log_value of a 0-d tensor on an existing key <= 1 us; reduce() of 1,000 keys
# x 10 tensor values <= 3 ms and <= 2.5x the same values logged as floats. The figures
# before the native gather (2026-12-06, the project's machine): 3.5 us and 65 ms.
TENSOR_TARGETS = {"log_value_ns": 1000.0, "reduce_ms": 3.0, "tensor_over_float": 2.5}
TENSOR_BEFORE = {"log_value_ns": 3500.0, "reduce_ms": 65.0}
TENSOR_POOL = 256  # distinct tensors cycled: a fresh, cache-hot loss tensor each step


def tensor_log_race(loggers: dict[str, type], n_log: int, reps: int) -> Race:
    """``log_value("loss", t, reduce="mean", window=10)`` with a 0-d float32 CPU tensor,
    ``n_log`` calls cycling through 256 distinct tensors (as a trainer logs a new loss
    tensor each step, still in cache)."""
    import torch

    rng = random.Random(2)
    pool = [torch.tensor(rng.random()) for _ in range(TENSOR_POOL)]
    ts = [pool[i % TENSOR_POOL] for i in range(n_log)]

    def make_case(cls: type) -> Method:
        def setup() -> Any:
            logger = cls()
            logger.log_value("loss", pool[0], reduce="mean", window=10)
            return logger

        def run(logger: Any) -> None:
            for t in ts:
                logger.log_value("loss", t, reduce="mean", window=10)

        return Method(run=run, setup=setup, check=lambda lg: _number(lg.peek("loss")))

    return race(
        {name: make_case(cls) for name, cls in loggers.items()},
        reps,
        collect="after_setup",
        keep_going=True,
    )


def tensor_reduce_race(loggers: dict[str, type], reps: int) -> Race:
    """``reduce()`` of 1,000 window-10 mean keys after 10 new values per key (untimed),
    logged as 0-d tensors (float32, float64, bfloat16 and int32, in turn), and, as
    ``<logger>, floats``, the same values logged as python floats."""
    import torch

    keys = [f"metric_{i:04d}" for i in range(1000)]
    rng = random.Random(3)
    dtypes = [torch.float32, torch.float64, torch.bfloat16, torch.int32]
    tensors = [
        [torch.tensor(rng.random() * 100, dtype=dtypes[(k + j) % 4]) for j in range(10)]
        for k in range(len(keys))
    ]
    floats = [[float(t.to(torch.float64)) for t in row] for row in tensors]

    def make_case(cls: type, values: list[list[Any]]) -> Method:
        logger = cls()

        def setup() -> Any:
            for key, row in zip(keys, values, strict=True):
                for v in row:
                    logger.log_value(key, v, reduce="mean", window=10)
            return logger

        def check(lg: Any) -> Any:
            return [_number(lg.peek(keys[0])), _number(lg.peek(keys[-1]))]

        return Method(run=lambda lg: lg.reduce(), setup=setup, check=check)

    cases = {}
    for name, cls in loggers.items():
        cases[name] = make_case(cls, tensors)
        if name == FUSED:
            cases[f"{FUSED}, floats"] = make_case(cls, floats)
    return race(cases, reps, collect="after_setup", keep_going=True)


def _number(x: Any) -> Any:
    """A peek as a python float (another logger may give a tensor)."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return x


def tensor_records(loggers: dict[str, type], n_log: int, reps: int) -> dict[str, Any]:
    log = tensor_log_race(loggers, n_log, reps)
    red = tensor_reduce_race(loggers, reps)
    log_ns = {n: log.median(n) / n_log * 1e9 for n in log.names}
    red_ms = {n: red.median(n) * 1e3 for n in red.names}
    fs_log, fs_red = log_ns.get(FUSED), red_ms.get(FUSED)
    fs_floats = red_ms.get(f"{FUSED}, floats")
    ratio = fs_red / fs_floats if fs_red and fs_floats else None
    return {
        "log_value_tensor": {
            "title": 'log_value("loss", t, reduce="mean", window=10), t a 0-d float32 CPU tensor',
            "unit": "ns/call",
            "median": log_ns,
            "times_s": log.times,
            "check": log.outputs,
            "errors": log.errors,
            "target": {
                "at_most_ns": TENSOR_TARGETS["log_value_ns"],
                "met": None if fs_log is None else fs_log <= TENSOR_TARGETS["log_value_ns"],
                "before_ns": TENSOR_BEFORE["log_value_ns"],
            },
        },
        "reduce_tensors": {
            "title": "reduce() of 1,000 keys x 10 tensor values (window 10), vs the same as floats",
            "unit": "ms",
            "median": red_ms,
            "times_s": red.times,
            "check": red.outputs,
            "errors": red.errors,
            "results_agree": close(red.outputs.get(FUSED), red.outputs.get(f"{FUSED}, floats")),
            "tensor_over_float": ratio,
            "target": {
                "at_most_ms": TENSOR_TARGETS["reduce_ms"],
                "at_most_tensor_over_float": TENSOR_TARGETS["tensor_over_float"],
                "met": None
                if fs_red is None or ratio is None
                else fs_red <= TENSOR_TARGETS["reduce_ms"]
                and ratio <= TENSOR_TARGETS["tensor_over_float"],
                "before_ms": TENSOR_BEFORE["reduce_ms"],
            },
        },
    }


def print_tensor_records(records: dict[str, Any]) -> None:
    print()
    print("logged tensors:")
    log, red = records["log_value_tensor"], records["reduce_tensors"]
    rows = []
    for name, ns in log["median"].items():
        rows.append([log["title"][:60], name, f"{ns:.0f} ns", ""])
    for name, err in log["errors"].items():
        rows.append([log["title"][:60], name, "error", err[:70]])
    for name, ms in red["median"].items():
        rows.append([red["title"][:60], name, f"{ms:.3g} ms", ""])
    for name, err in red["errors"].items():
        rows.append([red["title"][:60], name, "error", err[:70]])
    print(render_table(["case", "logger", "median", "note"], rows))
    t1, t2 = log["target"], red["target"]
    ratio = red["tensor_over_float"]
    print(
        f"  targets: log_value <= {t1['at_most_ns']:.0f} ns: {t1['met']}; reduce <= "
        f"{t2['at_most_ms']:g} ms and <= {t2['at_most_tensor_over_float']}x floats "
        f"(measured {'-' if ratio is None else f'{ratio:.2f}x'}): {t2['met']}; "
        f"fusedstats tensors and floats agree: {red['results_agree']}"
    )


# --- case 5: memory, in a child process per logger --------------------------------


def memory_child(name: str, calls: int) -> dict[str, Any]:
    """Runs in the child: ``calls`` log_value calls over 10 windowed keys, no reduce."""
    loggers, missing = load_loggers([name])
    if name not in loggers:
        return {"error": missing.get(name, "unknown logger")}
    logger = loggers[name]()
    keys = [f"mem_{i}" for i in range(MEMORY_KEYS)]
    for key in keys:
        logger.log_value(key, 0.0, reduce="mean", window=10)
    rss_start = rss_bytes()
    chunk = max(calls // MEMORY_CHECKPOINTS, 1)
    checkpoints = []
    done = 0
    start = time.perf_counter()
    while done < calls:
        n = min(chunk, calls - done)
        for i in range(done, done + n):
            # A fresh float object each call, as a loss computed each step is.
            logger.log_value(keys[i % MEMORY_KEYS], i * 1e-7, reduce="mean", window=10)
        done += n
        checkpoints.append(
            {
                "calls": done,
                "rss_bytes": rss_bytes(),
                "elapsed_s": round(time.perf_counter() - start, 3),
            }
        )
    peek = logger.peek(keys[0])
    return {
        "calls": calls,
        "keys": MEMORY_KEYS,
        "rss_start_bytes": rss_start,
        "checkpoints": checkpoints,
        "peek_first_key": peek,
    }


def run_memory_child(name: str, calls: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--memory-child",
        name,
        "--memory-calls",
        str(calls),
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=MEMORY_CHILD_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {MEMORY_CHILD_TIMEOUT_S} s", "timed_out": True}
    if proc.returncode != 0:
        return {"error": f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarize_memory(raw: dict[str, Any], target_calls: int) -> dict[str, Any]:
    """Growth over the whole run and after the first tenth; extrapolated if shorter."""
    if "error" in raw:
        return raw
    cps = raw["checkpoints"]
    end = cps[-1]["rss_bytes"]
    growth = end - raw["rss_start_bytes"]
    growth_after_first = end - cps[0]["rss_bytes"]
    per_call = growth / raw["calls"]
    calls_after_first = raw["calls"] - cps[0]["calls"]
    tolerance = max(FLAT_TOLERANCE_MIN_BYTES, min(FLAT_TOLERANCE_BYTES, calls_after_first))
    out = dict(raw)
    out.update(
        {
            "rss_end_bytes": end,
            "rss_growth_bytes": growth,
            "rss_growth_after_first_tenth_bytes": growth_after_first,
            "rss_growth_bytes_per_call": per_call,
            "ns_per_call": cps[-1]["elapsed_s"] / raw["calls"] * 1e9,
            "flat_tolerance_bytes": tolerance,
            "flat": abs(growth_after_first) <= tolerance,
            "extrapolated": raw["calls"] != target_calls,
        }
    )
    if raw["calls"] != target_calls:
        out["rss_growth_extrapolated_bytes"] = per_call * target_calls
    return out


def memory_case(names: list[str], calls: int) -> dict[str, Any]:
    out = {}
    for name in names:
        print(f"  memory: {name}, {calls:,} log_value calls ...", flush=True)
        raw = run_memory_child(name, calls)
        if raw.get("timed_out") and calls >= 10 * MEMORY_CHECKPOINTS:
            print(f"  memory: {name} timed out; {calls // 10:,} calls, extrapolated", flush=True)
            raw = run_memory_child(name, calls // 10)
        out[name] = summarize_memory(raw, calls)
    return out


# --- reporting --------------------------------------------------------------------


def close(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    try:
        fa, fb = float(a), float(b)
    except (TypeError, ValueError):
        return a == b
    if math.isnan(fa) and math.isnan(fb):
        return True
    return math.isclose(fa, fb, rel_tol=1e-9, abs_tol=1e-12)


def case_record(
    kind: str, title: str, unit: str, per: float, r: Race, names: list[str]
) -> dict[str, Any]:
    """Medians in ``unit`` (seconds / ``per`` scaled), ratios, target check."""
    scale = {"ns/call": 1e9, "ms": 1e3}[unit]
    errors = {n: r.errors[n] for n in names if n in r.errors}
    names = [n for n in names if n not in errors]
    med = {n: r.median(n) / per for n in names}
    rec: dict[str, Any] = {
        "title": title,
        "unit": unit,
        "reps": {n: len(r.times[n]) for n in names},
        "median": {n: med[n] * scale for n in names},
        "times_s": {n: r.times[n] for n in names},
        "check": {n: r.outputs.get(n) for n in names},
        "errors": errors,
    }
    base = names[0] if names else None
    rec["results_agree"] = all(close(rec["check"][n], rec["check"][base]) for n in names)
    ratios = {}
    if FUSED in med:
        for other in (RLLIB, PLAIN):
            if other in med:
                ratios[f"{other}_over_fusedstats"] = med[other] / med[FUSED]
        ratios["rllib_reference_over_fusedstats"] = RLLIB_REFERENCE_S[kind] / med[FUSED]
    if RLLIB in med:
        ratios["rllib_over_rllib_reference"] = med[RLLIB] / RLLIB_REFERENCE_S[kind]
    rec["ratios"] = ratios
    target = TARGET_SPEEDUP[kind]
    measured = ratios.get("rllib_over_fusedstats")
    rec["target"] = {
        "speedup_vs_rllib": target,
        "rllib_reference": RLLIB_REFERENCE_S[kind] * scale,
        "measured_speedup": measured,
        "met": None if measured is None else measured >= target,
        "met_vs_reference": (
            None if FUSED not in med else ratios["rllib_reference_over_fusedstats"] >= target
        ),
    }
    if "(empty loop)" in r.times:
        rec["empty_loop_ns_per_iteration"] = r.median("(empty loop)") / per * 1e9
    return rec


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}x"


def print_report(report: dict[str, Any], names: list[str]) -> None:
    m = report["machine"]
    print()
    print(
        f"{m['cpu_model']}, {m['cpu_cores']} cores, python {m['python']}, numpy "
        f"{m['numpy']}, torch {m['torch']}, ray {m['ray']}, fusedstats {m['fusedstats']}, "
        f"load {m['load_average_1_5_15']}, {m['date_utc']}"
    )
    if report.get("note"):
        print(f"note: {report['note']}")
    for name, why in report["skipped"].items():
        print(f"SKIPPED {name}: {why}")
    header = ["case", *names, "rllib/fs", "ref/fs", "plain/fs", "target", "met (vs ref)"]
    rows = []
    for rec in report["cases"].values():
        unit = rec["unit"]
        row = [f"{rec['title']} [{unit}]"]
        for n in names:
            v = rec["median"].get(n)
            row.append("-" if v is None else f"{v:.4g}")
        ratios = rec["ratios"]
        row.append(fmt_ratio(ratios.get("rllib_over_fusedstats")))
        row.append(fmt_ratio(ratios.get("rllib_reference_over_fusedstats")))
        row.append(fmt_ratio(ratios.get("plain_over_fusedstats")))
        t = rec["target"]
        row.append(f">={t['speedup_vs_rllib']:g}x (ref {t['rllib_reference']:g})")

        def yes_no(x: bool | None) -> str:
            return "-" if x is None else ("yes" if x else "NO")

        row.append(f"{yes_no(t['met'])} ({yes_no(t['met_vs_reference'])})")
        rows.append(row)
    print(render_table(header, rows))
    print(
        "  ratios: the other logger's median / fusedstats' (>1: fusedstats faster); "
        "ref = RLlib 2.40's median measured on the project's 2-core machine"
    )
    for rec in report["cases"].values():
        if not rec["results_agree"]:
            print(f"WARNING: results differ in {rec['title']}: {rec['check']}")
        for name, err in rec["errors"].items():
            print(f"ERROR: {name} failed in {rec['title']} (left out): {err[:300]}")
        if "empty_loop_ns_per_iteration" in rec:
            print(
                f"  ({rec['title']}: the bare for-loop costs "
                f"{rec['empty_loop_ns_per_iteration']:.1f} ns/iteration, included above)"
            )
    merge = report["cases"].get("merge")
    if merge and not all(merge.get("inputs_unchanged", {}).values()):
        print(f"WARNING: merging changed its inputs: {merge['inputs_unchanged']}")
    mem = report.get("memory")
    if mem:
        print()
        mrows = []
        for name, rec in mem["results"].items():
            if "error" in rec:
                mrows.append([name, "-", "-", "-", "-", "-", rec["error"][:80]])
                continue
            mib = 2**20
            note = ""
            if rec["extrapolated"]:
                note = (
                    f"ran {rec['calls']:,} calls; extrapolated growth "
                    f"{rec['rss_growth_extrapolated_bytes'] / mib:.0f} MiB"
                )
            mrows.append(
                [
                    name,
                    f"{rec['calls']:,}",
                    f"{rec['rss_start_bytes'] / mib:.1f}",
                    f"{rec['rss_end_bytes'] / mib:.1f}",
                    f"{rec['rss_growth_after_first_tenth_bytes'] / mib:+.1f}",
                    f"{rec['rss_growth_bytes_per_call']:.2f}",
                    ("flat" if rec["flat"] else "GROWS") + (f"; {note}" if note else ""),
                ]
            )
        print(
            f"memory: log_value on {MEMORY_KEYS} keys (window 10), no reduce, "
            f"target {mem['target_calls']:,} calls; RSS of a child process"
        )
        print(
            render_table(
                [
                    "logger",
                    "calls",
                    "RSS start MiB",
                    "RSS end MiB",
                    "growth after 1st tenth MiB",
                    "bytes/call",
                    "verdict",
                ],
                mrows,
            )
        )


# --- profiling (for whoever tunes fusedstats; never part of the JSON) ---------------


def profile_fused(cls: type, n_log: int) -> None:
    import cProfile
    import pstats

    loggers = {FUSED: cls}
    results = {FUSED: w.upstream_results(cls)}
    for title, methods in (
        ("log_value", w.log_value_methods(loggers, "log_value_mean_window10", w.log_values(n_log))),
        ("reduce of 1000 keys", w.reduce_methods(loggers)),
        ("merge 32 x 200", w.merge_methods(loggers, results)),
    ):
        method = methods[FUSED]
        state = method.setup() if method.setup is not None else None
        prof = cProfile.Profile()
        prof.runcall(method.run, state)
        print(f"\n=== cProfile, fusedstats: {title} ===")
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)


# --- main -----------------------------------------------------------------------


def float_cases(
    loggers: dict[str, type], n_log: int, reps: int, names: list[str]
) -> dict[str, Any]:
    """Cases 1-3: the log_value loops, reduce() of 1,000 keys, the merge."""
    out: dict[str, Any] = {}
    xs = w.log_values(n_log)
    for case_id, (title, *_) in w.LOG_VALUE_CASES.items():
        print(f"  {title} ...", flush=True)
        methods = w.log_value_methods(loggers, case_id, xs, empty_loop=True)
        r = race(methods, reps, collect="after_setup", keep_going=True)
        out[case_id] = case_record("log_value", title, "ns/call", n_log, r, names)

    print("  reduce() of 1,000 keys ...", flush=True)
    r = race(w.reduce_methods(loggers), reps, collect="after_setup", keep_going=True)
    out["reduce"] = case_record(
        "reduce", "reduce() of 1,000 keys, window 10, 20 values each", "ms", 1, r, names
    )

    print("  merge_and_log_n_dicts of 32 x 200 ...", flush=True)
    results: dict[str, list[Any]] = {}
    broken: dict[str, str] = {}
    for name, cls in loggers.items():
        try:
            results[name] = w.upstream_results(cls)
        except Exception as e:  # reported like an error in the race itself
            broken[name] = f"building the results: {type(e).__name__}: {e}"[:2000]
    r = race(w.merge_methods(loggers, results), reps, collect="after_setup", keep_going=True)
    r.errors.update(broken)
    rec = case_record("merge", "merge_and_log_n_dicts, 32 results x 200 keys", "ms", 1, r, names)
    # Merging must not change its inputs: a second merge gives the same peeks.
    again = w.merge_methods(loggers, results)
    rec["inputs_unchanged"] = {n: close(again[n].output(), r.outputs[n]) for n in r.names}
    out["merge"] = rec
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench_logger.py", description=(__doc__ or "").split("\n\n")[0]
    )
    add_common_arguments(parser, DEFAULT_OUT)
    parser.add_argument(
        "--reps", type=int, default=None, help="timed repetitions per case (default 9; >= 7)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[FUSED, RLLIB, PLAIN],
        default=None,
        help="race only these loggers",
    )
    parser.add_argument(
        "--memory-calls",
        type=int,
        default=None,
        help="log_value calls of the memory case (default 10,000,000; quick 1,000,000)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory case")
    parser.add_argument(
        "--no-tensors", action="store_true", help="skip the logged-tensor cases (need torch)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="print cProfile tables of fusedstats' cases and exit"
    )
    parser.add_argument(
        "--note", default=None, help="free text kept in the JSON (e.g. which commit was built)"
    )
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_child:
        calls = args.memory_calls or 10_000_000
        print(json.dumps(jsonable(memory_child(args.memory_child, calls))))
        return 0

    reps = args.reps or (7 if args.quick else 9)
    if reps < 7:
        print(f"note: {reps} repetitions; the reported medians want at least 7")
    n_log = 20_000 if args.quick else 200_000
    memory_calls = args.memory_calls or (1_000_000 if args.quick else 10_000_000)
    loggers, skipped = load_loggers(args.only)
    names = list(loggers)
    if args.profile:
        if FUSED not in loggers:
            print(f"fusedstats' MetricsLogger is not available: {skipped[FUSED]}")
            return 1
        profile_fused(loggers[FUSED], n_log)
        return 0

    for name, why in skipped.items():
        print(f"SKIPPED {name}: {why}", flush=True)
    for name, cls in loggers.items():
        print(f"{name}: {logger_origin(name, cls)}", flush=True)

    report = new_report(
        "logger",
        quick=args.quick,
        libraries=("numpy", "torch", "ray"),
        checkout=ROOT,
        settings={
            "reps": reps,
            "log_value_calls_per_rep": n_log,
            "reduce": {"keys": 1000, "values_per_key": 20, "window": 10},
            "merge": {"results": 32, "keys": 200, "values_per_key": 20, "window": 10},
            "memory": {"calls": memory_calls, "keys": MEMORY_KEYS, "window": 10},
        },
    )
    report.update(
        {
            "note": args.note,
            "loggers": {n: logger_origin(n, c) for n, c in loggers.items()},
            "skipped": skipped,
        }
    )
    report["cases"] = float_cases(loggers, n_log, reps, names)
    if not args.no_tensors:
        print("  logged tensors ...", flush=True)
        report["tensors"] = tensor_records(loggers, n_log, reps)
    if not args.no_memory:
        results = memory_case(names, memory_calls)
        report["memory"] = {"target_calls": memory_calls, "results": results}
        if FUSED in results:
            report["memory"]["fusedstats_flat"] = results[FUSED].get("flat")
    finish_report(report)
    print_report(report, names)
    if "tensors" in report:
        print_tensor_records(report["tensors"])
    save_report(report, args.out, args.quick, DEFAULT_OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
