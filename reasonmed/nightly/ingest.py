"""The night's ingestion: every matching input file through the ingest task, one outcome per file.

Files already ingested (same sha256) are skipped by the ingestion service itself. A file that cannot be
read as the night's format is reported and skipped: one bad upload must not cost the night's generation.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reasonmed.best_effort import Log
from reasonmed.ingest.loaders import FileFormatError, Limits
from reasonmed.ingest.service import IngestSummary, load_id_list
from reasonmed.nightly import inputs
from reasonmed.nightly.inputs import InputFile
from reasonmed.redact import redact


@dataclass(frozen=True)
class NightInput:
    """Where the night's question files are and how they are ingested."""

    location: str  # a folder or file on the worker, or s3://bucket/prefix
    source: str
    pattern: str | None
    split: str
    benchmark_test_ids: str | None
    database_url: str
    endpoint_url: str | None
    limits: Limits


IngestOne = Callable[[str, NightInput, set[str] | None], IngestSummary]
"""Ingests one local file (its path, the night's input, the benchmark test ids): the flow's ingest task.
Called in a thread."""


@dataclass(frozen=True)
class FileOutcome:
    """What became of one input file: "new", "already ingested", or "error: why"."""

    file: str  # where it lives: a path, or s3://bucket/key
    status: str
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    sha256: str | None = None  # of a file that was read

    @classmethod
    def refused(cls, file: str, why: str) -> FileOutcome:
        return cls(file, f"error: {why}")

    @classmethod
    def of(cls, file: str, s: IngestSummary) -> FileOutcome:
        status = "already ingested" if s.already_ingested else "new"
        if s.status == "failed":
            status = f"error: {s.error}"
        elif s.no_valid_records:
            status = "error: no valid record" + (f" ({s.suggestion})" if s.suggestion else "")
        return cls(file, status, s.inserted, s.duplicates, s.rejected, s.sha256)

    @property
    def failed(self) -> bool:
        return self.status.startswith("error")

    def as_row(self) -> dict[str, Any]:
        """The growth report's row (``sha256`` only for a file that was read)."""
        row = asdict(self)
        if self.sha256 is None:
            del row["sha256"]
        return row


async def ingest_new(night: NightInput, ingest_one: IngestOne, log: Log) -> list[dict[str, Any]]:
    """Every matching file goes to ``ingest_one``; S3 objects are staged in a folder gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="reasonmed-nightly-") as staging:
        return await _ingest_files(night, Path(staging), ingest_one, log)


async def _ingest_files(
    night: NightInput, staging_dir: Path, ingest_one: IngestOne, log: Log
) -> list[dict[str, Any]]:
    test_ids: set[str] | None = None
    exclude: list[str] = []
    if night.benchmark_test_ids:
        exclude.append(night.benchmark_test_ids)
        local_ids = await asyncio.to_thread(
            inputs.fetch, night.benchmark_test_ids, staging_dir=staging_dir, endpoint_url=night.endpoint_url
        )
        test_ids = load_id_list(local_ids)
    skipped: list[tuple[str, str]] = []
    pattern = inputs.pattern_for(night.source, night.pattern)
    files = await asyncio.to_thread(
        inputs.list_inputs,
        night.location,
        pattern=pattern,
        staging_dir=staging_dir,
        exclude=exclude,
        endpoint_url=night.endpoint_url,
        on_skip=lambda uri, why: skipped.append((uri, why)),
    )
    log.info("%s: %s input file(s) matching %s", night.location, len(files), pattern)
    outcomes = [FileOutcome.refused(uri, why) for uri, why in skipped]
    for uri, why in skipped:
        log.warning("%s: not ingested: %s", uri, why)
    for f in files:
        outcomes.append(await _ingest(f, night, test_ids, ingest_one, log))
    return [o.as_row() for o in outcomes]


async def _ingest(
    f: InputFile, night: NightInput, test_ids: set[str] | None, ingest_one: IngestOne, log: Log
) -> FileOutcome:
    try:
        summary = await asyncio.to_thread(ingest_one, str(f.local), night, test_ids)
    except Exception as exc:  # whatever one file does, the night goes on to build and export
        why = redact(
            str(exc)
            if isinstance(exc, FileFormatError | FileNotFoundError)
            else f"{type(exc).__name__}: {exc}"
        )
        log.warning("%s: not ingested: %s", f.uri, why)
        return FileOutcome.refused(f.uri, why)
    outcome = FileOutcome.of(f.uri, summary)
    if outcome.failed:
        log.warning("%s: %s", f.uri, outcome.status)
    return outcome
