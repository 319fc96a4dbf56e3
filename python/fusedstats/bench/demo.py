"""A few-second speed report: gradient statistics of a synthetic model, three ways.

The ``tensor_stats`` part of ``fusedstats bench`` runs :func:`run_demo`: it builds a small
conv + MLP model (~4.8M parameters), runs one backward pass on random data, then races
``fusedstats.tensor_stats`` over the gradients against the pure-torch baseline computing
the same statistics and against ``torch._foreach_norm`` (the global norm only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..kernels import fallback as torch_baseline
from ..kernels.columns import COLUMN_INDEX
from .harness import race, with_threads
from .tensor_stats import max_rel_error
from .workloads.tensors import model_gradients, synthetic_model

DEMO_REPS = 15


def run_demo(
    reps: int = DEMO_REPS,
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Races fusedstats, the pure-torch baseline and ``_foreach_norm``; prints a report.

    On CPU each method also runs with one thread, and each is reported at its faster
    thread count (on a busy shared machine one thread often wins; see
    :func:`fusedstats.bench.harness.with_threads`).

    Args:
        reps: timed calls of each method (interleaved, after two warm-up calls).
        device: "cpu", or "cuda" when available.
        log: where the report's lines go.

    Returns:
        Median seconds per method and thread count, fusedstats' speedups, and its
        global statistics.
    """
    import torch

    import fusedstats

    torch.manual_seed(0)
    model = synthetic_model().to(device)
    grads = model_gradients(model)
    numel = sum(g.numel() for g in grads)
    nbytes = sum(g.numel() * g.element_size() for g in grads)
    fns: dict[str, Callable[[], Any]] = {
        "fusedstats": lambda: fusedstats.tensor_stats(grads).host(),
        "torch_vectorized": lambda: torch_baseline.stats_buffer(grads),
        "foreach_norm": lambda: torch.stack(torch._foreach_norm(grads)).norm().item(),
    }
    threads = {name: torch.get_num_threads() for name in fns}
    if device == "cpu":
        for name in list(fns):
            fns[f"{name}_1t"] = with_threads(fns[name], 1)
            threads[f"{name}_1t"] = 1
    sync = torch.cuda.synchronize if device == "cuda" else None
    res = race(fns, reps, warmup=2, sync=sync)
    med = {name: res.median(name) for name in fns}
    labels = {
        "fusedstats": "fusedstats.tensor_stats (15 stats, per tensor + global)",
        "torch_vectorized": "pure torch, vectorized (the same stats)",
        "foreach_norm": "torch._foreach_norm + stack().norm() (norm only)",
    }
    best = {
        name: min((n for n in (name, f"{name}_1t") if n in med), key=med.__getitem__)
        for name in labels
    }
    fused = med[best["fusedstats"]]
    log(
        f"fusedstats {fusedstats.__version__} demo: statistics of a synthetic conv+MLP "
        f"model's gradients\n  {len(grads)} tensors, {numel / 1e6:.2f}M float32 values "
        f"({nbytes / 1e6:.1f} MB) on {device}, median of {reps} interleaved calls, "
        "each method at its faster thread count\n"
    )
    log(f"  {'method':<56}{'threads':>8}{'median':>11}{'time / fusedstats':>19}")
    for name, label in labels.items():
        t = med[best[name]]
        log(f"  {label:<56}{threads[best[name]]:>8}{t * 1e3:8.2f} ms{t / fused:18.2f}x")
    buf = res.outputs["fusedstats"]
    glob = buf[-1]
    err, _ = max_rel_error(buf, res.outputs["torch_vectorized"])
    shown = ("norm", "mean", "std", "abs_max", "n_zero", "n_nan")
    log("\n  " + "  ".join(f"grad/{k} {glob[COLUMN_INDEX[k]]:.4g}" for k in shown))
    speedup = med[best["torch_vectorized"]] / fused
    vs_norm = med[best["foreach_norm"]] / fused
    log(
        f"  fusedstats computes every statistic {speedup:.1f}x faster than pure torch "
        f"(max relative difference {err:.1e});\n  torch._foreach_norm computes the norm "
        f"alone in {vs_norm:.2f}x the time fusedstats takes for all of them."
    )
    return {
        "n_tensors": len(grads),
        "numel": numel,
        "median_s": med,
        "best": best,
        "speedup_vs_torch_vectorized": speedup,
        "speedup_vs_foreach_norm": vs_norm,
        "max_rel_error_vs_torch": err,
        "global": {k: float(glob[COLUMN_INDEX[k]]) for k in COLUMN_INDEX},
    }


__all__ = ["run_demo"]
