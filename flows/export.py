"""Prefect flow: export ReasonMed, CoTMed and ResponseMed as the next dataset version.

The run gets keyed artifacts (row counts, the manifest's essentials) so each export's history shows in
the UI; the data itself never leaves the target the user named.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from reasonmed.export.assemble import Layout
from reasonmed.export.service import ExportOptions, ExportResult, Format
from reasonmed.flows import run_names
from reasonmed.flows.report import publish_report_artifacts
from reasonmed.flows.run import RunContext
from reasonmed.redact import redact
from reasonmed.tasks.export import export_task


@flow(name="export-dataset", flow_run_name=run_names.export_name, persist_result=False)
def export_dataset(
    out: str | None = None,
    formats: list[Format] = ["parquet", "jsonl"],  # noqa: B006 (never mutated; Prefect shows the default)
    layout: Layout = "instruction",
    s3_endpoint_url: str | None = None,
    shard_rows: int | None = None,
    with_report: bool = True,
    allow_simulated: bool = False,
) -> dict[str, Any]:
    """Export ReasonMed, CoTMed and ResponseMed as the next dataset version.

    Args:
        out: Folder on the worker or s3://bucket/prefix; empty means REASONMED_EXPORT_DIR.
        formats: File formats written.
        layout: Row layout: instruction (question / answer columns) or chat (messages).
        s3_endpoint_url: S3-compatible endpoint (MinIO, ...); empty means REASONMED_S3_ENDPOINT_URL or AWS.
        shard_rows: Rows per file; empty means the exporter's default.
        with_report: Also attach the audit report's figures and tables to this run.
        allow_simulated: Also export rows of simulated models (sim/...), flagged in card and manifest.
    """
    with RunContext() as run:  # no run row: the dataset version it writes is the export's record
        settings = run.settings
        options = ExportOptions(
            out=out or str(settings.export_dir),
            formats=formats,
            layout=layout,
            s3_endpoint_url=s3_endpoint_url or settings.s3_endpoint_url,
            prefect_flow_run_id=run.flow_run_id,
            allow_simulated=allow_simulated,
            **({"shard_rows": shard_rows} if shard_rows else {}),
        )
        result = export_task(settings.database_url, options)
    _publish_artifacts(result)
    logger = get_run_logger()
    if with_report:
        try:
            publish_report_artifacts(run.engine)
        except Exception as exc:  # the export is already committed; a report failure must not hide that
            logger.warning("audit report artifacts not attached: %s", redact(str(exc)))
    logger.info("dataset version %s written to %s: %s", result.version, result.location, result.counts)
    return {
        "version": result.version,
        "location": result.location,
        "counts": result.counts,
        "manifest_path": result.manifest_path,
        "by_source": result.manifest["by_source"],
        "contamination": result.manifest["contamination"],
    }


def _publish_artifacts(result: ExportResult) -> None:
    m = result.manifest
    create_table_artifact(
        key="dataset-export-counts",
        table=[
            {"dataset": name, "rows": n, **{f"source:{s}": c for s, c in m["by_source"].items()}}
            for name, n in result.counts.items()
        ],
        description=f"dataset version {result.version}: rows per dataset and source",
    )
    contamination = m["contamination"]
    files = "\n".join(f"| `{f['path']}` | {f['bytes']} | `{f['sha256'][:16]}…` |" for f in m["files"])
    create_markdown_artifact(
        key="dataset-export-manifest",
        markdown=(
            f"# Dataset version {result.version}\n\n"
            f"- location: `{result.location}`\n- layout: `{m['layout']}`, formats: {', '.join(m['formats'])}\n"
            f"- questions: {m['questions']}, rows per dataset: {next(iter(result.counts.values()), 0)}\n"
            f"- runs covered: {', '.join(map(str, m['run_ids'])) or 'none'}\n"
            f"- contamination: {contamination['count']} question(s) excluded "
            f"({contamination['rows_excluded']} rows): {contamination['question_ids']}\n"
            f"- held back for the next version (accepted after the contamination scan): "
            f"{contamination.get('rows_deferred', 0)} rows\n\n"
            f"| file | bytes | sha256 |\n|---|---|---|\n{files}\n"
        ),
        description=f"manifest of dataset version {result.version}",
    )
