"""The tensor-stats benchmark: fusedstats against pure torch and the machine's read speed.

Cases (sizes / 10 with ``quick``):

- (a) 200 tensors, 10M float32 elements in all, sized like a model's gradients;
- (b) 50 tensors, 100M float32 elements;
- (c) the same as (b) in bfloat16.

Each case races, in one interleaved loop: ``fusedstats.tensor_stats`` (every field,
read back with ``.host()``), the pure-torch baseline of
:mod:`fusedstats.kernels.fallback` (exact, and with torch's float32 reductions),
the per-tensor reference loop (case (a) only, few repetitions), ``torch._foreach_norm``
plus one ``torch.stack(...).norm()`` (the global norm only), and read probes (a float32
sum over a buffer of the same byte size) that give the machine's measured read
bandwidth. Case (a) also races a copy with every other 2-D tensor transposed, to show
what the contiguous copies of non-contiguous inputs cost. On CPU the fusedstats and
torch methods race with one thread too, and ratios compare each side at its faster
thread count (see :func:`fusedstats.bench.harness.with_threads` for why).

Targets, with every field computed: on CPU, (b) at >= 70% of the measured read
bandwidth, >= 10x the exact pure-torch baseline and faster than ``torch._foreach_norm``;
(a) in <= 1.5x the time of one read of its bytes. On a GPU, <= 2 kernel launches per
call. Each case's JSON says which it met (``targets``).
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..kernels import fallback as torch_baseline
from ..kernels.columns import COLUMN_INDEX, FIELDS
from .harness import (
    Method,
    Race,
    add_common_arguments,
    call,
    finish_report,
    new_report,
    race,
    save_report,
    with_threads,
)
from .workloads.tensors import make_tensors, nbytes_of, transpose_every_other

REPS = 9
QUICK_REPS = 3
NAIVE_MAX_REPS = 3  # the per-tensor reference loop takes seconds per call at full size
NAIVE_BUDGET_S = 20.0
SELF_CHECK_RTOL = 1e-6  # the spec's tolerance for float32 and narrower inputs
# Targets. On CPU (the project's 2-core machine), with every field computed: on (b) at
# least 70% of the measured read bandwidth, at least 10x the fastest exact pure-torch
# version, and faster than torch._foreach_norm computing the norm alone; on (a), whose
# tensors are small, at most 1.5x the time of one read of the same bytes (per-call
# overhead must not dominate). On a GPU: at most 2 kernel launches per call (the share
# of the device's copy bandwidth is bench/gpu_check.py's, on >= 1 GiB).
TARGET_READ_SHARE_B = 0.70
TARGET_SPEEDUP_B = 10.0
TARGET_TIME_VS_READ_A = 1.5
TARGET_CUDA_LAUNCHES = 2

LABELS = {
    "fusedstats": "fusedstats.tensor_stats (all fields)",
    "torch_vectorized": "pure torch vectorized, exact (all fields)",
    "torch_fp32": "pure torch, fp32 reductions (inexact)",
    "torch_naive": "pure torch per-tensor reference loop",
    "foreach_norm": "torch._foreach_norm (norm only)",
    "fusedstats_noncontig": "fusedstats, every other 2-D transposed",
    "torch_vectorized_noncontig": "pure torch vectorized exact, transposed",
    "read_numpy_sum": "read probe: numpy float32 sum (1 thread)",
    "read_torch_sum": "read probe: torch float32 sum",
}
# The methods whose result is the full [n + 1, NUM_COLUMNS] buffer.
_BUFFER_METHODS = (
    "fusedstats",
    "fusedstats_1t",
    "torch_vectorized",
    "torch_vectorized_1t",
    "torch_fp32",
    "fusedstats_noncontig",
    "torch_vectorized_noncontig",
)


@dataclass(frozen=True)
class Case:
    """One benchmark input: how many tensors, how many elements in all, which dtype."""

    key: str
    n_tensors: int
    numel: int
    dtype: str
    naive: bool = False  # also race the per-tensor reference loop
    noncontig: bool = False  # also race a copy with every other 2-D tensor transposed

    def describe(self) -> str:
        """One line, e.g. ``(a) 200 tensors, 10.0M float32 elements``."""
        size = f"{self.numel / 1e6:.1f}M {self.dtype} elements"
        return f"({self.key}) {self.n_tensors} tensors, {size}"


def cases(quick: bool = False) -> list[Case]:
    """The three cases of the benchmark (sizes / 10 when ``quick``).

    Example:
        >>> [c.describe() for c in cases(quick=True)][0]
        '(a) 200 tensors, 1.0M float32 elements'
    """
    scale = 10 if quick else 1
    return [
        Case("a", 200, 10_000_000 // scale, "float32", naive=True, noncontig=True),
        Case("b", 50, 100_000_000 // scale, "float32"),
        Case("c", 50, 100_000_000 // scale, "bfloat16"),
    ]


def tensors_of(case: Case, device: str, seed: int = 0) -> list[Any]:
    """The gradient-like tensors of ``case`` on ``device``."""
    return make_tensors(case.n_tensors, case.numel, case.dtype, device, seed)


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


# ---- comparing buffers ------------------------------------------------------------


def max_rel_error(buf: Any, ref: Any) -> tuple[float, str]:
    """The worst relative error of ``buf`` against ``ref`` over the FIELDS columns.

    Follows the tests' conventions: sums and means are relative to l1 (they cancel near
    zero), var/std have a floor far below abs_max**2 / abs_max; NaN must meet NaN.

    Example:
        >>> from fusedstats.kernels.columns import NUM_COLUMNS
        >>> a = np.ones((2, NUM_COLUMNS)); b = a.copy(); b[0, 0] = 1.5
        >>> max_rel_error(b, a)
        (0.5, 'numel')
    """
    buf = np.asarray(buf, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    col = COLUMN_INDEX
    l1 = np.abs(ref[:, col["l1"]])
    per_elem = l1 / np.maximum(ref[:, col["n_finite"]], 1.0)
    abs_max = np.nan_to_num(np.abs(ref[:, col["abs_max"]]))
    worst, where = 0.0, ""
    for name in FIELDS:
        a, b = buf[:, col[name]], ref[:, col[name]]
        scale = np.abs(b)
        if name == "sum":
            scale = np.maximum(scale, l1)
        elif name == "mean":
            scale = np.maximum(scale, per_elem)
        elif name in ("var", "var_pop"):
            scale = np.maximum(scale, 1e-12 * abs_max**2)
        elif name == "std":
            scale = np.maximum(scale, 1e-6 * abs_max)
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.abs(a - b) / np.maximum(scale, np.finfo(np.float64).tiny)
        err = np.where(np.isnan(a) & np.isnan(b), 0.0, err)
        err = np.where(np.isnan(a) ^ np.isnan(b), np.inf, err)
        err = np.nan_to_num(err, nan=np.inf)
        if err.size and float(err.max()) > worst:
            worst, where = float(err.max()), name
    return worst, where


def _as_host(x: Any) -> Any:
    return x if isinstance(x, np.ndarray) else x.detach().cpu().numpy()


def self_check(device: str) -> dict[str, Any]:
    """Checks the baselines (and fusedstats) against the reference on a small tricky input.

    Raises:
        RuntimeError: the exact torch baseline or fusedstats disagrees with the reference
            by more than the spec's 1e-6, so the race would compare different things.
    """
    import torch

    import fusedstats
    from fusedstats.kernels import reference

    gen = torch.Generator().manual_seed(1)
    nan, inf = math.nan, math.inf
    grads = [
        torch.randn(4096, generator=gen) * 1e-3,
        torch.randn(64, 48, generator=gen).t(),
        (torch.randn(3000, generator=gen) * 1e-2).bfloat16(),
    ]
    tricky = [
        torch.randn(1000, generator=gen) * 1e-2 + 1e4,  # the spec's large-offset case
        torch.tensor([]),
        torch.tensor([1.5]),
        torch.tensor([nan, 1.0, inf, 0.0, -2.0, -inf]),
        torch.tensor([nan, nan]),
        torch.zeros(10),
        torch.randn(300, generator=gen).half(),
        torch.randn(77, dtype=torch.float64, generator=gen) + 3.0,
    ]
    everything = [t.to(device) for t in grads + tricky]
    grads = [t.to(device) for t in grads]
    ref_all = _as_host(reference.stats_buffer(everything))
    ref_grads = _as_host(reference.stats_buffer(grads))
    errors = {
        "torch_vectorized": max_rel_error(torch_baseline.stats_buffer(everything), ref_all),
        "fusedstats": max_rel_error(fusedstats.tensor_stats(everything).host(), ref_all),
        "torch_fp32_on_gradients": max_rel_error(
            torch_baseline.stats_buffer(grads, exact=False), ref_grads
        ),
    }
    for name in ("torch_vectorized", "fusedstats"):
        err, field_name = errors[name]
        if not err <= SELF_CHECK_RTOL:
            raise RuntimeError(
                f"self-check: {name} differs from fusedstats.kernels.reference by "
                f"{err:.3g} (relative) in {field_name!r}; refusing to benchmark"
            )
    return {
        "tolerance": SELF_CHECK_RTOL,
        "n_tensors": len(everything),
        "max_rel_error": {k: {"error": e, "field": f} for k, (e, f) in errors.items()},
    }


# ---- one case ---------------------------------------------------------------------


def method_fns(case: Case, tensors: list[Any], device: str) -> dict[str, Callable[[], Any]]:
    """The functions raced on ``case``: name -> function returning a host result.

    On CPU the main methods also run with one thread (``<name>_1t``); speedups compare
    each side at its faster thread count.
    """
    import torch

    import fusedstats
    from fusedstats.kernels import reference

    fns: dict[str, Callable[[], Any]] = {
        "fusedstats": lambda: fusedstats.tensor_stats(tensors).host(),
        "torch_vectorized": lambda: torch_baseline.stats_buffer(tensors),
        "torch_fp32": lambda: torch_baseline.stats_buffer(tensors, exact=False),
        "foreach_norm": lambda: torch.stack(torch._foreach_norm(tensors)).norm().item(),
    }
    if device == "cpu":
        for name in list(fns):
            fns[f"{name}_1t"] = with_threads(fns[name], 1)
    if case.naive:
        fns["torch_naive"] = lambda: _as_host(reference.stats_buffer(tensors))
    if case.noncontig:
        transposed, _, _ = transpose_every_other(tensors)
        fns["fusedstats_noncontig"] = lambda: fusedstats.tensor_stats(transposed).host()
        if device == "cpu":
            fns["fusedstats_noncontig_1t"] = with_threads(fns["fusedstats_noncontig"], 1)
        fns["torch_vectorized_noncontig"] = lambda: torch_baseline.stats_buffer(transposed)
    fns.update(read_probes(nbytes_of(tensors), device))
    return fns


def _label(name: str) -> str:
    if name.startswith("read_torch_sum_"):
        return f"{LABELS['read_torch_sum']} ({name.rsplit('_', 1)[1][:-1]} threads)"
    if name.endswith("_1t"):
        return f"{LABELS[name.removesuffix('_1t')]}, 1 thr"
    return LABELS.get(name, name)


def _best(methods: dict[str, dict[str, Any]], name: str) -> tuple[str, float]:
    """The faster of ``name`` and ``name``_1t: (which, median seconds)."""
    which = min(
        (n for n in (name, f"{name}_1t") if n in methods),
        key=lambda n: float(methods[n]["median_s"]),
    )
    return which, float(methods[which]["median_s"])


def run_case(case: Case, device: str, reps: int, warmup: int = 1) -> dict[str, Any]:
    """Races every method on ``case`` and returns times, ratios and agreement."""
    import torch

    import fusedstats

    tensors = tensors_of(case, device)
    nbytes = nbytes_of(tensors)
    fns = method_fns(case, tensors, device)
    contestants: dict[str, Method | Callable[[], Any]] = dict(fns)
    if "torch_naive" in fns:  # seconds per call at full size
        contestants["torch_naive"] = call(
            fns["torch_naive"], max_reps=NAIVE_MAX_REPS, budget_s=NAIVE_BUDGET_S
        )
    sync = torch.cuda.synchronize if device == "cuda" else None
    res = race(contestants, reps, warmup=warmup, sync=sync)
    methods: dict[str, dict[str, Any]] = {
        name: {
            "label": _label(name),
            "median_s": res.median(name),
            "reps": len(times),
            "gbs": nbytes / res.median(name) / 1e9,
            "times_s": times,
        }
        for name, times in res.times.items()
    }
    probes = [n for n in methods if n.startswith("read_")]
    best_probe = min(probes, key=lambda n: float(methods[n]["median_s"]))
    read_s = float(methods[best_probe]["median_s"])
    fused_name, fused_s = _best(methods, "fusedstats")
    best = {
        name: _best(methods, name)
        for name in ("torch_vectorized", "torch_fp32", "foreach_norm", "torch_naive")
        if name in methods
    }
    out: dict[str, Any] = {
        "case": case.key,
        "description": case.describe(),
        "n_tensors": case.n_tensors,
        "numel": case.numel,
        "dtype": case.dtype,
        "bytes": nbytes,
        "fusedstats_path": fusedstats.tensor_stats(tensors[:1]).path,
        "methods": methods,
        "read_bandwidth_gbs": nbytes / read_s / 1e9,
        "read_probe": best_probe,
        # Each side at its faster thread count (see method_fns).
        "fusedstats_best": fused_name,
        "fusedstats_fraction_of_read_bandwidth": read_s / fused_s,
        "fusedstats_time_vs_one_read": fused_s / read_s,
        "speedup": {f"vs_{name}": t / fused_s for name, (_, t) in best.items()},
        "speedup_against": {f"vs_{name}": which for name, (which, _) in best.items()},
        "agreement": _agreement(res, case),
    }
    if case.noncontig:
        _, n_t, t_bytes = transpose_every_other(tensors)
        nc_name, nc_s = _best(methods, "fusedstats_noncontig")
        out["noncontiguous"] = {
            "n_transposed": n_t,
            "bytes_copied": t_bytes,
            "fusedstats_contiguous_s": fused_s,
            "fusedstats_noncontiguous_s": nc_s,
            "fusedstats_noncontiguous_best": nc_name,
            "overhead_s": nc_s - fused_s,
            "overhead_ratio": nc_s / fused_s,
            "torch_vectorized_noncontiguous_s": methods["torch_vectorized_noncontig"]["median_s"],
        }
    if device == "cuda":
        out["cuda_kernel_launches"] = {
            name: count_cuda_kernels(fns[name])
            for name in ("fusedstats", "torch_vectorized", "foreach_norm")
        }
    out["targets"] = case_targets(out, device)
    del tensors, fns, res
    torch_baseline.clear_scratch()
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def case_targets(out: dict[str, Any], device: str) -> dict[str, bool]:
    """Which of the targets (the ``TARGET_*`` constants) a case's result meets.

    Example:
        >>> case_targets({"case": "a", "fusedstats_time_vs_one_read": 1.2}, "cpu")
        {'time_at_most_1.5x_one_read': True}
    """
    met: dict[str, bool] = {}
    if device == "cpu" and out["case"] == "b":
        met["read_share_at_least_70%"] = (
            out["fusedstats_fraction_of_read_bandwidth"] >= TARGET_READ_SHARE_B
        )
        met["at_least_10x_pure_torch"] = out["speedup"]["vs_torch_vectorized"] >= TARGET_SPEEDUP_B
        met["faster_than_foreach_norm"] = out["speedup"]["vs_foreach_norm"] > 1.0
    if device == "cpu" and out["case"] == "a":
        met["time_at_most_1.5x_one_read"] = (
            out["fusedstats_time_vs_one_read"] <= TARGET_TIME_VS_READ_A
        )
    launches = (out.get("cuda_kernel_launches") or {}).get("fusedstats")
    if launches is not None:
        met["cuda_launches_at_most_2"] = launches <= TARGET_CUDA_LAUNCHES
    return met


def _agreement(res: Race, case: Case) -> dict[str, Any]:
    """Each method's worst relative error against the reference loop (or, where the
    loop did not run, against the exact torch baseline, itself checked at start)."""
    ref_name = "torch_naive" if case.naive else "torch_vectorized"
    ref = np.asarray(res.outputs[ref_name], dtype=np.float64)
    errors: dict[str, Any] = {"reference": ref_name}
    for name in _BUFFER_METHODS:
        if name in res.outputs and name != ref_name:
            err, field_name = max_rel_error(res.outputs[name], ref)
            errors[name] = {"error": err, "field": field_name}
    ref_norm = float(ref[-1, COLUMN_INDEX["norm"]])
    norm = float(res.outputs["foreach_norm"])
    errors["foreach_norm"] = {"error": abs(norm - ref_norm) / ref_norm, "field": "norm"}
    return errors


# ---- the whole benchmark ----------------------------------------------------------


def run(
    quick: bool = False,
    device: str = "cpu",
    reps: int | None = None,
    threads: int | None = None,
    log: Callable[[str], None] = print,
    checkout: str | None = None,
) -> dict[str, Any] | None:
    """Runs the benchmark; returns its results (None when ``device`` is unavailable).

    Args:
        quick: sizes / 10 and 3 repetitions (a smoke run of a few seconds).
        device: "cpu" or "cuda".
        reps: timed repetitions per method (default 9, or 3 when quick).
        threads: CPU threads for fusedstats and torch (default: leave them as they are).
        log: where progress lines go.
        checkout: the root of the checkout the run belongs to (its commit is recorded).
    """
    import torch

    import fusedstats

    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        log("fusedstats bench: CUDA is not available on this machine; skipped.")
        return None
    if threads is not None:
        torch.set_num_threads(threads)
        fusedstats.set_num_threads(threads)
    reps = reps or (QUICK_REPS if quick else REPS)
    warmup = 1 if quick else 2
    result = new_report(
        "tensor_stats",
        quick=quick,
        device=device,
        settings={"reps": reps, "warmup": warmup, "threads": threads},
        checkout=checkout,
    )
    log("self-check of the baselines against fusedstats.kernels.reference ...")
    result["self_check"] = self_check(device)
    result["cases"] = []
    for case in cases(quick):
        log(f"case {case.describe()} ...")
        result["cases"].append(run_case(case, device, reps, warmup))
    return finish_report(result)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:10.2f} ms"


def format_case(case: dict[str, Any]) -> str:
    """The table of one case."""
    lines = [
        f"{case['description']}, {case['bytes'] / 1e6:.1f} MB",
        f"  {'method':<50}{'median':>13}{'GB/s':>8}{'time/fused':>12}{'reps':>6}",
    ]
    methods = case["methods"]
    best = case["fusedstats_best"]
    fused_s = methods[best]["median_s"]
    for m in methods.values():
        lines.append(
            f"  {m['label']:<50}{_ms(m['median_s'])}{m['gbs']:8.2f}"
            f"{m['median_s'] / fused_s:11.2f}x{m['reps']:6d}"
        )
    lines.append(
        f"  read bandwidth {case['read_bandwidth_gbs']:.2f} GB/s ({case['read_probe']}); "
        f"fusedstats ({best}) reads at {case['fusedstats_fraction_of_read_bandwidth']:.0%} "
        f"of it, {case['fusedstats_time_vs_one_read']:.2f}x the time of one read"
    )
    sp, against = case["speedup"], case["speedup_against"]
    parts = [f"{sp[k]:.2f}x vs {against[k]}" for k in sp]
    lines.append(f"  speedup of {best} (each at its faster thread count): " + ", ".join(parts))
    agree = case["agreement"]
    errs = ", ".join(
        f"{k} {v['error']:.1e} ({v['field']})" for k, v in agree.items() if k != "reference"
    )
    lines.append(f"  max relative error vs {agree['reference']}: {errs}")
    nc = case.get("noncontiguous")
    if nc:
        lines.append(
            f"  non-contiguous: {nc['n_transposed']} tensors transposed "
            f"({nc['bytes_copied'] / 1e6:.1f} MB copied): fusedstats "
            f"({nc['fusedstats_noncontiguous_best']}) "
            f"{nc['fusedstats_noncontiguous_s'] * 1e3:.2f} ms vs "
            f"{nc['fusedstats_contiguous_s'] * 1e3:.2f} ms contiguous "
            f"({nc['overhead_s'] * 1e3:+.2f} ms, {nc['overhead_ratio']:.2f}x)"
        )
    if case.get("targets"):
        lines.append(
            "  targets: "
            + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in case["targets"].items())
        )
    launches = case.get("cuda_kernel_launches")
    if launches:
        lines.append(
            "  CUDA kernels per call: " + ", ".join(f"{k} {v}" for k, v in launches.items())
        )
    return "\n".join(lines)


def format_table(result: dict[str, Any]) -> str:
    """A readable report of a :func:`run` result."""
    m, settings = result["machine"], result["settings"]
    build = m["fusedstats_build"]
    head = (
        f"fusedstats {m['fusedstats']} tensor_stats benchmark on {m['device']}: "
        f"{m['cpu_model']} ({m['cpu_cores']} cores), torch {m['torch']} "
        f"({m.get('torch_threads')} threads), fusedstats {build.get('simd_level')} "
        f"x {m['fusedstats_threads']} threads, {m['date_utc']}"
    )
    if "gpu" in m:
        head += f", {m['gpu']}"
    quick = " (quick: sizes / 10, the targets are for full sizes)" if result["quick"] else ""
    sub = (
        f"median of {settings['reps']} interleaved repetitions after {settings['warmup']} "
        f"warm-up call(s){quick}; GB/s = input bytes / median time"
    )
    load = m.get("load_average_1_5_15"), result.get("load_average_end")
    if all(load):
        sub += f"; load average (1/5/15 min) {load[0]} at start, {load[1]} at end"
    sc = result["self_check"]["max_rel_error"]
    check = "self-check vs reference: " + ", ".join(f"{k} {v['error']:.1e}" for k, v in sc.items())
    body = "\n\n".join(format_case(c) for c in result["cases"])
    return "\n".join([head, sub, check, "", body])


def add_arguments(
    parser: argparse.ArgumentParser, default_out: str, checkout: str | None = None
) -> None:
    """Adds the benchmark's options (``--quick``: sizes / 10 and 3 repetitions);
    ``checkout``: the root of the checkout whose commit the JSON records."""
    add_common_arguments(parser, default_out)
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where the tensors live"
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=None,
        metavar="N",
        help=f"timed repetitions per method (default {REPS}, quick {QUICK_REPS})",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads for fusedstats and torch (default: all cores)",
    )
    parser.set_defaults(default_out=default_out, checkout=checkout)


def main_from_args(args: argparse.Namespace) -> int:
    """Runs the benchmark as the options say, prints the table, writes the JSON."""
    for opt in ("reps", "threads"):
        value = getattr(args, opt)
        if value is not None and value < 1:
            print(f"--{opt} must be at least 1, got {value}", file=sys.stderr)
            return 2
    result = run(
        quick=args.quick,
        device=args.device,
        reps=args.reps,
        threads=args.threads,
        log=lambda line: print(line, file=sys.stderr, flush=True),
        checkout=args.checkout,
    )
    if result is None:
        return 0
    print(format_table(result))
    save_report(result, args.out, args.quick, args.default_out)
    return 0


__all__ = [
    "Case",
    "add_arguments",
    "case_targets",
    "cases",
    "count_cuda_kernels",
    "format_table",
    "main_from_args",
    "max_rel_error",
    "read_probes",
    "run",
    "run_case",
    "self_check",
    "tensors_of",
]
