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
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact
from prefect.states import Cancelled, Failed, State

from reasonmed.db import claims_repo, nightly_repo, runs_repo
from reasonmed.db.claims_repo import Priority
from reasonmed.export.assemble import Layout
from reasonmed.export.service import Format
from reasonmed.flows import run_names
from reasonmed.flows.build import build_dataset, build_result
from reasonmed.flows.export import export_dataset
from reasonmed.flows.run import RunContext
from reasonmed.ingest.loaders import FileFormatError, Limits, QuestionSource, SourceFormat
from reasonmed.ingest.service import load_id_list
from reasonmed.nightly import guard, inputs
from reasonmed.nightly.report import Growth, render_markdown
from reasonmed.pipeline.dry_run import plan_run
from reasonmed.redact import redact
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
    logger = get_run_logger()
    if priority not in claims_repo.PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(claims_repo.PRIORITIES)} (got {priority!r})")
    for name, value in (("max_questions", max_questions), ("max_tokens", max_tokens)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0 or unset (got {value})")
    async with RunContext(config) as run:
        engine = run.engine
        if dry_run:
            est = await asyncio.to_thread(plan_run, engine, run.cfg, limit=max_questions, sources=sources)
            logger.info(
                "dry run: %s pending question(s), %s calls, %s tokens, wall time %s s, cost %s",
                est.pending,
                est.calls,
                est.tokens,
                est.wall_s,
                est.cost_usd,
            )
            return {"dry_run": est.as_dict()}
        ttl = lock_ttl_s or run.settings.claim_lease_s
        params = {
            "input_location": input_location,
            "source": source,
            "max_questions": max_questions,
            "max_tokens": max_tokens,
            "priority": priority,
            "export_out": export_out,
            "config": config,
            "sources": sources,
        }
        try:
            lock = await asyncio.to_thread(
                guard.acquire,
                engine,
                kind="nightly",
                ttl_s=ttl,
                wait_s=run.settings.run_lock_wait_s,
                parameters=params,
                prefect_flow_run_id=run.flow_run_id,
            )
        except nightly_repo.LockKeyHeld as busy:  # not another night: something an operator must look at
            message = guard.key_held_message("nightly growth", busy)
            logger.error(message)
            return Failed(message=message)
        if not isinstance(lock, guard.RunLock):
            message = guard.refusal_message("nightly growth", lock, ttl)
            logger.warning(message)
            return Cancelled(message=message)
        run.adopt(lock.run_id)
        try:
            growth = await _grow(
                run,
                params,
                pattern=pattern,
                split=split,
                benchmark_test_ids=benchmark_test_ids,
                shard_size=shard_size,
                questions_in_flight=questions_in_flight,
                export=export,
                export_formats=export_formats,
                export_layout=export_layout,
            )
            run.stats = stats = growth.summary()
            problem = growth.export_error or growth.build_error
            if problem:
                run.end("failed", problem)
        finally:
            lock.stop()
    # Published even when the export failed: the night's generation is in the database either way.
    await acreate_markdown_artifact(
        key=GROWTH_ARTIFACT_KEY,
        markdown=render_markdown(growth),
        description=f"Nightly growth: +{stats['samples_added']} samples, +{stats['questions_accepted']} questions",
    )
    logger.info(
        "night %s: %s questions accepted, %s rejected, %s samples added, %s tokens; export version %s",
        lock.run_id,
        stats["questions_accepted"],
        stats["questions_rejected"],
        stats["samples_added"],
        stats["tokens"]["total"],
        stats["export_version"],
    )
    if growth.export_error:
        raise RuntimeError(
            f"night {lock.run_id}: the export failed ({growth.export_error}); rerun the export deployment"
        )
    if growth.build_error:
        raise RuntimeError(f"night {lock.run_id}: {growth.build_error}")
    return {"nightly_run_id": lock.run_id, **stats, "export": growth.export, "ingest": growth.ingest}


async def _grow(
    run: RunContext,
    params: dict[str, Any],
    *,
    pattern: str | None,
    split: str,
    benchmark_test_ids: str | None,
    shard_size: int | None,
    questions_in_flight: int | None,
    export: bool,
    export_formats: Sequence[str] | None,
    export_layout: str,
) -> Growth:
    settings, engine, nightly_run_id = run.settings, run.engine, run.run_id
    assert nightly_run_id is not None
    started = runs_repo.now()
    before = await asyncio.to_thread(nightly_repo.dataset_totals, engine)
    growth = Growth(
        nightly_run_id=nightly_run_id,
        started_at=started.strftime("%Y-%m-%d %H:%M UTC"),
        parameters=params,
        before=before,
        after=before,
    )
    if params["input_location"]:
        growth.ingest = await _ingest_new(
            NightInput(
                location=params["input_location"],
                source=params["source"],
                pattern=pattern,
                split=split,
                benchmark_test_ids=benchmark_test_ids,
                database_url=settings.database_url,
                endpoint_url=settings.s3_endpoint_url,
                limits=settings.ingest_limits,
            )
        )
    if params["max_questions"] != 0:
        state = await build_dataset(
            limit=params["max_questions"],
            sources=params["sources"],
            config=params["config"],
            shard_size=shard_size,
            questions_in_flight=questions_in_flight,
            max_tokens=params["max_tokens"],
            priority=params["priority"],
            return_state=True,
        )
        growth.build = await build_result(state)
        if not state.is_completed():  # what it did is exported all the same; the night then ends Failed
            growth.build_error = state.message
            get_run_logger().error("build did not finish its work: %s", state.message)
    growth.after = await asyncio.to_thread(nightly_repo.dataset_totals, engine)
    growth.finished = await asyncio.to_thread(nightly_repo.finished_since, engine, started)
    if export and not growth.changed_dataset:  # a version identical to the last one would only add noise
        growth.export_skipped = "the night added no sample and accepted no question"
        get_run_logger().info("no export: %s", growth.export_skipped)
    elif export:
        try:
            # A night on the simulator exports its own (simulated) rows, flagged as such in card and manifest.
            growth.export = await _export(
                params["export_out"], export_formats, export_layout, run.cfg.simulated
            )
        except Exception as exc:  # reported, and the night fails, once the growth figures are recorded
            growth.export_error = redact(f"{type(exc).__name__}: {exc}")
            get_run_logger().error("export failed: %s", growth.export_error)
    return growth


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


async def _ingest_new(night: NightInput) -> list[dict[str, Any]]:
    """Every matching file goes to the ingestion task; files it has seen (same sha256) are skipped there.

    A file that cannot be read as ``source`` is reported and skipped: one bad upload must not cost the
    night's generation.
    """
    with tempfile.TemporaryDirectory(prefix="reasonmed-nightly-") as staging:  # S3 downloads, gone afterwards
        return await _ingest_files(night, Path(staging))


async def _ingest_files(night: NightInput, staging_dir: Path) -> list[dict[str, Any]]:
    location, source, pattern, endpoint_url = night.location, night.source, night.pattern, night.endpoint_url
    benchmark_test_ids = night.benchmark_test_ids
    logger = get_run_logger()
    test_ids: set[str] | None = None
    exclude: list[str] = []
    if benchmark_test_ids:
        exclude.append(benchmark_test_ids)
        local_ids = await asyncio.to_thread(
            inputs.fetch, benchmark_test_ids, staging_dir=staging_dir, endpoint_url=endpoint_url
        )
        test_ids = load_id_list(local_ids)
    skipped: list[tuple[str, str]] = []
    files = await asyncio.to_thread(
        inputs.list_inputs,
        location,
        pattern=inputs.pattern_for(source, pattern),
        staging_dir=staging_dir,
        exclude=exclude,
        endpoint_url=endpoint_url,
        on_skip=lambda uri, why: skipped.append((uri, why)),
    )
    logger.info("%s: %s input file(s) matching %s", location, len(files), inputs.pattern_for(source, pattern))
    rows: list[dict[str, Any]] = [
        {"file": uri, "status": f"error: {why}", "inserted": 0, "duplicates": 0, "rejected": 0}
        for uri, why in skipped
    ]
    for uri, why in skipped:
        logger.warning("%s: not ingested: %s", uri, why)
    for f in files:
        try:
            s = await asyncio.to_thread(
                ingest_file_task,
                str(f.local),
                source,
                night.database_url,
                split=night.split,
                benchmark_test_ids=test_ids,
                limits=night.limits,
            )
        except Exception as exc:  # whatever one file does, the night goes on to build and export
            why = redact(
                str(exc)
                if isinstance(exc, FileFormatError | FileNotFoundError)
                else f"{type(exc).__name__}: {exc}"
            )
            logger.warning("%s: not ingested: %s", f.uri, why)
            rows.append(
                {"file": f.uri, "status": f"error: {why}", "inserted": 0, "duplicates": 0, "rejected": 0}
            )
            continue
        status = "already ingested" if s.already_ingested else "new"
        if s.status == "failed":
            status = f"error: {s.error}"
        elif s.no_valid_records:
            status = "error: no valid record" + (f" ({s.suggestion})" if s.suggestion else "")
        if status.startswith("error"):
            logger.warning("%s: %s", f.uri, status)
        rows.append(
            {
                "file": f.uri,
                "status": status,
                "inserted": s.inserted,
                "duplicates": s.duplicates,
                "rejected": s.rejected,
                "sha256": s.sha256,
            }
        )
    return rows


async def _export(
    out: str | None, formats: Sequence[str] | None, layout: str, allow_simulated: bool
) -> dict[str, Any]:
    """A new dataset version through the export flow (a child run with its own manifest and artifacts).

    The export flow is synchronous; it runs in a thread (its flow-run context travels with it) so this
    event loop stays free.
    """
    kwargs: dict[str, Any] = {"out": out, "layout": layout, "allow_simulated": allow_simulated}
    if formats:
        kwargs["formats"] = list(formats)
    if inspect.iscoroutinefunction(export_dataset.fn):
        return dict(await export_dataset(**kwargs))

    def export_in_thread() -> dict[str, Any]:
        return dict(export_dataset(**kwargs))

    return await asyncio.to_thread(export_in_thread)
