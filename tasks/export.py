"""Prefect task: export the datasets (the work is ``reasonmed.export.service.export_dataset``)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from reasonmed.db.engine import get_engine
from reasonmed.export.service import ExportOptions, ExportResult, export_dataset


@task(name="export-dataset", persist_result=False, cache_policy=NO_CACHE, retries=0)
def export_task(database_url: str, options: ExportOptions) -> ExportResult:
    """No retries and no caching: an export is one transaction, and a rerun is a new version anyway."""
    return export_dataset(get_engine(database_url), options)
