"""Prefect task: ingest one question file (the work is ``reasonmed.ingest.service.ingest_file``)."""

from __future__ import annotations

from collections.abc import Mapping

from prefect import task
from prefect.cache_policies import NO_CACHE

from reasonmed.db.engine import get_engine
from reasonmed.ingest.loaders import CopBase, Limits
from reasonmed.ingest.service import IngestSummary, ingest_file


@task(name="ingest-file", task_run_name="ingest {path}", persist_result=False, cache_policy=NO_CACHE)
def ingest_file_task(
    path: str,
    source: str,
    database_url: str,
    split: str = "train",
    benchmark_test_ids: set[str] | None = None,
    mapping: Mapping[str, str] | None = None,
    cop_base: CopBase = "auto",
    answer_index_base: int | None = None,
    limits: Limits | None = None,
) -> IngestSummary:
    """No result caching: the database is the record, and a rerun is already a cheap no-op there."""
    return ingest_file(
        get_engine(database_url),
        path,
        source,
        split=split,
        benchmark_test_ids=benchmark_test_ids,
        mapping=mapping,
        cop_base=cop_base,
        answer_index_base=answer_index_base,
        limits=limits,
    )
