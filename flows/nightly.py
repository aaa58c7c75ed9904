"""The nightly growth flow: ingest what is new, process the next questions within a budget, export a
new dataset version, and report the growth as a keyed artifact that versions night after night.

Why it is safe to run every night, and to kill:
- one night at a time: the deployment has a concurrency limit of 1 (CANCEL_NEW), and the flow takes a
  lock row in the database first, so a manual run cannot collide either (it ends Cancelled, saying who
  holds the lock); a session that keeps the key serialising those starts makes the night end Failed
  after REASONMED_RUN_LOCK_WAIT_S, naming that session, instead of waiting for ever;
- a night that dies is resumed by the next one: ingestion skips files it already has (by sha256), the
  build's stages are idempotent per question and its claim leases expire, so the next night picks up
  the unfinished questions and only does what is missing for each;
- the budget (questions and/or tokens per night) bounds what a night spends; "round-robin" priority
  advances every source evenly, "fifo" takes the oldest questions first.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.states import Cancelled, Failed, State

from reasonmed.db.claims_repo import Priority
from reasonmed.export.assemble import Layout
from reasonmed.export.service import Format
from reasonmed.flows import run_names
from reasonmed.flows.build import build_dataset, build_result
from reasonmed.flows.export import export_dataset
from reasonmed.flows.run import RunContext
from reasonmed.ingest.loaders import QuestionSource, SourceFormat
from reasonmed.ingest.service import IngestSummary
from reasonmed.nightly.ingest import NightInput
from reasonmed.nightly.night import BuildDone, Night, NightCalls, Refused
from reasonmed.nightly.report import render_markdown
from reasonmed.nightly.request import NightRequest
from reasonmed.tasks.ingest import ingest_file_task

GROWTH_ARTIFACT_KEY = "dataset-growth"


@flow(name="nightly-growth", flow_run_name=run_names.nightly_name, persist_result=False)
async def nightly_growth(
    input_location: str | None = None,
    source: SourceFormat = "pubmedqa",
    max_questions: int | None = None,
    max_tokens: int | None = None,
    priority: Priority = "round-robin",
    export_out: str | None = None,
    config: str | None = None,
    pattern: str | None = None,
    split: str = "train",
    benchmark_test_ids: str | None = None,
    sources: list[QuestionSource] | None = None,
    shard_size: int | None = None,
    questions_in_flight: int | None = None,
    export: bool = True,
    export_formats: list[Format] | None = None,
    export_layout: Layout = "instruction",
    lock_ttl_s: float | None = None,
    dry_run: bool = False,
) -> dict[str, Any] | State:
    """One night of growth: ingest what is new, process the next questions, export if the night added any.

    Args:
        input_location: A folder (or file) on the worker, or s3://bucket/prefix, holding the night's
            question files; empty skips ingestion.
        source: The format of the files at input_location.
        max_questions: Most questions processed this night; empty means no limit, 0 builds nothing.
        max_tokens: Most prompt + completion tokens this night; empty means no limit.
        priority: Claim order: round-robin advances every source evenly, fifo takes the oldest first.
        export_out: Where the new dataset version goes (folder or s3://bucket/prefix); empty means
            REASONMED_EXPORT_DIR.
        config: Pipeline YAML on the worker; empty means REASONMED_PIPELINE_CONFIG.
        pattern: File-name pattern at input_location; empty means the format's default (e.g. *.json
            for pubmedqa).
        split: Split label given to newly ingested questions.
        benchmark_test_ids: Id list (path or s3 URI) of the benchmark test split: those questions are
            held out of the dataset; the file itself is never ingested.
        sources: Process only questions of these sources; empty means all.
        shard_size: Questions per claimed shard; empty means REASONMED_SHARD_SIZE.
        questions_in_flight: Questions processed at once; empty means REASONMED_QUESTIONS_IN_FLIGHT or a
            default from the endpoints' concurrency.
        export: Export a new dataset version, when the night added samples or accepted questions.
        export_formats: File formats of the export; empty means parquet and jsonl.
        export_layout: Row layout of the export: instruction (question / answer columns) or chat
            (messages).
        lock_ttl_s: Seconds a dead night's lock blocks the next night; empty means
            REASONMED_CLAIM_LEASE_S.
        dry_run: Only estimate the night over the questions already stored (calls, tokens, wall time,
            cost per stage); nothing is ingested, claimed or written.
    """
    log = get_run_logger()
    request = NightRequest(
        input_location=input_location,
        source=source,
        max_questions=max_questions,
        max_tokens=max_tokens,
        priority=priority,
        export_out=export_out,
        config=config,
        pattern=pattern,
        split=split,
        benchmark_test_ids=benchmark_test_ids,
        sources=sources,
        shard_size=shard_size,
        questions_in_flight=questions_in_flight,
        export=export,
        export_formats=export_formats,
        export_layout=export_layout,
        lock_ttl_s=lock_ttl_s,
        dry_run=dry_run,
    )
    async with RunContext(config) as run:
        night = Night(
            request, engine=run.engine, settings=run.settings, cfg=lambda: run.cfg, calls=CALLS, log=log
        )
        if request.dry_run:
            return {"dry_run": await night.estimate()}
        lock = await night.lock(run.flow_run_id)
        if isinstance(lock, Refused):
            return Cancelled(message=lock.message) if lock.cancelled else Failed(message=lock.message)
        run.adopt(lock.run_id)
        try:
            growth = await night.grow(lock.run_id)
            run.stats = growth.summary()
            if growth.problem:
                run.end("failed", growth.problem)
        finally:
            lock.stop()
    # Published even when the export failed: the night's generation is in the database either way.
    await acreate_markdown_artifact(
        key=GROWTH_ARTIFACT_KEY, markdown=render_markdown(growth), description=growth.headline()
    )
    log.info("%s", growth.log_line())
    if growth.failure:
        raise RuntimeError(growth.failure)
    return growth.result()


def _ingest_file(path: str, night: NightInput, benchmark_test_ids: set[str] | None) -> IngestSummary:
    """One file through the ingestion task (its own task run in the UI)."""
    return ingest_file_task(
        path,
        night.source,
        night.database_url,
        split=night.split,
        benchmark_test_ids=benchmark_test_ids,
        limits=night.limits,
    )


async def _build(night: NightRequest) -> BuildDone:
    """The night's build as a child flow run; its final state says whether all its work got done."""
    state = await build_dataset(
        limit=night.max_questions,
        sources=night.sources,
        config=night.config,
        shard_size=night.shard_size,
        questions_in_flight=night.questions_in_flight,
        max_tokens=night.max_tokens,
        priority=night.priority,
        return_state=True,
    )
    return BuildDone(await build_result(state), state.is_completed(), state.message)


async def _export(night: NightRequest, allow_simulated: bool) -> dict[str, Any]:
    """A new dataset version through the export flow (a child run with its own manifest and artifacts).

    The export flow is synchronous; it runs in a thread (its flow-run context travels with it) so this
    event loop stays free.
    """
    kwargs: dict[str, Any] = {
        "out": night.export_out,
        "layout": night.export_layout,
        "allow_simulated": allow_simulated,
    }
    if night.export_formats:
        kwargs["formats"] = list(night.export_formats)
    if inspect.iscoroutinefunction(export_dataset.fn):
        return dict(await export_dataset(**kwargs))

    def export_in_thread() -> dict[str, Any]:
        return dict(export_dataset(**kwargs))

    return await asyncio.to_thread(export_in_thread)


CALLS = NightCalls(ingest_file=_ingest_file, build=_build, export=_export)
