"""Prefect flow: ingest question files, one task per file, and publish a summary table artifact."""

from __future__ import annotations

from typing import Literal

from prefect import flow
from prefect.artifacts import create_table_artifact

from reasonmed.flows import run_names
from reasonmed.flows.run import RunContext
from reasonmed.ingest.loaders import CopBase, SourceFormat
from reasonmed.ingest.service import IngestSummary, load_id_list
from reasonmed.tasks.ingest import ingest_file_task


def _cop_base(value: str | int) -> CopBase:
    if str(value) == "auto":
        return "auto"
    if str(value) in ("0", "1"):
        return 0 if str(value) == "0" else 1
    raise ValueError(f"cop_base must be auto, 0 or 1 (got {value!r})")


@flow(name="ingest", flow_run_name=run_names.ingest_name, log_prints=True)
def ingest(
    paths: list[str],
    source: SourceFormat,
    split: str = "train",
    benchmark_test_ids: str | None = None,
    mapping: dict[str, str] | None = None,
    cop_base: Literal["auto", "0", "1"] = "auto",
    answer_index_base: Literal[0, 1] | None = None,
) -> list[IngestSummary]:
    """Ingest question files; files already ingested (same sha256) are skipped.

    Files run one after another: they share one database, and each ingest already overlaps its
    parsing with its writes.

    Args:
        paths: Question files on the worker.
        source: The files' format.
        split: Split label given to the new questions.
        benchmark_test_ids: Id list (path on the worker) of the benchmark test split: those questions
            are held out of the dataset.
        mapping: For jsonl, csv and parquet: the file's column for each field (id, question, context,
            answer, options), e.g. {"question": "prompt"}.
        cop_base: MedMCQA: whether the answer index (cop) counts from 0 or 1; auto decides from the file.
        answer_index_base: For jsonl, csv and parquet: whether a numeric answer counts options from 0 or
            1; empty means an answer given as the option's letter or text.
    """
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
