"""``reasonmed ingest``: load question files into the database, with a summary of what happened."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from reasonmed.cli.app import PIPELINE, app
from reasonmed.cli.choices import FileFormat
from reasonmed.cli.common import console, engine_from_settings, err_console
from reasonmed.cli.errors import Mistake
from reasonmed.cli.ranges import in_range
from reasonmed.cli.safe_text import safe_text
from reasonmed.config import get_settings
from reasonmed.db import migrate
from reasonmed.extras import require
from reasonmed.ingest.hf_datasets import hub_dataset, is_datasets_folder
from reasonmed.ingest.loaders import FORMATS, CopBase, FileFormatError, parse_mapping
from reasonmed.ingest.service import IngestSummary, ingest_file, load_id_list
from reasonmed.ingest.sniff import guess_format

_SOURCE_HELP = (
    "File format: medqa (JSONL), medmcqa (JSON lines), pubmedqa (PQA-L JSON object), mmlu (header-less CSV), "
    "or the generic jsonl, csv, parquet, datasets (columns named by --map); datasets: a Hugging Face datasets "
    "folder (save_to_disk) or hf://datasets/OWNER/NAME[@REVISION] (online), --split choosing the split."
)
_MAP_HELP = (
    "Generic formats: FIELD=COLUMN, repeatable. Fields: id, question, context, answer, options (one column "
    "holding an object or a list), or option:A=COLUMN per option. Unmapped fields use a column of the same name."
)


def _shown(file: str) -> str:
    """How the tables name a source: a file by its name, a Hub dataset by its hf:// address."""
    return file if file.startswith("hf://") else Path(file).name


def _fail(message: str) -> Mistake:
    return Mistake(message)


def _all_rejected(s: IngestSummary, source: str) -> Mistake | None:
    """Every record rejected almost always means the wrong --format: say which one the file looks like."""
    if s.already_ingested or not s.read or not (s.no_valid_records or s.rejected >= s.read):
        return None
    guess = guess_format(Path(s.file), besides=source)
    hint = (
        f"it looks like {guess}: run again with --format {guess}"
        if guess
        else s.suggestion or "check --format (and --map for the generic formats)"
    )
    return Mistake(
        f"{_shown(s.file)}: all {s.read:,} records were rejected as --format {source}; {hint}", exit_code=1
    )


def _parse_map(items: list[str] | None) -> dict[str, str] | None:
    if not items:
        return None
    mapping: dict[str, str] = {}
    for item in items:
        field, sep, column = item.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise _fail(f"--map {item!r}: expected FIELD=COLUMN, e.g. --map question=stem")
        mapping[field.strip()] = column.strip()
    try:
        parse_mapping(mapping)
    except FileFormatError as exc:
        raise _fail(f"--map: {exc}") from None
    return mapping


def _parse_cop_base(value: str) -> CopBase:
    if value == "auto":
        return "auto"
    if value in ("0", "1"):
        return 0 if value == "0" else 1
    raise _fail(f"--cop-base {value!r}: expected auto, 0 or 1")


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
            safe_text(_shown(s.file)),
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
    name = _shown(s.file)
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


def _check_sources(files: list[Path], source: str) -> None:
    """Every FILE is there and fits --format (a datasets folder or Hub id only with --format datasets)."""
    if source == "datasets":
        require("datasets", "hub")
    for f in files:
        try:
            hub = hub_dataset(str(f))
        except FileFormatError as exc:
            raise _fail(str(exc)) from None
        if hub is not None:
            if source != "datasets":
                raise _fail(f"{hub.label} is a Hub dataset: ingest it with --format datasets (and --split)")
            continue
        if is_datasets_folder(f):
            if source != "datasets":
                raise _fail(f"{f} is a datasets folder (save_to_disk): ingest it with --format datasets")
            continue
        if source == "datasets":
            raise _fail(
                f"{f}: not a datasets folder (save_to_disk writes state.json and dataset_info.json, or "
                "dataset_dict.json) nor hf://datasets/OWNER/NAME"
                if f.exists()
                else f"not found: {f}"
            )
        if not f.is_file():
            raise _fail(f"file not found: {f}")


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
    source: Annotated[
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
    source = str(source)  # the enum's value (also called with a plain string by `reasonmed run`)
    if source not in FORMATS:
        raise _fail(f"unknown --format {source!r} (choose one of: {', '.join(FORMATS)})")
    cop = _parse_cop_base(cop_base)
    mapping = _parse_map(map_)
    if answer_index_base not in (None, 0, 1):
        raise _fail("--answer-index-base must be 0 or 1")
    _check_sources(files, source)
    test_ids: set[str] | None = None
    if benchmark_test_ids is not None:
        try:
            test_ids = load_id_list(benchmark_test_ids)
        except (FileNotFoundError, FileFormatError, UnicodeDecodeError) as exc:
            raise _fail(f"--benchmark-test-ids: {exc}") from None
    url, engine = engine_from_settings(database_url)
    migrate.require_current(engine, url)

    limits = get_settings().ingest_limits
    summaries: list[IngestSummary] = []
    failed = False
    for f in files:
        with Progress(
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

            try:
                summaries.append(
                    ingest_file(
                        engine,
                        f,
                        source,
                        split=split,
                        benchmark_test_ids=test_ids,
                        mapping=mapping,
                        cop_base=cop,
                        answer_index_base=answer_index_base,
                        batch_size=batch_size,
                        progress=progress,
                        limits=limits,
                    )
                )
            except FileFormatError as exc:
                failed = True
                err_console.print(
                    Text.assemble(("error:", "red"), " ", safe_text(f"{f}: {exc}")), soft_wrap=True
                )
    if summaries:
        console.print(_summary_table(summaries))
        for s in summaries:
            _report(s)
    for s in summaries:
        wrong = _all_rejected(s, source)
        if wrong is not None:
            raise wrong
    failed = failed or any(s.status == "failed" or s.no_valid_records for s in summaries)
    if failed:
        raise typer.Exit(1)
