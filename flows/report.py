"""Prefect flow: the audit report, attached to the run as keyed artifacts (and written to a folder).

Figures are embedded in a markdown artifact as base64 data URIs: the images stay inside the Prefect
database like every other artifact, with no hosted image viewer or upload involved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from sqlalchemy import Engine

from reasonmed.db.audit_rollups import refresh_rollups
from reasonmed.flows import run_names
from reasonmed.flows.run import RunContext
from reasonmed.report.data import load_report_data
from reasonmed.report.figures import render_all
from reasonmed.report.service import figures_markdown, report_tables, write_report

TABLE_KEYS = {
    "Tier distribution per run": "audit-tier-distribution",
    "Verifier accuracy per generator model and temperature": "audit-verifier-accuracy",
    "Refinement and regeneration success": "audit-refinement-success",
    "Rejected questions by reason": "audit-rejected-questions",
    "Paths not kept, by why": "audit-rejected-paths",
    "Token usage per model, stage and day": "audit-token-usage",
    "Tokens and engine time per accepted sample, per tier and role": "audit-cost-per-sample",
}


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return json.loads(json.dumps(rows, default=str)) or [{"note": "none"}]


def publish_report_artifacts(engine: Engine) -> list[str]:
    """Attach the report's figures and tables to the current flow run; returns the artifact keys."""
    data = load_report_data(engine)
    create_markdown_artifact(
        key="audit-report-figures",
        markdown=figures_markdown(render_all(data)),
        description="audit report figures (embedded PNG data)",
    )
    keys = ["audit-report-figures"]
    for title, rows in report_tables(data).items():
        key = TABLE_KEYS[title]
        create_table_artifact(key=key, table=_jsonable(rows), description=title)
        keys.append(key)
    return keys


@flow(name="audit-report", flow_run_name=run_names.report_name, persist_result=False)
def audit_report(out: str | None = None, refresh: bool = False) -> dict[str, Any]:
    """Attach the audit report's figures and tables to this run as artifacts.

    Args:
        out: Also write index.html and the figures' PNG files to this folder on the worker.
        refresh: Recompute the rolled-up views (audit_token_usage, audit_verifier_accuracy) first;
            otherwise they count the rows committed before the last build run ended.
    """
    with RunContext() as run:
        engine = run.engine
    if refresh:
        refresh_rollups(engine)
    keys = publish_report_artifacts(engine)
    result: dict[str, Any] = {"artifacts": keys}
    if out:
        written = write_report(engine, Path(out))
        result["index"] = str(written.index)
        get_run_logger().info("audit report written to %s", written.index)
    return result
