"""The report's HTML page: the run's summary table, its epochs, and the plots."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping

from .data import RunData

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; font-size: 0.9em; }
th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0 1.5em; }
code { background: #f6f6f6; padding: 0 0.2em; }
"""


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        return html.escape(json.dumps(dict(value), default=str, sort_keys=True))
    return html.escape(str(value))


def render_html(run: RunData, plots: Mapping[str, str], version: str) -> str:
    """The page: the summary table, the epochs table, then each plot (relative links).

    Example:
        >>> run = RunData(run={"id": "1234", "name": "demo"}, epochs=[])
        >>> page = render_html(run, {}, "0.1.0")
        >>> "1234" in page and page.startswith("<!DOCTYPE html>")
        True
    """
    esc = html.escape
    name = str(run.run.get("name") or run.run_id)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>fusedstats report: {esc(name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Run {esc(name)}</h1>",
        f"<p>Run id <code>{esc(run.run_id)}</code>, read from its stats store by "
        f"<code>fusedstats report</code> (fusedstats {esc(version)}).</p>",
        "<h2>Summary</h2>",
        "<table>",
    ]
    parts += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in run.summary()]
    parts.append("</table>")
    if run.epochs:
        attr_keys: list[str] = []
        for epoch in run.epochs:
            for key in epoch.get("attributes") or {}:
                if key not in attr_keys:
                    attr_keys.append(key)
        parts.append("<h2>Epochs</h2><table><tr><th>epochs</th>")
        parts += [f"<th>{esc(k)}</th>" for k in attr_keys]
        parts.append("<th>created</th></tr>")
        for epoch in run.epochs:
            span = f"{epoch.get('start_training_epoch')}-{epoch.get('end_training_epoch')}"
            attrs = epoch.get("attributes") or {}
            cells = "".join(f"<td>{_cell(attrs.get(k, ''))}</td>" for k in attr_keys)
            created = _cell(epoch.get("created_at", ""))
            parts.append(f"<tr><td>{esc(span)}</td>{cells}<td>{created}</td></tr>")
        parts.append("</table>")
    if plots:
        parts.append("<h2>Plots</h2>")
        for file, title in plots.items():
            parts.append(f"<h3>{esc(title)}</h3>")
            parts.append(f'<img src="{esc(file, quote=True)}" alt="{esc(title, quote=True)}">')
    else:
        parts.append("<p>The run reported no series to plot.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


__all__ = ["render_html"]
