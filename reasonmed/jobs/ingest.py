"""Ingest question files: the checks made before anything is read, and one ``ingest_file`` per file.

``reasonmed ingest``, ``reasonmed run FILE`` and ``reasonmed.build(questions=...)`` all call ``ingest_files``;
they differ only in how they show progress and results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from reasonmed.config import get_settings
from reasonmed.db import migrate
from reasonmed.extras import require
from reasonmed.ingest.hf_datasets import hub_dataset, is_datasets_folder
from reasonmed.ingest.loaders import FORMATS, CopBase, FileFormatError, parse_mapping
from reasonmed.ingest.service import IngestSummary, Progress, ingest_file, load_id_list
from reasonmed.ingest.sniff import guess_format
from reasonmed.mistake import Mistake


@dataclass(frozen=True)
class IngestJob:
    files: Sequence[Path]
    file_format: str
    split: str = "train"
    benchmark_test_ids: Path | None = None
    mapping: dict[str, str] | None = None
    cop_base: CopBase = "auto"
    answer_index_base: int | None = None
    batch_size: int = 2000


@dataclass
class IngestResult:
    file_format: str
    summaries: list[IngestSummary] = field(default_factory=list)
    file_errors: list[str] = field(default_factory=list)  # "FILE: why": a file that could not be read at all

    @property
    def failed(self) -> bool:
        """A file unreadable, failed midway, or without one valid record."""
        return bool(self.file_errors) or any(
            s.status == "failed" or s.no_valid_records for s in self.summaries
        )

    def wrong_format(self) -> Mistake | None:
        """Every record of a file rejected almost always means the wrong format: the first such file."""
        for s in self.summaries:
            mistake = _all_rejected(s, self.file_format)
            if mistake is not None:
                return mistake
        return None


def shown(file: str) -> str:
    """How the results name a source: a file by its name, a Hub dataset by its hf:// address."""
    return file if file.startswith("hf://") else Path(file).name


def parse_map(items: Sequence[str] | None) -> dict[str, str] | None:
    """``FIELD=COLUMN`` items as a mapping the generic formats accept."""
    if not items:
        return None
    mapping: dict[str, str] = {}
    for item in items:
        name, sep, column = item.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise Mistake(f"--map {item!r}: expected FIELD=COLUMN, e.g. --map question=stem")
        mapping[name.strip()] = column.strip()
    try:
        parse_mapping(mapping)
    except FileFormatError as exc:
        raise Mistake(f"--map: {exc}") from None
    return mapping


def parse_cop_base(value: str) -> CopBase:
    if value == "auto":
        return "auto"
    if value in ("0", "1"):
        return 0 if value == "0" else 1
    raise Mistake(f"--cop-base {value!r}: expected auto, 0 or 1")


def ingest_files(
    engine: Engine,
    url: str,
    job: IngestJob,
    progress_of: Callable[[Path], AbstractContextManager[Progress | None]] = lambda _f: nullcontext(),
) -> IngestResult:
    """Check the job, then ingest its files one by one; a file that cannot be read at all is noted and
    the others go on. ``progress_of`` gives each file's progress callback (the CLI's bar)."""
    if job.file_format not in FORMATS:
        raise Mistake(f"unknown --format {job.file_format!r} (choose one of: {', '.join(FORMATS)})")
    if job.answer_index_base not in (None, 0, 1):
        raise Mistake("--answer-index-base must be 0 or 1")
    _check_sources(job.files, job.file_format)
    test_ids: set[str] | None = None
    if job.benchmark_test_ids is not None:
        try:
            test_ids = load_id_list(job.benchmark_test_ids)
        except (FileNotFoundError, FileFormatError, UnicodeDecodeError) as exc:
            raise Mistake(f"--benchmark-test-ids: {exc}") from None
    migrate.require_current(engine, url)
    limits = get_settings().ingest_limits
    result = IngestResult(job.file_format)
    for f in job.files:
        with progress_of(f) as progress:
            try:
                result.summaries.append(
                    ingest_file(
                        engine,
                        f,
                        job.file_format,
                        split=job.split,
                        benchmark_test_ids=test_ids,
                        mapping=job.mapping,
                        cop_base=job.cop_base,
                        answer_index_base=job.answer_index_base,
                        batch_size=job.batch_size,
                        progress=progress,
                        limits=limits,
                    )
                )
            except FileFormatError as exc:
                result.file_errors.append(f"{f}: {exc}")
    return result


def _all_rejected(s: IngestSummary, file_format: str) -> Mistake | None:
    if s.already_ingested or not s.read or not (s.no_valid_records or s.rejected >= s.read):
        return None
    guess = guess_format(Path(s.file), besides=file_format)
    hint = (
        f"it looks like {guess}: run again with --format {guess}"
        if guess
        else s.suggestion or "check --format (and --map for the generic formats)"
    )
    return Mistake(
        f"{shown(s.file)}: all {s.read:,} records were rejected as --format {file_format}; {hint}",
        exit_code=1,
    )


def _check_sources(files: Sequence[Path], file_format: str) -> None:
    """Every FILE is there and fits --format (a datasets folder or Hub id only with --format datasets)."""
    if file_format == "datasets":
        require("datasets", "hub")
    for f in files:
        try:
            hub = hub_dataset(str(f))
        except FileFormatError as exc:
            raise Mistake(str(exc)) from None
        if hub is not None:
            if file_format != "datasets":
                raise Mistake(f"{hub.label} is a Hub dataset: ingest it with --format datasets (and --split)")
            continue
        if is_datasets_folder(f):
            if file_format != "datasets":
                raise Mistake(f"{f} is a datasets folder (save_to_disk): ingest it with --format datasets")
            continue
        if file_format == "datasets":
            raise Mistake(
                f"{f}: not a datasets folder (save_to_disk writes state.json and dataset_info.json, or "
                "dataset_dict.json) nor hf://datasets/OWNER/NAME"
                if f.exists()
                else f"not found: {f}"
            )
        if not f.is_file():
            raise Mistake(f"file not found: {f}")
