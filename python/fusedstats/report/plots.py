"""The report's PNG plots, drawn with matplotlib's object API on the Agg canvas.

``matplotlib.figure.Figure`` with ``FigureCanvasAgg`` rather than ``pyplot``: no global
backend is switched and no figure is kept in pyplot's registry, so the report can run
inside any program (a notebook, a trainer) without changing its matplotlib state.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .data import FRAC_PREFIX, RunData, Series, is_stats_timer

#: Plot file name -> (title, function drawing it on a Figure; False when no data).
Plotter = Callable[[Any, RunData], bool]


def _xy(points: Series) -> tuple[list[int], list[float]]:
    return [s for s, _ in points], [v for _, v in points]


def _axes(fig: Any, title: str, ylabel: str) -> Any:
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.set_xlabel("agent step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return ax


def plot_reward(fig: Any, run: RunData) -> bool:
    """Mean reward per agent step, and the eval category scores on a second axis."""
    reward = run.get("overview/reward")
    scores = {k: v for k, v in run.with_prefix("eval_").items() if k.endswith("/score") and v}
    if not reward and not scores:
        return False
    ax = _axes(fig, "reward", "mean reward per agent step")
    if reward:
        ax.plot(*_xy(reward), marker="o", markersize=3, label="overview/reward")
    if scores:
        right = ax.twinx()
        right.set_ylabel("eval score")
        for key, points in sorted(scores.items()):
            right.plot(*_xy(points), "s--", color="tab:orange", label=f"eval_{key}")
        right.legend(loc="lower right")
    ax.legend(loc="upper left")
    return True


def plot_losses(fig: Any, run: RunData) -> bool:
    """One small panel per ``losses/`` key (their scales differ by decades)."""
    losses = {k: v for k, v in sorted(run.with_prefix("losses/").items()) if v}
    if not losses:
        return False
    cols = 3
    rows = (len(losses) + cols - 1) // cols
    fig.set_size_inches(11, 2.6 * rows + 0.6)
    fig.suptitle("losses (mean over the epoch's minibatches)")
    for i, (key, points) in enumerate(losses.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot(*_xy(points), marker=".")
        ax.set_title(key, fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
    return True


def plot_sps(fig: Any, run: RunData) -> bool:
    """Agent steps per second: each epoch's, and since the start."""
    curves = {k: run.get(k) for k in ("overview/sps", "overview/steps_per_second")}
    if not any(curves.values()):
        return False
    ax = _axes(fig, "throughput", "agent steps / s")
    for key, points in curves.items():
        if points:
            ax.plot(*_xy(points), marker="o", markersize=3, label=key)
    ax.set_ylim(bottom=0)
    ax.legend()
    return True


def plot_grad_norm(fig: Any, run: RunData) -> bool:
    """The global gradient norm and abs-max (log scale), from the fused kernel."""
    curves = {k: run.get(k) for k in ("grad/norm", "grad/abs_max")}
    if not any(curves.values()):
        return False
    ax = _axes(fig, "gradients (global)", "value")
    for key, points in curves.items():
        if points:
            ax.plot(*_xy(points), marker="o", markersize=3, label=key)
    if all(v > 0 for points in curves.values() for _, v in points):
        ax.set_yscale("log")
    ax.legend()
    return True


def plot_timing(fig: Any, run: RunData) -> bool:
    """Each epoch's wall time by timer: the work timers on the left, the stats timers
    (stacked, in percent) on the right. Two panels because stats timers run nested
    inside the work timers, so one stack would count their time twice."""
    fracs = {k: v for k, v in sorted(run.with_prefix(FRAC_PREFIX).items()) if v}
    if not fracs:
        return False
    fig.set_size_inches(11, 4.5)
    work = {op: v for op, v in fracs.items() if not is_stats_timer(op)}
    stats = {op: v for op, v in fracs.items() if is_stats_timer(op)}
    left = fig.add_subplot(1, 2, 1)
    left.set_title("work timers: share of the epoch")
    for op, points in work.items():
        # matplotlib leaves out labels that start with "_", as timer names do.
        left.plot(*_xy(points), marker=".", label=op.lstrip("_"))
    left.set_ylim(0, 1)
    right = fig.add_subplot(1, 2, 2)
    steps = sorted({s for points in stats.values() for s, _ in points})
    bottom = [0.0] * len(steps)
    for op, points in stats.items():
        value = dict(points)
        heights = [100.0 * value.get(s, 0.0) for s in steps]
        right.bar(range(len(steps)), heights, bottom=bottom, label=op.lstrip("_"))
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    right.axhline(1.0, color="k", linestyle=":", linewidth=1, label="1%")
    right.set_xticks(range(len(steps)), [f"{s:,}" for s in steps], rotation=45, fontsize=7)
    share = run.stats_share()
    median = sorted(v for _, v in share)[len(share) // 2] if share else 0.0
    right.set_title(f"stats timers, % of the epoch (median {median:.2%})")
    for ax in (left, right):
        ax.set_xlabel("agent step")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    left.set_ylabel("fraction")
    right.set_ylabel("percent")
    return True


DORMANT_SUFFIX = "/dormant_frac"
UNDERFLOW_KEYS = ("grad/underflow_bf16", "grad/underflow_e4m3")


def plot_health(fig: Any, run: RunData) -> bool:
    """Model health: each layer's dormant-unit fraction (``act/<layer>/dormant_frac``)
    on the left, the share of gradient elements that underflow bf16 and e4m3
    (``grad/underflow_<fmt>``) on the right."""
    dormant = {
        k[: -len(DORMANT_SUFFIX)]: v
        for k, v in sorted(run.with_prefix("act/").items())
        if k.endswith(DORMANT_SUFFIX) and v
    }
    underflow = {k: run.get(k) for k in UNDERFLOW_KEYS if run.get(k)}
    if not dormant and not underflow:
        return False
    fig.set_size_inches(11, 4.5)
    left = fig.add_subplot(1, 2, 1)
    left.set_title("dormant units per layer (ReDo)")
    left.set_ylabel("fraction of the layer's units")
    for layer, points in dormant.items():
        left.plot(*_xy(points), marker="o", markersize=3, label=layer)
    left.set_ylim(-0.02, 1.02)
    right = fig.add_subplot(1, 2, 2)
    right.set_title("gradient underflow (nonzero, below the smallest normal)")
    right.set_ylabel("fraction of finite gradient elements")
    for key, points in underflow.items():
        right.plot(*_xy(points), marker="o", markersize=3, label=key.removeprefix("grad/"))
    if underflow and all(v > 0 for points in underflow.values() for _, v in points):
        right.set_yscale("log")
    for ax in (left, right):
        ax.set_xlabel("agent step")
        ax.grid(True, alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=7)
    return True


PLOTS: dict[str, tuple[str, Plotter]] = {
    "reward.png": ("Reward and eval scores", plot_reward),
    "losses.png": ("Losses", plot_losses),
    "sps.png": ("Steps per second", plot_sps),
    "grad_norm.png": ("Gradient norm", plot_grad_norm),
    "timing.png": ("Timing fractions", plot_timing),
    "health.png": ("Model health: dormant units, gradient underflow", plot_health),
}


def render_plots(run: RunData, out_dir: Path) -> dict[str, str]:
    """Writes every plot with data to ``out_dir``; returns {file name: title}."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    for name, (title, draw) in PLOTS.items():
        fig = Figure(figsize=(8, 4.5), layout="constrained")
        FigureCanvasAgg(fig)
        if draw(fig, run):
            fig.savefig(out_dir / name, dpi=100)
            written[name] = title
    return written


__all__ = ["PLOTS", "render_plots"]
