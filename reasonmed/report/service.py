"""Write the audit report (``index.html`` + PNGs) to a folder, or render it for Prefect artifacts."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import Engine

from reasonmed.audit_freshness import as_of_lines
from reasonmed.report.data import ReportData, load_report_data
from reasonmed.report.figures import FIGURES, render_all
from reasonmed.report.html import render_page

TITLE = "ReasonMed audit report"


class ReportResult(BaseModel):
    index: Path
    figures: dict[str, Path]


def report_tables(data: ReportData) -> dict[str, list[dict]]:
    return {
        "Tier distribution per run": data.tier_by_run,
        "Verifier accuracy per generator model and temperature": data.accuracy,
        "Refinement and regeneration success": data.refinement,
        "Rejected questions by reason": data.rejected_questions.get("questions", []),
        "Paths not kept, by why": data.rejected_questions.get("paths", []),
        "Token usage per model, stage and day": data.token_usage,
        "Tokens and engine time per accepted sample, per tier and role": data.cost_per_sample,
    }


def write_report(engine: Engine, out: Path) -> ReportResult:
    data = load_report_data(engine)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, png in render_all(data).items():
        paths[name] = out / f"{name}.png"
        paths[name].write_bytes(png)
    now = datetime.now(UTC)
    page = render_page(
        title=TITLE,
        generated_at=now.isoformat(timespec="seconds"),
        images={n: p.name for n, p in paths.items()},
        tables=report_tables(data),
        notes=as_of_lines(data.rollups, now),
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return ReportResult(index=index, figures=paths)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figures_markdown(pngs: dict[str, bytes]) -> str:
    """Markdown with each figure embedded as local data (no hosted image viewer involved)."""
    parts = [f"# {TITLE}\n"]
    for name, (label, _) in FIGURES.items():
        if name in pngs:
            parts.append(f"## {label}\n\n![{label}]({data_uri(pngs[name])})\n")
    return "\n".join(parts)
