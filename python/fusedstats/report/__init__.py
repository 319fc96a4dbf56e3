"""``fusedstats report``: a run read back from its stats store, as PNG plots and HTML.

Needs matplotlib and SQLAlchemy (the ``demo`` extra); importing this package loads
neither: they are imported when :func:`build_report` runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .data import RunData, is_stats_timer, load_run, store_path

REPORT_DIR = "report"
HTML_FILE = "index.html"


@dataclass(frozen=True)
class Report:
    """What :func:`build_report` wrote."""

    run_id: str
    out_dir: Path
    html: Path
    plots: tuple[Path, ...]


def build_report(
    run_dir: str | Path, out: str | Path | None = None, run_id: str | None = None
) -> Report:
    """Reads a run from the store in ``run_dir`` and writes its plots and HTML page.

    Args:
        run_dir: a run directory (holding ``stats.db``), or the ``.db`` file.
        out: where to write (default: ``<run_dir>/report``).
        run_id: which run of the store (default: the newest).

    Returns:
        The paths written: ``index.html`` and one PNG per plot with data (reward,
        losses, steps/s, gradient norm, timing fractions).

    Raises:
        FileNotFoundError: no store in ``run_dir``.
        LookupError: the store has no run (or none with ``run_id``).
    """
    import fusedstats

    from .html import render_html
    from .plots import render_plots

    run = load_run(run_dir, run_id)
    base = Path(run_dir)
    out_dir = Path(out) if out is not None else (base.parent if base.suffix == ".db" else base)
    if out is None:
        out_dir = out_dir / REPORT_DIR
    plots = render_plots(run, out_dir)
    page = out_dir / HTML_FILE
    page.write_text(render_html(run, plots, fusedstats.__version__), encoding="utf-8")
    return Report(
        run_id=run.run_id,
        out_dir=out_dir,
        html=page,
        plots=tuple(out_dir / name for name in plots),
    )


__all__ = ["Report", "RunData", "build_report", "is_stats_timer", "load_run", "store_path"]
