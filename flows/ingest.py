"""Prefect flow: ingest question files, one task per file, and publish a summary table artifact."""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows.run import RunContext
from reasonmed.ingest.loaders import CopBase
from reasonmed.ingest.service import IngestSummary, load_id_list
from tasks.ingest import ingest_file_task


def _cop_base(value: str | int) -> CopBase:
    if str(value) == "auto":
        return "auto"
    if str(value) in ("0", "1"):
        return 0 if str(value) == "0" else 1
    raise ValueError(f"cop_base must be auto, 0 or 1 (got {value!r})")


@flow(name="ingest", log_prints=True)
def ingest(
    paths: list[str],
    source: str,
    split: str = "train",
    benchmark_test_ids: str | None = None,
    mapping: dict[str, str] | None = None,
    cop_base: str = "auto",
    answer_index_base: int | None = None,
) -> list[IngestSummary]:
    """Files run one after another: they share one database, and each ingest already overlaps its
    parsing with its writes."""
    with RunContext() as run:
        settings = run.settings
    url = settings.database_url
    test_ids = load_id_list(benchmark_test_ids) if benchmark_test_ids else None
    cop = _cop_base(cop_base)
    summaries = [
        ingest_file_task(
            p,
            source,
            url,
            split=split,
            benchmark_test_ids=test_ids,
            mapping=mapping,
            cop_base=cop,
            answer_index_base=answer_index_base,
            limits=settings.ingest_limits,
        )
        for p in paths
    ]
    create_table_artifact(
        key="ingest-summary",
        table=[
            {
                "file": s.file,
                "read": s.read,
                "inserted": s.inserted,
                "duplicates": s.duplicates,
                "rejected": s.rejected,
                "benchmark_test": s.benchmark_test,
                "newly_marked": s.newly_marked,
                "id_conflicts": s.id_conflicts,
                "already_ingested": s.already_ingested,
                "status": s.status,
                "error": s.error,
                "suggestion": s.suggestion,
            }
            for s in summaries
        ],
        description=f"Ingest of {len(paths)} {source} file(s), split {split}",
    )
    for s in summaries:
        print(
            f"{s.file}: {s.status}, read {s.read}, inserted {s.inserted}, duplicates {s.duplicates}, "
            f"rejected {s.rejected}" + (f" ({s.error})" if s.error else "")
        )
    bad = [s for s in summaries if s.status == "failed" or s.no_valid_records]
    if bad:  # after the artifact: what was stored is reported either way
        raise RuntimeError(
            "; ".join(
                f"{s.file}: {s.error or 'no valid record'}" + (f" ({s.suggestion})" if s.suggestion else "")
                for s in bad
            )
        )
    return summaries
