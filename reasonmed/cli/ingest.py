"""``reasonmed ingest``: load question files into the database, with a summary of what happened."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Progress_
from rich.table import Table
from rich.text import Text

from reasonmed.cli.app import PIPELINE, app
from reasonmed.cli.choices import FileFormat
from reasonmed.cli.common import console, engine_from_settings, err_console
from reasonmed.cli.ranges import in_range
from reasonmed.cli.safe_text import safe_text
from reasonmed.ingest.service import IngestSummary, Progress
from reasonmed.jobs.ingest import IngestJob, ingest_files, parse_cop_base, parse_map, shown

_SOURCE_HELP = (
    "File format: medqa (JSONL), medmcqa (JSON lines), pubmedqa (PQA-L JSON object), mmlu (header-less CSV), "
    "or the generic jsonl, csv, parquet, datasets (columns named by --map); datasets: a Hugging Face datasets "
    "folder (save_to_disk) or hf://datasets/OWNER/NAME[@REVISION] (online), --split choosing the split."
)
_MAP_HELP = (
    "Generic formats: FIELD=COLUMN, repeatable. Fields: id, question, context, answer, options (one column "
    "holding an object or a list), or option:A=COLUMN per option. Unmapped fields use a column of the same name."
)


def _summary_table(summaries: list[IngestSummary]) -> Table:
    table = Table(title="ingest summary", title_justify="left")
    table.add_column("file", overflow="fold")
    for name in ("read", "inserted", "duplicates", "rejected", "benchmark test"):
        table.add_column(name, justify="right")
    table.add_column("status")
    for s in summaries:
        status = (
            "already ingested"
            if s.already_ingested
            else "FAILED"
            if s.status == "failed"
            else "NO VALID RECORD"
            if s.no_valid_records
            else "read again (new options)"
            if s.reread
            else "done"
        )
        table.add_row(
            safe_text(shown(s.file)),
            f"{s.read:,}",
            f"{s.inserted:,}",
            f"{s.duplicates:,}",
            f"{s.rejected:,}",
            f"{s.benchmark_test:,}",
            status,
        )
    return table


def _report(s: IngestSummary) -> None:
    """Every line names the file or quotes its records: all of it is printed as data (``safe_text``)."""
    name = shown(s.file)
    if s.already_ingested:
        console.print(safe_text(f"{name}: already ingested (sha256 {s.sha256[:12]}…), nothing added"))
    if s.reread:
        console.print(
            safe_text(
                f"{name}: ingested before with other options (--format, --map, --cop-base or --answer-index-base); "
                "read again, known questions count as duplicates and its bad records were judged afresh"
            )
        )
    if s.newly_marked:
        console.print(
            safe_text(f"{name}: {s.newly_marked:,} stored question(s) now flagged as benchmark test")
        )
    for warning in s.warnings:
        console.print(Text.assemble(("warning:", "yellow"), " ", safe_text(warning)))
    if s.status == "failed":
        err_console.print(
            Text.assemble(
                ("error:", "red"),
                " ",
                safe_text(
                    f"{name}: {s.error}; the records before it are stored and the next "
                    "ingest of the file reads it again"
                ),
            ),
            soft_wrap=True,
        )
    if s.rejected_by_reason:
        console.print(safe_text(f"{name}: rejected records by reason (details in table ingest_errors):"))
        for kind, n in s.rejected_by_reason.items():
            console.print(safe_text(f"  {n:>8,}  {kind}"))


@app.command("ingest", rich_help_panel=PIPELINE)
def ingest(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Question files to ingest; with --format datasets, datasets folders (save_to_disk) or "
            "hf://datasets/OWNER/NAME[@REVISION].",
            show_default=False,
            metavar="FILE",
        ),
    ],
    file_format: Annotated[
        FileFormat,
        typer.Option(
            "--format", "--source", "-s", help=_SOURCE_HELP + " --source is the old name.", show_default=False
        ),
    ],
    split: Annotated[
        str,
        typer.Option(
            metavar="SPLIT",
            help="Split recorded for the questions; 'test' marks them all as benchmark test. "
            "MMLU takes the split from names like anatomy_dev.csv. --format datasets: also the split read "
            "(of a Hub dataset, or of a DatasetDict folder).",
        ),
    ] = "train",
    benchmark_test_ids: Annotated[
        Path | None,
        typer.Option(
            "--benchmark-test-ids",
            metavar="FILE",
            help="File of benchmark test ids (JSON object keys, JSON list, or one id per line): matching "
            "questions are flagged and never used for training, including ones stored earlier.",
        ),
    ] = None,
    map_: Annotated[list[str] | None, typer.Option("--map", help=_MAP_HELP, metavar="FIELD=COLUMN")] = None,
    cop_base: Annotated[
        str,
        typer.Option(
            metavar="auto|0|1",
            help="MedMCQA: whether cop counts from 0 or 1; auto decides from the file (0 seen: 0, 4 seen: 1).",
        ),
    ] = "auto",
    answer_index_base: Annotated[
        int | None,
        typer.Option(
            metavar="0|1",
            callback=in_range(0, 1),
            help="Generic formats: the answer column is a 0- or 1-based option index.",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(callback=in_range(1, 50_000), help="Rows per database transaction.")
    ] = 2000,
    database_url: Annotated[
        str | None, typer.Option("--database-url", metavar="URL", help="Overrides REASONMED_DATABASE_URL.")
    ] = None,
) -> None:
    """Ingest question files. Re-running is safe: a file already ingested with the same --format, --map and
    bases is skipped (with other ones it is read again), known questions are
    counted as duplicates, and bad records are kept in table ingest_errors with the reason.

    --format datasets reads a Hugging Face datasets folder (Dataset.save_to_disk, or DatasetDict.save_to_disk
    with --split naming the split) or, online, hf://datasets/OWNER/NAME[@REVISION] with --split."""
    job = IngestJob(
        files=files,
        file_format=str(file_format),  # the enum's value (`reasonmed run` passes a plain string)
        split=split,
        benchmark_test_ids=benchmark_test_ids,
        mapping=parse_map(map_),
        cop_base=parse_cop_base(cop_base),
        answer_index_base=answer_index_base,
        batch_size=batch_size,
    )
    url, engine = engine_from_settings(database_url)
    result = ingest_files(engine, url, job, _progress_bar)
    for line in result.file_errors:
        err_console.print(Text.assemble(("error:", "red"), " ", safe_text(line)), soft_wrap=True)
    if result.summaries:
        console.print(_summary_table(result.summaries))
        for s in result.summaries:
            _report(s)
    wrong = result.wrong_format()
    if wrong is not None:
        raise wrong
    if result.failed:
        raise typer.Exit(1)


@contextmanager
def _progress_bar(f: Path) -> Iterator[Progress]:
    """A transient bar for one file (records read, rate), shown only on a terminal."""
    with Progress_(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(safe_text(f.name).plain, total=None, rate="")

        def progress(done: int, total: int | None, task: TaskID = task) -> None:
            elapsed = bar.tasks[task].elapsed or 0.0
            rate = f"{done / elapsed:,.0f} records/s" if elapsed > 0 else ""
            bar.update(task, completed=done, total=max(total, done) if total else None, rate=rate)

        yield progress
