"""Self-contained HTML reports: plotly figures with the JavaScript inlined (works offline),
and markdown tables. Owns the page format every report uses. Imports only
``interp.metrics.stats`` and ``interp.storage.store``'s writers.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go

from interp.metrics.stats import mean_ci
from interp.storage.store import write_text


def bar_with_ci(groups: dict[str, Sequence[float]], title: str, yaxis: str) -> go.Figure:
    """One bar per group: the mean over seeds, a 95% CI error bar (none for a single value),
    and the seeds as dots."""
    names = list(groups)
    cis = [mean_ci(groups[n]) for n in names]
    cis = [(m, m, m) if len(groups[n]) < 2 else (m, lo, hi)  # one value: no error bar
           for n, (m, lo, hi) in zip(names, cis)]
    fig = go.Figure(go.Bar(x=names, y=[c[0] for c in cis], name="mean",
                           error_y={"type": "data", "symmetric": False,
                                    "array": [c[2] - c[0] for c in cis],
                                    "arrayminus": [c[0] - c[1] for c in cis]}))
    for n in names:
        fig.add_trace(go.Scatter(x=[n] * len(groups[n]), y=list(groups[n]), mode="markers",
                                 marker={"color": "black", "size": 5}, showlegend=False))
    fig.update_layout(title=title, yaxis_title=yaxis, showlegend=False, height=420)
    return fig


def write_html(path: Path, title: str, sections: list[tuple[str, str, list[go.Figure]]]) -> None:
    """sections: (heading, paragraph html, figures). plotly.js is inlined once. The page
    declares its figure count (``<meta name="interp-figures">``) so a browser check can
    count the plots that actually rendered against it."""
    n_figs = sum(len(figs) for _, _, figs in sections)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><meta name='interp-figures' content='{n_figs}'>"
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}"
             "</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    first = True
    for heading, text, figs in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{text}")
        for fig in figs:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=True if first else False))
            first = False
    parts.append("</body></html>")
    write_text(path, "\n".join(parts))


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table; a ``|`` inside a cell is escaped (``\\|``), so it stays one cell."""
    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])


def md_to_html(table: str) -> str:
    """A markdown table (as md_table writes it) as an HTML table."""
    rows = [[c.replace("\\|", "|") for c in re.split(r"(?<!\\)\|", ln.strip("|"))]
            for ln in table.splitlines() if not ln.startswith("|---")]
    head = "".join(f"<th>{_cell(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in r) + "</tr>"
                   for r in rows[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(text: str) -> str:
    """One cell, escaped; a cell that is all markdown bold (``**yes**``) in bold."""
    text = text.strip()
    if len(text) > 4 and text.startswith("**") and text.endswith("**"):
        return f"<b>{html.escape(text[2:-2])}</b>"
    return html.escape(text)
