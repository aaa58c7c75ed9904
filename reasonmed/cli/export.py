"""``reasonmed export``: write ReasonMed, CoTMed and ResponseMed as the next dataset version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from reasonmed.cli.app import PIPELINE, app
from reasonmed.cli.choices import Layout
from reasonmed.cli.common import console, engine_from_settings, err_console
from reasonmed.cli.outputs import check_out
from reasonmed.cli.ranges import in_range
from reasonmed.cli.safe_text import safe_text
from reasonmed.config import get_settings
from reasonmed.db import migrate
from reasonmed.export.assemble import BenchmarkLeakError
from reasonmed.export.hub import check_endpoint
from reasonmed.export.service import ExportOptions, NothingToExport, SimulatedOnly, export_dataset
from reasonmed.export.staging import ExportTargetError
from reasonmed.export.targets import parse_target
from reasonmed.extras import require
from reasonmed.mistake import Mistake
from reasonmed.redact import redact


def _formats(value: str) -> list[str]:
    formats = [f.strip().lower() for f in value.split(",") if f.strip()]
    bad = [f for f in formats if f not in ("parquet", "jsonl")]
    if bad or not formats:
        raise typer.BadParameter(f"{value!r}: expected a comma-separated list of parquet, jsonl")
    return list(dict.fromkeys(formats))


INSTRUCTION = Layout("instruction")


@app.command("export", rich_help_panel=PIPELINE)
def export(
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            "--to",
            help="folder, s3://bucket/prefix, or hf://datasets/OWNER/NAME: a Hugging Face Hub dataset repository "
            "(created private if missing; each version one commit and one folder v000N/; token from HF_TOKEN) "
            "(default REASONMED_EXPORT_DIR)",
        ),
    ] = None,
    formats: Annotated[
        str, typer.Option("--format", help="comma-separated: parquet, jsonl")
    ] = "parquet,jsonl",
    layout: Annotated[
        Layout, typer.Option("--layout", help="instruction (instruction/input/output) or chat (messages)")
    ] = INSTRUCTION,
    s3_endpoint_url: Annotated[
        str | None, typer.Option("--s3-endpoint-url", help="MinIO or another S3-compatible store")
    ] = None,
    hub_endpoint: Annotated[
        str | None,
        typer.Option(
            "--hub-endpoint",
            metavar="URL",
            help="hf:// only: the Hub's address (default HF_ENDPOINT, else https://huggingface.co)",
        ),
    ] = None,
    shard_rows: Annotated[
        int, typer.Option("--shard-rows", callback=in_range(1), help="rows per Parquet shard")
    ] = 250_000,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="overrides REASONMED_DATABASE_URL")
    ] = None,
    allow_simulated: Annotated[
        bool,
        typer.Option(
            "--allow-simulated",
            help="also export rows written by the simulator (sim/... models); the card and manifest then say simulated: true",
        ),
    ] = False,
) -> None:
    """Export every accepted path of every accepted question (never a benchmark-test item) as a new version.

    Writes Parquet in the Hugging Face folder layout and/or JSONL, a dataset card per dataset and a
    manifest.json with row counts and sha256 of every file. S3 credentials come from the usual AWS chain;
    the Hub's token from HF_TOKEN (or `hf auth login`), never stored. An interrupted Hub upload resumes when
    run again: files the Hub has are not sent twice, and a version that did land is not committed twice.
    """
    target = out or str(get_settings().export_dir)
    if "://" not in target:
        check_out(target)
    try:
        parse_target(target)  # an S3 prefix with a '..' segment, say: refused before the database is read
        if target.startswith("hf://"):
            require("huggingface_hub", "hub")  # the missing extra, said before the database is read
            hub_endpoint = check_endpoint(hub_endpoint)
        elif hub_endpoint:
            raise Mistake(f"--hub-endpoint applies to hf://datasets/OWNER/NAME targets only, not {target}")
    except ExportTargetError as exc:
        raise Mistake(f"--out {exc}") from None
    if "://" not in target and Path(target).exists() and not Path(target).is_dir():
        raise Mistake(
            f"--out {target} is an existing file; give a folder (new or existing): "
            "each export adds a version folder inside it"
        )
    url, engine = engine_from_settings(database_url)
    migrate.require_current(engine, url)
    settings = get_settings()
    try:
        options = ExportOptions.model_validate(
            dict(
                out=out or str(settings.export_dir),
                formats=_formats(formats),
                layout=str(layout),
                s3_endpoint_url=s3_endpoint_url or settings.s3_endpoint_url,
                shard_rows=shard_rows,
                allow_simulated=allow_simulated,
            )
        )
        result = export_dataset(engine, options, hub_endpoint=hub_endpoint)
    except NothingToExport as exc:
        raise Mistake(str(exc), exit_code=1) from None
    except (ValidationError, ExportTargetError, BenchmarkLeakError, SimulatedOnly) as exc:
        err_console.print(Text.assemble(("export failed:", "red"), " ", safe_text(redact(str(exc)))))
        raise typer.Exit(1) from None
    m = result.manifest
    table = Table(title=f"dataset version {result.version}", title_justify="left")
    table.add_column("dataset")
    table.add_column("rows", justify="right")
    for source in m["by_source"]:
        table.add_column(safe_text(source), justify="right")  # as the questions' files named it
    for name, n in result.counts.items():
        table.add_row(name, str(n), *(str(c) for c in m["by_source"].values()))
    console.print(table)
    c = m["contamination"]
    console.print(safe_text(f"contamination: {c['count']} question(s), {c['rows_excluded']} row(s) excluded"))
    if c.get("rows_deferred"):
        console.print(
            safe_text(
                f"held back: {c['rows_deferred']} row(s) of {len(c['deferred_question_ids'])} question(s) accepted "
                "after the contamination scan began; the next export checks and includes them"
            )
        )
    if m.get("simulated"):
        console.print(
            safe_text(
                f"SIMULATED: {m['simulated_rows']} row(s) were written by the simulator (card and manifest say so)"
            ),
        )
    elif m.get("simulated_rows_left_out"):
        console.print(
            safe_text(
                f"left out: {m['simulated_rows_left_out']} row(s) of simulated models (--allow-simulated exports them)"
            ),
        )
    console.print(safe_text(f"written to {result.location}\nmanifest: {result.manifest_path}"))
