"""Export the three datasets from the database as a new numbered version, with its manifest.

One streaming pass over the accepted rows feeds every writer (three datasets x each format) batch by
batch, so memory stays flat: a reader thread fetches ahead, the main thread builds Arrow tables, and one
writer thread per dataset compresses and writes. The version's database record (``record.py``) commits
only after the files are published, so a failed export leaves no version behind, and a benchmark-test
row anywhere in the stream stops the export before anything is published.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, Field
from sqlalchemy import Engine

from reasonmed.db import export_repo, runs_repo
from reasonmed.export.assemble import (
    DATASETS,
    Layout,
    SourceRow,
    build_tables,
    check_no_benchmark,
    drop_excluded,
    schema,
)
from reasonmed.export.card import LICENSE_FILE, render_card, render_hub_card, render_license
from reasonmed.export.manifest import (
    ContaminationReport,
    DatasetEntry,
    Manifest,
    combined_config_hash,
    file_entries,
)
from reasonmed.export.record import VersionRecord
from reasonmed.export.staging import MANIFEST
from reasonmed.export.streaming import prefetch
from reasonmed.export.targets import parse_target
from reasonmed.export.writers import PARQUET_OPTIONS, JsonLines, ParquetShards
from reasonmed.simulated import is_simulated_model

Format = Literal["parquet", "jsonl"]
FORMATS: tuple[Format, ...] = ("parquet", "jsonl")
# Either question id -> reason (every other question counts as checked), or a ``ContaminationScan``.
ContaminationCheck = Callable[[Engine], Any]


class ExportOptions(BaseModel):
    out: str = Field(description="local folder, s3://bucket/prefix or hf://datasets/OWNER/NAME")
    formats: list[Format] = Field(default_factory=lambda: list(FORMATS), min_length=1)
    layout: Layout = "instruction"
    batch_rows: int = Field(default=5_000, ge=1, description="rows per database fetch and Parquet row group")
    shard_rows: int = Field(default=250_000, ge=1, description="rows per Parquet shard file")
    s3_endpoint_url: str | None = None
    multipart_threshold: int = Field(default=64 * 1024 * 1024, ge=1)
    multipart_chunksize: int = Field(default=64 * 1024 * 1024, ge=5 * 1024 * 1024)
    prefect_flow_run_id: str | None = None
    allow_simulated: bool = Field(
        default=False,
        description="also export rows of simulated models (sim/...); the card and manifest then say so",
    )


class SimulatedOnly(ValueError):
    """Every exportable row came from simulated models and the export was not told to allow them."""


class NothingToExport(ValueError):
    """No row would be written: a version of empty files would only hide that (nothing is written)."""


class ExportResult(BaseModel):
    version: int
    location: str
    counts: dict[str, int]
    manifest_path: str
    manifest: dict[str, Any]


def default_contamination_check(engine: Engine) -> Any:
    """Exact and near-duplicate copies of benchmark-test items, among the questions an export can hold."""
    from reasonmed.contamination import scan_database

    return scan_database(engine, only_accepted=True)


def _guard_result(found: Any) -> tuple[dict[int, str], frozenset[int] | None]:
    """(flagged, checked) from a check's answer; a plain mapping means every question was checked."""
    if isinstance(found, Mapping):
        return dict(found), None
    return dict(found.flagged), found.checked


class _Tally:
    """Counts, sources and runs of the rows written, gathered while streaming."""

    def __init__(self) -> None:
        self.rows = 0
        self.by_source: Counter[str] = Counter()
        self.run_ids: set[int] = set()
        self.path_ids: list[int] = []  # for the card's provenance
        self.questions = 0
        self._last_q: int | None = None
        self.dropped_rows = 0
        self.dropped_questions: set[int] = set()
        self.deferred_rows = 0
        self.deferred_questions: set[int] = set()
        self.simulated_rows = 0

    def defer(self, rows: list[SourceRow]) -> None:
        self.deferred_rows += len(rows)
        self.deferred_questions.update(r.question_id for r in rows)

    def add(self, rows: list[SourceRow], dropped: list[SourceRow]) -> None:
        for r in rows:
            self.rows += 1
            self.simulated_rows += is_simulated_model(r.model)
            self.by_source[r.source] += 1
            self.path_ids.append(r.path_id)
            if r.run_id is not None:
                self.run_ids.add(r.run_id)
            if r.question_id != self._last_q:
                self.questions += 1
                self._last_q = r.question_id
        self.dropped_rows += len(dropped)
        self.dropped_questions.update(r.question_id for r in dropped)


def export_dataset(
    engine: Engine,
    options: ExportOptions,
    *,
    contamination: ContaminationCheck | None = None,
    hub_endpoint: str | None = None,
) -> ExportResult:
    """Write the next dataset version to ``options.out`` and record it; returns what was written.

    ``hub_endpoint``: the Hugging Face Hub an ``hf://datasets/...`` export goes to (default HF_ENDPOINT, else
    huggingface.co); like a credential it is not an export option, so it is not stored with the run."""
    created_at = datetime.now(UTC)
    run_id = runs_repo.create_run(
        engine,
        kind="export",
        config_hash=None,
        config_snapshot=None,
        parameters=options.model_dump(mode="json"),
        prefect_flow_run_id=options.prefect_flow_run_id,
    )
    try:
        result = _export(
            engine, options, created_at, run_id, contamination or default_contamination_check, hub_endpoint
        )
    except BaseException as exc:
        runs_repo.finish_run(engine, run_id, status="failed", stats={}, error=f"{type(exc).__name__}: {exc}")
        raise
    runs_repo.finish_run(
        engine, run_id, status="completed", stats={"version": result.version, "counts": result.counts}
    )
    return result


def _export(
    engine: Engine,
    options: ExportOptions,
    created_at: datetime,
    run_id: int,
    contamination: ContaminationCheck,
    hub_endpoint: str | None = None,
) -> ExportResult:
    target = parse_target(
        options.out,
        s3_endpoint_url=options.s3_endpoint_url,
        multipart_threshold=options.multipart_threshold,
        multipart_chunksize=options.multipart_chunksize,
        hub_endpoint=hub_endpoint,
    )
    simulated_rows, real_rows = export_repo.count_simulated_rows(engine)
    if not simulated_rows and not real_rows:
        raise NothingToExport(
            "no accepted path in this database: nothing to export (run `reasonmed run` first; "
            "`reasonmed audit` shows where the questions stand)"
        )
    if simulated_rows and not real_rows and not options.allow_simulated:
        raise SimulatedOnly(
            f"all {simulated_rows} accepted rows come from SIMULATED models (sim/...), not real ones: nothing to "
            "export; pass --allow-simulated to export them anyway (the card and manifest will say simulated: true)"
        )
    benchmark_ids = frozenset(export_repo.benchmark_test_ids(engine))
    flagged, checked = _guard_result(contamination(engine))
    staging = target.staging()
    published: str | None = None
    version_dir = ""
    try:
        with VersionRecord(engine, run_id=run_id, created_at=created_at) as record:
            tally = _Tally()
            data_files, digests = _write_files(
                engine, options, staging, record, tally, benchmark_ids, flagged, checked
            )
            if not tally.rows:
                raise NothingToExport(
                    f"every accepted row was left out ({tally.dropped_rows} as benchmark contamination, "
                    f"{tally.deferred_rows} held back for the next contamination scan): nothing to export"
                )
            version = record.reserve()
            version_dir = f"v{version:04d}"
            location = target.location(version_dir)
            hashes = export_repo.run_config_hashes(engine, tally.run_ids)
            provenance = export_repo.card_provenance(engine, tally.path_ids, tally.run_ids)
            cards = _write_cards(
                staging,
                options,
                version,
                tally,
                data_files,
                provenance,
                sorted({h for h in hashes.values() if h}),
            )
            manifest = _manifest(
                version=version,
                location=location,
                options=options,
                staging=staging,
                tally=tally,
                data_files=data_files,
                digests=digests,
                cards=cards,
                hashes=hashes,
                flagged=flagged,
                benchmark_ids=benchmark_ids,
                created_at=created_at,
                run_id=run_id,
                simulated_left_out=0 if options.allow_simulated else simulated_rows,
            )
            payload = manifest.model_dump(mode="json")
            (staging / MANIFEST).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
            record.finish(
                location=location, manifest=payload, config_hash=combined_config_hash(manifest.config_hashes)
            )
            # Published last, inside the transaction: the version commits only once its files are out.
            published = target.publish(staging, version_dir)
    except BaseException:
        target.discard(staging)
        if published is not None:  # the commit failed after publication: take the files back
            target.unpublish(version_dir)
        raise
    return ExportResult(
        version=version,
        location=published,
        counts=dict(manifest.counts),
        manifest_path=f"{published.rstrip('/')}/{MANIFEST}",
        manifest=payload,
    )


def _write_files(
    engine: Engine,
    options: ExportOptions,
    staging: Path,
    record: VersionRecord,
    tally: _Tally,
    benchmark_ids: frozenset[int],
    flagged: dict[int, str],
    checked: frozenset[int] | None,
) -> tuple[dict[str, list[Path]], dict[Path, str]]:
    """The streaming pass: every eligible row, checked, into every writer and the version record.
    Returns each dataset's files, and the digests of those hashed while written.

    A row of a question the contamination scan never saw (accepted by another worker after the scan
    began) is held back: it goes into the next version, once a scan has checked it.
    """
    writers = _open_writers(staging, options)
    with ThreadPoolExecutor(max_workers=len(DATASETS), thread_name_prefix="export-writer") as pool:
        pending: list[Future[None]] = []
        try:
            batches = export_repo.stream_accepted_rows(
                engine,
                batch_rows=options.batch_rows,
                include_simulated=options.allow_simulated,
            )
            for batch in prefetch(batches):
                rows = [SourceRow._make(r) for r in batch]
                check_no_benchmark(rows, benchmark_ids)
                kept, dropped = drop_excluded(rows, flagged)
                if checked is not None:
                    tally.defer([r for r in kept if r.question_id not in checked])
                    kept = [r for r in kept if r.question_id in checked]
                tally.add(kept, dropped)
                if not kept:
                    continue
                tables = build_tables(kept, options.layout)  # overlaps the previous batch's writes
                _wait(pending)
                pending = [pool.submit(_write, writers[name], table) for name, table in tables.items()]
                record.add(kept)
            _wait(pending)
        finally:
            wait(pending)  # never leave a writer running; its error, if any, surfaced above
    files = {name: [p for w in ws for p in w.close()] for name, ws in writers.items()}
    digests = {w.path: w.sha256 for ws in writers.values() for w in ws if isinstance(w, JsonLines)}
    return files, digests


def _write(writers: list[ParquetShards | JsonLines], table: pa.Table) -> None:
    for w in writers:
        w.write(table)


def _wait(futures: list[Future[None]]) -> None:
    for f in futures:
        f.result()  # re-raises a writer's error here


def _open_writers(staging: Path, options: ExportOptions) -> dict[str, list[ParquetShards | JsonLines]]:
    sch: pa.Schema = schema(options.layout)
    writers: dict[str, list[ParquetShards | JsonLines]] = {}
    for name in DATASETS:
        ws: list[ParquetShards | JsonLines] = []
        if "parquet" in options.formats:
            ws.append(
                ParquetShards(
                    staging / name / "data",
                    sch,
                    shard_rows=options.shard_rows,
                    row_group_rows=options.batch_rows,
                )
            )
        if "jsonl" in options.formats:
            ws.append(JsonLines(staging / name / f"{name}.jsonl"))
        writers[name] = ws
    return writers


def _write_cards(
    staging: Path,
    options: ExportOptions,
    version: int,
    tally: _Tally,
    data_files: dict[str, list[Path]],
    provenance: dict[str, Any],
    config_hashes: list[str],
) -> list[Path]:
    """A card per dataset folder, and the root card that makes the version one Hub repository of three
    configs; beside each card, the terms its ``license_link`` names."""
    cards = []
    terms = render_license(tally.by_source, provenance)
    for folder in (staging, *(staging / name for name in DATASETS)):
        (folder / LICENSE_FILE).write_text(terms)
        cards.append(folder / LICENSE_FILE)
    for name in DATASETS:
        card = staging / name / "README.md"
        card.write_text(
            render_card(
                name,
                version=version,
                rows=tally.rows,
                by_source=dict(tally.by_source),
                layout=options.layout,
                formats=list(options.formats),
                files=[p.relative_to(staging / name).as_posix() for p in data_files[name]],
                simulated_rows=tally.simulated_rows,
                provenance=provenance,
                config_hashes=config_hashes,
            )
        )
        cards.append(card)
    root = staging / "README.md"
    root.write_text(
        render_hub_card(
            version=version,
            rows=tally.rows,
            by_source=dict(tally.by_source),
            layout=options.layout,
            formats=list(options.formats),
            provenance=provenance,
            config_hashes=config_hashes,
        )
    )
    cards.append(root)
    return cards


def _manifest(
    *,
    version: int,
    location: str,
    options: ExportOptions,
    staging: Path,
    tally: _Tally,
    data_files: dict[str, list[Path]],
    digests: dict[Path, str],
    cards: list[Path],
    hashes: dict[int, str | None],
    flagged: dict[int, str],
    benchmark_ids: frozenset[int],
    created_at: datetime,
    run_id: int,
    simulated_left_out: int,
) -> Manifest:
    by_source = dict(sorted(tally.by_source.items()))
    excluded = sorted(tally.dropped_questions)
    return Manifest(
        version=version,
        created_at=created_at.isoformat(),
        location=location,
        layout=options.layout,
        formats=list(options.formats),
        counts={name: tally.rows for name in DATASETS},
        by_source=by_source,
        questions=tally.questions,
        datasets={
            name: DatasetEntry(
                rows=tally.rows,
                by_source=by_source,
                files=[p.relative_to(staging).as_posix() for p in data_files[name]],
            )
            for name in DATASETS
        },
        files=file_entries(staging, [p for ps in data_files.values() for p in ps] + cards, digests),
        run_ids=sorted(tally.run_ids),
        config_hashes=sorted({h for h in hashes.values() if h}),
        config_hash_by_run={str(k): v for k, v in sorted(hashes.items())},
        contamination=ContaminationReport(
            checked=True,
            flagged=len(flagged),
            count=len(excluded),
            rows_excluded=tally.dropped_rows,
            question_ids=excluded,
            matches={str(q): flagged[q] for q in excluded},
            rows_deferred=tally.deferred_rows,
            deferred_question_ids=sorted(tally.deferred_questions),
        ),
        benchmark_test_questions_in_db=len(benchmark_ids),
        export_run_id=run_id,
        simulated=tally.simulated_rows > 0,
        simulated_rows=tally.simulated_rows,
        simulated_rows_left_out=simulated_left_out,
        writer={
            "pyarrow": pa.__version__,
            "parquet": PARQUET_OPTIONS,
            "batch_rows": options.batch_rows,
            "shard_rows": options.shard_rows,
            "order": "question_id, accepted rank",
        },
    )
