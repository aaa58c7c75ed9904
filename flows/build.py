"""The build flow: grow the dataset by running every unfinished question through the ReasonMed DAG.

Shape, chosen for throughput and for what the Prefect UI can show:
- questions are claimed shard by shard (a lease in the database, so several workers can share one
  pending set and a dead worker's questions come back) and each shard is a child flow run;
- inside a shard every question is its own coroutine running four tasks (generate, verify, resolve,
  summarize); a process-wide semaphore keeps enough questions in flight to fill every endpoint's cap,
  and the per-endpoint caps themselves live in the LLM clients (one semaphore each, in process);
- tasks are async, persist nothing and cache nothing: Postgres is the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from typing import Any

import httpx
from prefect import flow, get_run_logger
from prefect.artifacts import acreate_progress_artifact, acreate_table_artifact, aupdate_progress_artifact
from prefect.context import FlowRunContext
from prefect.exceptions import PrefectHTTPStatusError

from flows.best_effort import best_effort
from reasonmed.config import PipelineConfig, get_settings, load_pipeline_config
from reasonmed.db import pipeline_repo as repo
from reasonmed.db.engine import get_engine
from reasonmed.db.migrate import require_current
from reasonmed.llm.registry import LLMRegistry
from reasonmed.pipeline.progress import BuildProgress, set_current
from reasonmed.pipeline.stages import StageContext
from reasonmed.prompts import all_templates
from tasks.pipeline import RUNTIMES, generate_task, resolve_task, summarize_task, verify_task
from tasks.secrets import load_prefect_secret

# Per-run state shared by the run's shards and questions in this process, keyed by runtime key.
_PROGRESS: dict[str, BuildProgress] = {}
_SLOTS: dict[str, asyncio.Semaphore] = {}


def default_questions_in_flight(cfg: PipelineConfig) -> int:
    """Enough questions that every endpoint's cap can stay full (a question often has one call out)."""
    return max(8, sum(ep.max_in_flight for ep in cfg.endpoints.values()))


async def _process_question(runtime_key: str, question_id: int) -> str:
    progress = _PROGRESS[runtime_key]
    async with _SLOTS[runtime_key]:
        progress.in_flight += 1
        try:
            await generate_task(runtime_key, question_id)
            await verify_task(runtime_key, question_id)
            status = await resolve_task(runtime_key, question_id)
            if status != "rejected":
                status = await summarize_task(runtime_key, question_id) or status
        except Exception as exc:  # the task already retried; leave the question for the next run
            progress.failed += 1
            get_run_logger().warning("question %s left unfinished: %s", question_id, exc)
            return "failed"
        finally:
            progress.in_flight -= 1
    progress.done += 1
    if status == "accepted":
        progress.accepted += 1
    elif status == "rejected":
        progress.rejected += 1
    return status


@flow(name="build-shard", flow_run_name="shard-{shard_index}", persist_result=False)
async def build_shard(runtime_key: str, shard_index: int, question_ids: list[int]) -> dict[str, int]:
    """One child flow run per shard keeps each run's task graph well under the UI's 10,000 nodes."""
    statuses = await asyncio.gather(*(_process_question(runtime_key, q) for q in question_ids))
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return counts


async def _run_shard(runtime_key: str, index: int, ids: list[int], attempts: int = 8) -> dict[str, int]:
    """Start a shard's child flow run, waiting out an overloaded Prefect API.

    A busy server (notably the temporary SQLite one) can answer 503 while it records a backlog of task
    events; the client's own retries may not outlast that. Re-running a shard is safe: every stage
    skips what the database already holds.
    """
    for attempt in range(attempts):
        try:
            return await build_shard(runtime_key, index, ids)
        except (PrefectHTTPStatusError, httpx.TransportError) as exc:
            if attempt == attempts - 1:
                raise
            delay = min(60.0, 2.0 ** (attempt + 1))
            get_run_logger().warning("shard %s: Prefect API unavailable (%s); retrying in %.0f s", index, exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


@flow(name="build-dataset", persist_result=False)
async def build_dataset(
    limit: int | None = None,
    sources: list[str] | None = None,
    config: str | None = None,
    shard_size: int | None = None,
    questions_in_flight: int | None = None,
    worker_id: str | None = None,
    max_tokens: int | None = None,
    priority: str = "fifo",
) -> dict[str, Any]:
    """Process up to ``limit`` unfinished questions (all of them if unset), never benchmark-test items.

    ``config`` is a pipeline YAML path (default: REASONMED_PIPELINE_CONFIG, else the simulator default);
    ``sources`` restricts to some sources (e.g. ["medqa", "pubmedqa"]).
    ``max_tokens``: stop claiming new shards once this run's prompt + completion tokens reach it (a
    nightly budget); shards already claimed finish, so a run can overshoot by the shards in flight.
    ``priority``: claim order, "fifo" (lowest ids first) or "round-robin" (in turn over sources).
    """
    logger = get_run_logger()
    settings = get_settings()
    cfg = load_pipeline_config(config or settings.pipeline_config)
    engine = get_engine(settings.database_url)
    await asyncio.to_thread(require_current, engine, settings.database_url)
    flow_ctx = FlowRunContext.get()
    flow_run_id = str(flow_ctx.flow_run.id) if flow_ctx and flow_ctx.flow_run else None
    shard_size = shard_size or settings.shard_size
    in_flight = questions_in_flight or settings.questions_in_flight or default_questions_in_flight(cfg)
    params = {"limit": limit, "sources": sources, "config": config, "shard_size": shard_size, "questions_in_flight": in_flight}
    if priority not in repo.PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(repo.PRIORITIES)} (got {priority!r})")
    params.update(max_tokens=max_tokens, priority=priority)
    run_id = await asyncio.to_thread(
        repo.create_run, engine, kind="build", config_hash=cfg.config_hash, config_snapshot=cfg.snapshot(),
        parameters=params, prefect_flow_run_id=flow_run_id,
    )
    await asyncio.to_thread(repo.ensure_prompt_templates, engine, all_templates())
    registry = LLMRegistry(cfg, secret_loader=load_prefect_secret)
    ctx = StageContext(engine=engine, cfg=cfg, backends=registry, run_id=run_id)
    key = f"run{run_id}-{uuid.uuid4().hex[:6]}"
    RUNTIMES[key] = ctx
    worker = worker_id or f"{socket.gethostname()}:{os.getpid()}:run{run_id}"
    pending = await asyncio.to_thread(repo.count_pending, engine, sources)
    progress = BuildProgress(total=min(pending, limit) if limit is not None else pending, usage=lambda: registry.usage)
    _PROGRESS[key], _SLOTS[key] = progress, asyncio.Semaphore(in_flight)
    set_current(progress)
    logger.info(
        "run %s: %s questions to process (%s pending), %s in flight, shards of %s, %s paths per question",
        run_id, progress.total, pending, in_flight, shard_size, cfg.paths_per_question,
    )
    artifact_id = await acreate_progress_artifact(progress=0.0, key="build-progress", description=f"build run {run_id}")

    remaining = [limit if limit is not None else float("inf")]
    held: set[int] = set()
    shard_counter = [0]
    totals: dict[str, int] = {}

    def token_budget_spent() -> bool:
        if max_tokens is None:
            return False
        snap = progress.snapshot()
        return snap["prompt_tokens"] + snap["completion_tokens"] >= max_tokens

    async def shard_worker() -> None:
        while remaining[0] > 0 and not token_budget_spent():
            take = int(min(shard_size, remaining[0]))
            remaining[0] -= take  # reserve before awaiting, so concurrent shard workers never over-claim
            ids = await asyncio.to_thread(
                repo.claim_questions, engine, worker=worker, limit=take, lease_s=settings.claim_lease_s, sources=sources,
                priority=priority,
            )
            remaining[0] += take - len(ids)
            if not ids:
                return
            held.update(ids)
            progress.claimed += len(ids)
            index = shard_counter[0]
            shard_counter[0] += 1
            counts = await _run_shard(key, index, ids)
            # Released once the shard got through; a failed shard's claims lapse after the lease.
            await asyncio.to_thread(repo.release_claims, engine, worker=worker, question_ids=ids)
            held.difference_update(ids)
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v

    async def heartbeat() -> None:
        """Renew every claim this run holds, from the moment it is taken (a child flow run can take a
        while to start on a busy Prefect server) until it is released."""
        lease = settings.claim_lease_s
        while True:
            await asyncio.sleep(lease / 3)
            with best_effort("claim heartbeat"):
                await asyncio.to_thread(repo.renew_claims, engine, worker=worker, question_ids=sorted(held), lease_s=lease)

    async def report_progress() -> None:
        while True:
            await asyncio.sleep(5)
            with best_effort("progress artifact"):
                await aupdate_progress_artifact(artifact_id=artifact_id, progress=100.0 * progress.fraction)

    reporter = asyncio.create_task(report_progress())
    beat = asyncio.create_task(heartbeat())
    # Enough shards at once that the question semaphore, not shard boundaries, limits concurrency.
    n_shard_workers = max(1, -(-in_flight // shard_size)) + 1
    status, error = "completed", None
    try:
        await asyncio.gather(*(shard_worker() for _ in range(n_shard_workers)))
    except BaseException as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        for background in (reporter, beat):
            background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await background
        progress.finished = True
        await registry.aclose()
        stats = {**progress.snapshot(), "statuses": totals, "shards": shard_counter[0]}
        stats["usage"] = [r.as_dict() for r in registry.usage]
        await asyncio.to_thread(repo.finish_run, engine, run_id, status=status, stats=_jsonable(stats), error=error)
        RUNTIMES.pop(key, None)
        _PROGRESS.pop(key, None)
        _SLOTS.pop(key, None)
    with best_effort("progress artifact"):
        await aupdate_progress_artifact(artifact_id=artifact_id, progress=100.0)
    report = await asyncio.to_thread(repo.run_report, engine, run_id)
    await _publish_report(run_id, report)
    budget_stop = token_budget_spent()
    if budget_stop:
        logger.info("run %s: token budget of %s reached, no further shards claimed", run_id, max_tokens)
    logger.info("run %s finished: %s", run_id, totals)
    return {
        "run_id": run_id, "statuses": totals, "shards": shard_counter[0], "report": report,
        "token_budget_reached": budget_stop, **progress.snapshot(),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value == float("inf"):
        return None
    return value


async def _publish_report(run_id: int, report: dict[str, list[dict[str, Any]]]) -> None:
    """Keyed table artifacts, so each shows its history across runs in the UI."""
    titles = {
        "tiers": ("build-tiers", "Questions by tier and status (accepted paths per tier)"),
        "rejections": ("build-rejections", "Rejected questions by reason"),
        "rejected_paths": ("build-rejected-paths", "Paths not accepted, by origin and reason (audit_rejected_paths)"),
        "verifier_accuracy": ("build-verifier-accuracy", "Verifier accuracy per generator model and temperature"),
        "tokens": ("build-tokens", "Calls and tokens per stage and model"),
    }
    for name, (key, title) in titles.items():
        rows = report.get(name) or [{"note": "none"}]
        with best_effort(f"artifact {key}"):
            await acreate_table_artifact(table=_jsonable(rows), key=key, description=f"run {run_id}: {title}")
