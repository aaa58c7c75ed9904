"""The manifest every export writes: what is in it, where it came from, and how to check its files."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from reasonmed.export.writers import sha256_file


class FileEntry(BaseModel):
    path: str = Field(description="relative to the version folder")
    sha256: str
    bytes: int


class DatasetEntry(BaseModel):
    rows: int
    by_source: dict[str, int]
    files: list[str]


class ContaminationReport(BaseModel):
    """Questions excluded because they match a benchmark-test item (exactly or as a near-duplicate)."""

    checked: bool
    flagged: int = Field(description="questions the detector flagged anywhere in the database")
    count: int = Field(description="flagged questions that would otherwise have been exported")
    rows_excluded: int
    question_ids: list[int]
    matches: dict[str, str] = Field(description="question id -> the benchmark-test item it matches")
    rows_deferred: int = Field(
        default=0, description="rows held back: accepted after the scan, for the next version"
    )
    deferred_question_ids: list[int] = Field(default_factory=list)


class Manifest(BaseModel):
    version: int
    created_at: str
    location: str
    layout: str
    formats: list[str]
    counts: dict[str, int] = Field(description="rows per dataset")
    by_source: dict[str, int] = Field(description="rows per source (the same in every dataset)")
    questions: int
    datasets: dict[str, DatasetEntry]
    files: list[FileEntry]
    run_ids: list[int] = Field(description="pipeline runs whose accepted paths the export covers")
    config_hashes: list[str]
    config_hash_by_run: dict[str, str | None]
    contamination: ContaminationReport
    benchmark_test_questions_in_db: int = Field(description="never exported; checked again at write time")
    export_run_id: int | None
    simulated: bool = Field(
        default=False, description="rows of simulated models (sim/...) are in this version"
    )
    simulated_rows: int = 0
    simulated_rows_left_out: int = Field(default=0, description="rows of simulated models not exported")
    writer: dict[str, Any]


def file_entries(root: Path, paths: list[Path], known: Mapping[Path, str] | None = None) -> list[FileEntry]:
    """Path, sha256 and size of each file; ``known`` digests (hashed while written) are not read again,
    the others are hashed two at a time (hashlib releases the GIL)."""
    known = known or {}
    ordered = sorted(paths)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="export-sha") as pool:
        digests = list(pool.map(lambda p: known.get(p) or sha256_file(p), ordered))
    return [
        FileEntry(path=p.relative_to(root).as_posix(), sha256=sha, bytes=p.stat().st_size)
        for p, sha in zip(ordered, digests, strict=True)
    ]


def combined_config_hash(hashes: list[str]) -> str | None:
    """One hash for dataset_versions.config_hash: the run's own when all runs share it, else a digest."""
    unique = sorted(set(hashes))
    if not unique:
        return None
    if len(unique) == 1:
        return unique[0]
    return hashlib.sha256(",".join(unique).encode()).hexdigest()
