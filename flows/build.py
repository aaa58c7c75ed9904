"""The build flow: grow the dataset by running every unfinished question through the ReasonMed DAG.

The loop itself (claims, shards, heartbeat, batch rounds, outcome) is ``reasonmed.pipeline.build.BuildLoop``;
this flow gives it what Prefect provides and shows: every question's four stages as tasks, every claimed
shard as a child flow run (keeping each run's task graph well under the UI's 10,000 nodes), a progress
artifact, a watch for cancellation through the API, table artifacts of the run's report, and a final state
that says whether the work got done. Tasks are async, persist nothing and cache nothing: Postgres is the
store.
"""

from __future__ import annotations

import asyncio
import contextvars
from functools import partial
from typing import Any

import httpx
from prefect import flow, get_run_logger
from prefect.artifacts import acreate_progress_artifact, acreate_table_artifact, aupdate_progress_artifact
from prefect.exceptions import PrefectHTTPStatusError
from prefect.states import Cancelled, Failed, State

from reasonmed.db import runs_repo
from reasonmed.db.claims_repo import Priority
from reasonmed.db.write_behind import WriteBehind
from reasonmed.flows import run_names
from reasonmed.flows.best_effort import best_effort
from reasonmed.flows.run import RunContext
from reasonmed.flows.stopping import CANCELLED_VIA_API, StopRequest, current_stop, watch_cancellation
from reasonmed.ingest.loaders import QuestionSource
from reasonmed.pipeline import workers
from reasonmed.pipeline.build import BuildLoop, BuildRequest, Counts, StageCalls, jsonable, open_endpoints
from reasonmed.pipeline.context import StageContext
from reasonmed.pipeline.progress import BuildProgress, summary
from reasonmed.prompts import all_templates
from reasonmed.tasks.context import Handle
from reasonmed.tasks.pipeline import generate_task, resolve_task, summarize_task, verify_task

# A display in the same process (``reasonmed run``) hands the build its counters, as it hands its stop
# request through ``flows.stopping.current_stop``; a build without one keeps its own.
current_progress: contextvars.ContextVar[BuildProgress | None] = contextvars.ContextVar(
    "reasonmed_build_progress", default=None
)


def stage_tasks(ctx: StageContext) -> StageCalls:
    """The four stages as Prefect tasks, sharing one handle on the run's stage context."""
    run = Handle(ctx)
    return StageCalls(
        generate=lambda q, carried: generate_task(run, q, Handle(carried)),
        verify=lambda q, carried: verify_task(run, q, Handle(carried)),
        resolve=lambda q, carried: resolve_task(run, q, Handle(carried)),
        summarize=lambda q, carried: summarize_task(run, q, Handle(carried)),
    )


@flow(name="build-shard", flow_run_name="shard-{shard_index}", persist_result=False)
async def build_shard(loop: Handle[BuildLoop], shard_index: int, question_ids: list[int]) -> Counts:
    """One claimed shard's questions, each through its four stage tasks."""
    return await loop.value.work_shard(question_ids)


async def _run_shard(loop: Handle[BuildLoop], index: int, ids: list[int], attempts: int = 8) -> Counts:
    """Start a shard's child flow run, waiting out an overloaded Prefect API.

    A busy server (notably the temporary SQLite one) can answer 503 while it records a backlog of task
    events; the client's own retries may not outlast that. Re-running a shard is safe: every stage
    skips what the database already holds.
    """
    for attempt in range(attempts):
        try:
            return await build_shard(loop, index, ids)
        except (PrefectHTTPStatusError, httpx.TransportError) as exc:
            if attempt == attempts - 1:
                raise
            delay = min(60.0, 2.0 ** (attempt + 1))
            get_run_logger().warning(
                "shard %s: Prefect API unavailable (%s); retrying in %.0f s", index, exc, delay
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def _report_progress(
    artifact_id: Any, run_id: int, progress: BuildProgress, every_s: float = 5
) -> None:
    while True:
        await asyncio.sleep(every_s)
        await _show_progress(artifact_id, run_id, progress)


async def _show_progress(artifact_id: Any, run_id: int, progress: BuildProgress) -> None:
    with best_effort("progress artifact"):
        await aupdate_progress_artifact(
            artifact_id=artifact_id,
            progress=100.0 * progress.fraction,
            description=f"build run {run_id}: {summary(progress.snapshot())}",
        )


@flow(name="build-dataset", flow_run_name=run_names.build_name, persist_result=False)
async def build_dataset(
    limit: int | None = None,
    sources: list[QuestionSource] | None = None,
    config: str | None = None,
    shard_size: int | None = None,
    questions_in_flight: int | None = None,
    worker_id: str | None = None,
    max_tokens: int | None = None,
    priority: Priority = "fifo",
    batch_wait_s: float | None = None,
) -> dict[str, Any] | State[Any]:
    """Process unfinished questions through the ReasonMed stages, never benchmark-test items.

    Every endpoint is asked once before anything is claimed; the run stops early on SIGTERM/SIGINT, on
    cancellation through the Prefect API, or when an endpoint's circuit breaker opens. It ends Failed
    (or Cancelled), with its result as the state's data, unless every question it took was finished.

    Args:
        limit: Most questions this run processes; empty means every unfinished one.
        sources: Process only questions of these sources; empty means all.
        config: Pipeline YAML on the worker; empty means REASONMED_PIPELINE_CONFIG, else the simulator.
        shard_size: Questions per claimed shard (one child flow run each); empty means
            REASONMED_SHARD_SIZE.
        questions_in_flight: Questions processed at once; empty means REASONMED_QUESTIONS_IN_FLIGHT or a
            default from the endpoints' concurrency.
        worker_id: Name this worker's claims carry; empty means host and process id.
        max_tokens: Stop claiming new shards once this run's prompt + completion tokens reach this;
            claimed shards finish, so a run may overshoot by the shards in flight. Empty means no budget.
        priority: Claim order: fifo takes the lowest ids first, round-robin takes sources in turn.
        batch_wait_s: Endpoints with mode batch: seconds to wait for this run's batches and go on with
            their questions in the same run; empty means REASONMED_BATCH_WAIT_S (0: submit and end).
    """
    log = get_run_logger()
    stop = current_stop.get() or StopRequest()
    async with RunContext(config) as run:
        request = BuildRequest.resolve(
            run.settings,
            run.cfg,
            limit=limit,
            sources=sources,
            shard_size=shard_size,
            questions_in_flight=questions_in_flight,
            max_tokens=max_tokens,
            priority=priority,
            batch_wait_s=batch_wait_s,
        )
        await open_endpoints(run.registry, run.cfg, log)  # one line naming a bad endpoint, nothing claimed
        run_id = await run.start(
            "build", request.parameters(config), [*all_templates(), *run.cfg.prompt_variants()]
        )
        await run_names.name_current_run(f"build-run-{run_id}")
        writer = WriteBehind(run.engine, max_batch=run.settings.write_batch)
        ctx = StageContext(
            engine=run.engine, cfg=run.cfg, backends=run.registry, run_id=run_id, writer=writer
        )
        loop = BuildLoop(
            ctx=ctx,
            registry=run.registry,
            settings=run.settings,
            request=request,
            stages=stage_tasks(ctx),
            stop=stop,
            progress=current_progress.get() or BuildProgress(),
            worker=worker_id or workers.worker_id(run_id),
            log=log,
        )
        await loop.prepare()
        artifact_id = await acreate_progress_artifact(
            progress=0.0, key="build-progress", description=f"build run {run_id}"
        )
        try:
            await loop.run(
                partial(_run_shard, Handle(loop)),
                beside=[
                    _report_progress(artifact_id, run_id, loop.progress),
                    watch_cancellation(run.flow_run_id, stop),
                ],
            )
        finally:
            if loop.ended:  # how a stop ended it; any other exception ends it "failed" (RunContext)
                run.end(*loop.ended)
            run.stats = loop.stats()
    await _show_progress(artifact_id, run_id, loop.progress)
    await loop.refresh_audits()
    report = await loop.report()
    await _publish_report(run_id, report)
    outcome = await loop.outcome()
    if outcome.token_budget_reached:
        log.info("run %s: token budget of %s reached, no further shards claimed", run_id, max_tokens)
    for line in outcome.lines():
        (log.info if outcome.ok else log.warning)("%s", line)
    if run.status == "completed" and not outcome.ok:
        await asyncio.to_thread(
            runs_repo.finish_run,
            run.engine,
            run_id,
            status="failed",
            stats=run.stats,
            error=outcome.verdict(),
        )
    result = loop.result(outcome, report)
    if outcome.ok:
        return result
    # Not all its work got done: the flow run ends Failed (Cancelled when the UI or API asked), with the
    # verdict as its message and the result as its data (``build_result``).
    if stop.reason == CANCELLED_VIA_API:
        return Cancelled(message=outcome.verdict(), data=result)
    return Failed(message=outcome.verdict(), data=result)


async def build_result(state: State[Any]) -> dict[str, Any]:
    """A build's result from its final state (``build_dataset(..., return_state=True)``), also when it
    ended Failed or Cancelled with its work not done (``result["outcome"]`` says why); a run that could
    not start or crashed raises its exception."""
    data = await state.aresult(raise_on_failure=False)
    if isinstance(data, dict) and "outcome" in data:
        return data
    if isinstance(data, BaseException):
        raise data
    raise RuntimeError(f"the build ended {state.type.value}: {state.message}")


async def _publish_report(run_id: int, report: dict[str, list[dict[str, Any]]]) -> None:
    """Keyed table artifacts, so each shows its history across runs in the UI."""
    titles = {
        "tiers": ("build-tiers", "Questions by tier and status (accepted paths per tier)"),
        "rejections": ("build-rejections", "Rejected questions by reason"),
        "rejected_paths": (
            "build-rejected-paths",
            "Paths not accepted, by origin and reason (audit_rejected_paths)",
        ),
        "verifier_accuracy": (
            "build-verifier-accuracy",
            "Verifier accuracy per generator model and temperature",
        ),
        "tokens": ("build-tokens", "Calls and tokens per stage and model"),
        "set_aside": (
            "build-set-aside",
            "Questions set aside by this run, with stage and reason (audit_set_aside)",
        ),
        "open_batches": ("build-open-batches", "Batches submitted and not yet collected (audit_batches)"),
        "waiting": ("build-waiting", "Questions waiting on batch results; a later run goes on with them"),
    }
    for name, (key, title) in titles.items():
        if name not in report and name in ("open_batches", "waiting"):
            continue  # no endpoint with mode batch
        rows = report.get(name) or [{"note": "none"}]
        with best_effort(f"artifact {key}"):
            await acreate_table_artifact(table=jsonable(rows), key=key, description=f"run {run_id}: {title}")
