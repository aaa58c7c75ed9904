"""The report page: figures beside the tables they summarise, one self-contained folder."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from reasonmed.report.figures import FIGURES


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def html_table(rows: Sequence[Mapping[str, Any]], *, limit: int = 200) -> str:
    if not rows:
        return "<p class='empty'>no rows</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows[:limit]
    )
    more = f"<p class='more'>{len(rows) - limit} more rows not shown</p>" if len(rows) > limit else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>{more}"


def render_page(
    *,
    title: str,
    generated_at: str,
    images: Mapping[str, str],
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    notes: Sequence[str] = (),
) -> str:
    """``images`` maps figure name -> the <img> src (a file name, or a data: URI); ``notes``: paragraphs
    under the heading (how current the rolled-up views are)."""
    figures = "\n".join(
        f"<figure><img src='{html.escape(images[name])}' alt='{html.escape(label)}'>"
        f"<figcaption>{html.escape(label)}</figcaption></figure>"
        for name, (label, _) in FIGURES.items()
        if name in images
    )
    paragraphs = "".join(f"\n<p class='as-of'>{html.escape(n)}</p>" for n in notes)
    sections = "\n".join(f"<h2>{html.escape(name)}</h2>\n{html_table(rows)}" for name, rows in tables.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
figure {{ display: inline-block; margin: 0 1rem 1rem 0; vertical-align: top; }}
figcaption {{ font-size: .9rem; color: #555; }}
table {{ border-collapse: collapse; font-size: .85rem; margin-bottom: 1rem; }}
th, td {{ border: 1px solid #ddd; padding: .25rem .5rem; text-align: left; }}
th {{ background: #f4f4f4; }}
.empty, .more {{ color: #777; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Generated {html.escape(generated_at)} from the audit views (see docs/audits.md).</p>{paragraphs}
{figures}
{sections}
</body></html>
"""
