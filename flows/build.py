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
import contextvars
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import httpx
from prefect import flow, get_run_logger
from prefect.artifacts import acreate_progress_artifact, acreate_table_artifact, aupdate_progress_artifact
from prefect.exceptions import PrefectHTTPStatusError, TerminationSignal
from prefect.states import Cancelled, Failed, State
from sqlalchemy import Engine

from reasonmed.config import PipelineConfig
from reasonmed.db import batch_repo, claims_repo, failures_repo, reopen_repo, reports_repo, runs_repo
from reasonmed.db.claims_repo import Priority
from reasonmed.db.write_behind import WriteBehind
from reasonmed.flows import run_names
from reasonmed.flows.best_effort import best_effort
from reasonmed.flows.run import RunContext
from reasonmed.flows.stopping import CANCELLED_VIA_API, StopRequest, current_stop, watch_cancellation
from reasonmed.ingest.loaders import QuestionSource
from reasonmed.llm.registry import LLMRegistry
from reasonmed.llm.types import LLMError
from reasonmed.pipeline import workers
from reasonmed.pipeline.budgets import over_budget
from reasonmed.pipeline.failures import Waiting, classify
from reasonmed.pipeline.outcome import BuildOutcome, HeldClaim, RunStatus, alarms_of
from reasonmed.pipeline.progress import BuildProgress, summary
from reasonmed.pipeline.stages import Carried, StageContext
from reasonmed.prompts import all_templates
from reasonmed.tasks.context import Handle
from reasonmed.tasks.pipeline import generate_task, resolve_task, summarize_task, verify_task

T = TypeVar("T")


@dataclass(frozen=True)
class BuildRun:
    """What one build's shards and questions share (handed to them in a ``Handle``)."""

    ctx: Handle[StageContext]
    progress: BuildProgress
    slots: asyncio.Semaphore
    question_attempts: int


# A display in the same process (``reasonmed run``) hands the build its counters, as it hands its stop
# request through ``flows.stopping.current_stop``; a build without one keeps its own.
current_progress: contextvars.ContextVar[BuildProgress | None] = contextvars.ContextVar(
    "reasonmed_build_progress", default=None
)


def default_questions_in_flight(cfg: PipelineConfig) -> int:
    """Enough questions that every endpoint's cap can stay full (a question often has one call out)."""
    return max(8, sum(ep.max_in_flight for ep in cfg.endpoints.values()))


def _go_on(result: T | Waiting) -> T:
    """A stage's result, or (its question waits on batch results) the stage's ``StageIncomplete`` again."""
    if isinstance(result, Waiting):
        raise result.incomplete
    return result


async def _process_question(run: BuildRun, question_id: int, carried: Carried) -> str:
    """The question's four stages, its state carried from one to the next; a failure is recorded against
    the question (and may set it aside) and costs only this question: it is never claimed again by this run."""
    progress, ctx, state = run.progress, run.ctx, Handle(carried)
    stage = "generate"
    async with run.slots:
        progress.in_flight += 1
        try:
            _go_on(await generate_task(ctx, question_id, state))
            stage = "verify"
            _go_on(await verify_task(ctx, question_id, state))
            stage = "resolve"
            status = _go_on(await resolve_task(ctx, question_id, state))
            if status != "rejected":
                stage = "summarize"
                status = _go_on(await summarize_task(ctx, question_id, state)) or status
        except Exception as exc:
            failure = classify(stage, exc)
            if failure.cls == "waiting":  # its requests are in a batch: it goes on once they are answered
                await asyncio.to_thread(
                    batch_repo.mark_waiting,
                    ctx.value.engine,
                    question_id,
                    stage=stage,
                    run_id=ctx.value.run_id,
                )
                progress.waiting += 1
                return "waiting"
            if not failure.counts:  # the endpoint's outage, not the question's: it stays pending
                return "endpoint_down"
            recorded = await asyncio.to_thread(
                failures_repo.record_failure,
                ctx.value.engine,
                question_id,
                failure,
                run_id=ctx.value.run_id,
                budget=run.question_attempts,
            )
            progress.settle("set_aside" if recorded.set_aside else "failed")
            get_run_logger().warning(
                "question %s %s at %s (%s failure %s of %s): %s",
                question_id,
                "set aside" if recorded.set_aside else "failed",
                stage,
                failure.cls,
                recorded.failures,
                run.question_attempts,
                failure.message,
            )
            return "set_aside" if recorded.set_aside else "failed"
        finally:
            progress.in_flight -= 1
    progress.settle(status)
    return status


@flow(name="build-shard", flow_run_name="shard-{shard_index}", persist_result=False)
async def build_shard(run: Handle[BuildRun], shard_index: int, question_ids: list[int]) -> dict[str, int]:
    """One child flow run per shard keeps each run's task graph well under the UI's 10,000 nodes. The
    shard's stored states are read in one go and carried by each question through its stages."""
    carried = await run.value.ctx.value.preload(question_ids)
    statuses = await asyncio.gather(*(_process_question(run.value, q, carried[q]) for q in question_ids))
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return counts


async def _run_shard(run: Handle[BuildRun], index: int, ids: list[int], attempts: int = 8) -> dict[str, int]:
    """Start a shard's child flow run, waiting out an overloaded Prefect API.

    A busy server (notably the temporary SQLite one) can answer 503 while it records a backlog of task
    events; the client's own retries may not outlast that. Re-running a shard is safe: every stage
    skips what the database already holds.
    """
    for attempt in range(attempts):
        try:
            return await build_shard(run, index, ids)
        except (PrefectHTTPStatusError, httpx.TransportError) as exc:
            if attempt == attempts - 1:
                raise
            delay = min(60.0, 2.0 ** (attempt + 1))
            get_run_logger().warning(
                "shard %s: Prefect API unavailable (%s); retrying in %.0f s", index, exc, delay
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def _collect_batches(registry: LLMRegistry) -> bool:
    """Store the results of every finished batch; False if a batch endpoint could not be asked (its
    questions wait on, and a later poll or run asks again)."""
    try:
        got = await registry.collect_batches(workers.provably_dead)
    except LLMError as exc:
        get_run_logger().warning("batches not polled: %s", exc)
        return False
    if got.stored or got.still_open:
        get_run_logger().info(
            "batches: %s collected (%s request(s) answered, %s failed), %s still open",
            got.stored,
            got.completed_requests,
            got.failed_requests,
            got.still_open,
        )
    return True


async def _wait_for_batches(registry: LLMRegistry, engine: Engine, deadline: float, poll_s: float) -> bool:
    """Poll the open batches until none is left (True) or the deadline passes (False)."""
    while True:
        if await _collect_batches(registry) and not await asyncio.to_thread(batch_repo.count_open, engine):
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await asyncio.sleep(min(poll_s, left))


async def _take_back_dead_claims(engine: Any, sources: Sequence[str] | None) -> None:
    """Free at once the claims of holders that provably died (same host, process gone); the others'
    claims run out with their lease, and the run's outcome reports them as held."""
    holders = await asyncio.to_thread(claims_repo.live_holders, engine, sources=sources)
    dead = [h.worker for h in holders if workers.provably_dead(h.worker)]
    if dead:
        freed = await asyncio.to_thread(claims_repo.release_holders, engine, dead)
        get_run_logger().info(
            "took back %s claim(s) of %s dead worker(s): %s", freed, len(dead), ", ".join(dead)
        )


@flow(name="build-dataset", flow_run_name=run_names.build_name, persist_result=False)
async def build_dataset(  # noqa: C901 - one run's set-up, loop and accounting, kept together
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
    logger = get_run_logger()
    if priority not in claims_repo.PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(claims_repo.PRIORITIES)} (got {priority!r})")
    stop = current_stop.get() or StopRequest()
    async with RunContext(config) as run:
        settings, cfg, engine, registry = run.settings, run.cfg, run.engine, run.registry
        await registry.preflight()  # one line naming the endpoint, before any question is claimed
        if registry.batch_endpoints:
            await _collect_batches(registry)
        for budget, context in over_budget(cfg, registry.contexts):
            logger.warning(
                "budget %s: such requests get a lower max_tokens, or are refused (context_exceeded)",
                budget.describe(context),
            )
        shard_size = shard_size or settings.shard_size
        wait_s = settings.batch_wait_s if batch_wait_s is None else batch_wait_s
        in_flight = questions_in_flight or settings.questions_in_flight or default_questions_in_flight(cfg)
        params = {
            "limit": limit,
            "sources": sources,
            "config": config,
            "shard_size": shard_size,
            "questions_in_flight": in_flight,
            "max_tokens": max_tokens,
            "priority": priority,
            "batch_wait_s": wait_s,
        }
        run_id = await run.start("build", params, [*all_templates(), *cfg.prompt_variants()])
        await run_names.name_current_run(f"build-run-{run_id}")
        writer = WriteBehind(engine, max_batch=settings.write_batch)
        ctx = StageContext(engine=engine, cfg=cfg, backends=registry, run_id=run_id, writer=writer)
        # Prompt-aware resume: finished questions judged under another verifier, ranker or summariser
        # (model or prompt) are reopened, so this run re-judges exactly what the new keys lack.
        reopened = await asyncio.to_thread(reopen_repo.reopen_stale, engine, ctx.keys, sources=sources)
        if reopened.question_ids:
            logger.info(
                "run %s: reopened %s finished question(s) whose judged stages changed (%s)",
                run_id,
                len(reopened.question_ids),
                ", ".join(f"{k} {v}" for k, v in reopened.stale.items()),
            )
        worker = worker_id or workers.worker_id(run_id)
        await _take_back_dead_claims(engine, sources)
        real_models = not cfg.simulated
        pending = await asyncio.to_thread(claims_repo.count_pending, engine, sources, real_models=real_models)
        if real_models:
            redo = await asyncio.to_thread(claims_repo.count_simulated_finished, engine, sources)
            if redo:
                logger.warning(
                    "%s questions in this database were finished only by SIMULATED models: they are not counted as "
                    "done and are redone with the real models of this run (their simulated paths are kept for "
                    "audit, never exported as real)",
                    redo,
                )
        # A display in the same process (``reasonmed run``) hands its progress in, as it does its stop.
        progress = current_progress.get() or BuildProgress()
        progress.total = min(pending, limit) if limit is not None else pending
        progress.usage = lambda: registry.usage
        progress.started = time.monotonic()
        shared = Handle(
            BuildRun(Handle(ctx), progress, asyncio.Semaphore(in_flight), settings.question_attempts)
        )
        logger.info(
            "run %s: %s questions to process (%s pending), %s in flight, shards of %s, %s paths per question",
            run_id,
            progress.total,
            pending,
            in_flight,
            shard_size,
            cfg.paths_per_question,
        )
        artifact_id = await acreate_progress_artifact(
            progress=0.0, key="build-progress", description=f"build run {run_id}"
        )

        stop.bind()
        remaining = [limit if limit is not None else float("inf")]
        held: set[int] = set()
        shard_counter = [0]
        totals: dict[str, int] = {}

        def token_budget_spent() -> bool:
            if max_tokens is None:
                return False
            snap = progress.snapshot()
            return snap["prompt_tokens"] + snap["completion_tokens"] >= max_tokens

        def check_breakers() -> bool:
            trips = registry.trips()
            if trips:
                stop.request("; ".join(t.describe() for t in trips), interrupted=False)
            return stop.requested

        claim = partial(
            claims_repo.claim_questions,
            engine,
            worker=worker,
            lease_s=settings.claim_lease_s,
            sources=sources,
        )

        async def run_claimed(ids: list[int]) -> None:
            """One claimed shard: its questions, the batches they wait on, its claims given back; except
            those of questions waiting on batches, which this run keeps (the heartbeat renews them) so no
            other worker takes them while it waits, and which go back when it ends."""
            held.update(ids)
            index = shard_counter[0]
            shard_counter[0] += 1
            counts = await _run_shard(shared, index, ids)
            await registry.submit_batches(worker=worker, run_id=run_id)  # what its questions wait on
            kept = (
                set(await asyncio.to_thread(batch_repo.waiting_in_run, engine, run_id))
                if counts.get("waiting")
                else set()
            )
            done = [q for q in ids if q not in kept]
            await asyncio.to_thread(claims_repo.release_claims, engine, worker=worker, question_ids=done)
            held.difference_update(done)
            for k, v in counts.items():
                totals[k] = totals.get(k, 0) + v

        async def shard_worker() -> None:
            while remaining[0] > 0 and not token_budget_spent() and not check_breakers():
                take = int(min(shard_size, remaining[0]))
                remaining[0] -= take  # reserve before awaiting, so concurrent shard workers never over-claim
                ids = await asyncio.to_thread(
                    claim, limit=take, priority=priority, run_id=run_id, real_models=real_models
                )
                remaining[0] += take - len(ids)
                if not ids:
                    return
                progress.claimed += len(ids)
                await run_claimed(ids)

        async def take_back(ids: list[int]) -> None:
            """The questions this run saw wait, once their batches are back: still held by this run (they
            count against ``limit`` once); one whose claim lapsed meanwhile is claimed again if it is free."""
            shards = deque(ids[i : i + shard_size] for i in range(0, len(ids), shard_size))

            async def one_worker() -> None:
                while shards and not check_breakers():
                    listed = shards.popleft()
                    ours = [q for q in listed if q in held]
                    ours += await asyncio.to_thread(
                        claims_repo.claim_listed,
                        engine,
                        worker=worker,
                        question_ids=[q for q in listed if q not in held],
                        lease_s=settings.claim_lease_s,
                    )
                    if ours:
                        await run_claimed(sorted(ours))

            await asyncio.gather(*(one_worker() for _ in range(n_shard_workers)))

        async def heartbeat() -> None:
            """Renew every claim this run holds, from the moment it is taken (a child flow run can take a
            while to start on a busy Prefect server) until it is released; watch the endpoints' breakers."""
            lease = settings.claim_lease_s
            renew_every = lease / 3
            waited = 0.0
            while True:
                await asyncio.sleep(1.0)
                check_breakers()
                waited += 1.0
                if waited >= renew_every:
                    waited = 0.0
                    with best_effort("claim heartbeat"):
                        await asyncio.to_thread(
                            claims_repo.renew_claims,
                            engine,
                            worker=worker,
                            question_ids=sorted(held),
                            lease_s=lease,
                        )

        async def report_progress() -> None:
            while True:
                await asyncio.sleep(5)
                with best_effort("progress artifact"):
                    await aupdate_progress_artifact(
                        artifact_id=artifact_id,
                        progress=100.0 * progress.fraction,
                        description=f"build run {run_id}: {summary(progress.snapshot())}",
                    )

        background = [
            asyncio.create_task(report_progress()),
            asyncio.create_task(heartbeat()),
            asyncio.create_task(watch_cancellation(run.flow_run_id, stop)),
        ]
        # Enough shards at once that the question semaphore, not shard boundaries, limits concurrency.
        n_shard_workers = max(1, -(-in_flight // shard_size)) + 1

        async def all_shards() -> None:
            await asyncio.gather(*(shard_worker() for _ in range(n_shard_workers)))

        async def rounds() -> None:
            """Every claimable question once; then, while questions wait on batches and the run may wait for
            them (``batch_wait_s``), wait for the batches and take those questions again."""
            deadline = time.monotonic() + wait_s
            await all_shards()
            while wait_s > 0 and registry.batch_endpoints and not stop.requested:
                if not await asyncio.to_thread(batch_repo.waiting_in_run, engine, run_id):
                    return
                if not await asyncio.to_thread(batch_repo.count_open, engine):
                    # Questions wait but no batch is open: their submission failed; rounds would only
                    # repeat it until the deadline. A later run asks again.
                    logger.warning("run %s: questions wait on batches that were not submitted", run_id)
                    return
                if not await _wait_for_batches(registry, engine, deadline, settings.batch_poll_s):
                    logger.info(
                        "run %s: its batches are not all back within --batch-wait; a later run goes on",
                        run_id,
                    )
                    return
                freed = await asyncio.to_thread(batch_repo.release_waits, engine, run_id)
                progress.waiting -= len(freed)
                await take_back(freed)

        work = asyncio.ensure_future(rounds())
        try:
            stopper = asyncio.ensure_future(stop.wait())
            waiters: set[asyncio.Future[Any]] = {work, stopper}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not work.done():  # stop requested: cancel the in-flight questions (and their requests)
                logger.warning("run %s: stopping: %s", run_id, stop.reason)
                work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            check_breakers()
        except (asyncio.CancelledError, TerminationSignal) as exc:
            # Stopped from outside (a deployment's process signalled, the loop shut down): the same stop.
            stop.request(f"{type(exc).__name__} (the process is being stopped)", interrupted=True)
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            raise
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            progress.finished = True
            await writer.aclose()  # stage writes already handed in are committed before the claims go back
            if registry.batch_endpoints:
                with best_effort("batch submission"):  # requests queued when the run stopped
                    await registry.submit_batches(worker=worker, run_id=run_id)
            # Whatever this run still holds goes back at once: a rerun needs no lease to run out.
            await asyncio.to_thread(claims_repo.release_claims, engine, worker=worker)
            if stop.requested:  # how it ended; any other exception ends it "failed" (RunContext)
                run.end("interrupted" if stop.interrupted else "failed", stop.reason)
            run.stats = _jsonable({**progress.snapshot(), "statuses": totals, "shards": shard_counter[0]})
    with best_effort("progress artifact"):
        await aupdate_progress_artifact(
            artifact_id=artifact_id,
            progress=100.0,
            description=f"build run {run_id}: {summary(progress.snapshot())}",
        )
    report = await asyncio.to_thread(reports_repo.run_report, engine, run_id)
    report["set_aside"] = await asyncio.to_thread(failures_repo.list_set_aside, engine, run_id=run_id)
    if registry.batch_endpoints:
        report["open_batches"] = await asyncio.to_thread(batch_repo.list_open, engine)
        waiting = await asyncio.to_thread(batch_repo.waiting_in_run, engine, run_id)
        report["waiting"] = [{"question_id": q} for q in waiting]
    await _publish_report(run_id, report)
    budget_stop = token_budget_spent()
    if budget_stop:
        logger.info("run %s: token budget of %s reached, no further shards claimed", run_id, max_tokens)
    outcome = await _outcome(run, worker, sources, progress, stop, budget_stop, real_models)
    result = {
        "run_id": run_id,
        "statuses": totals,
        "shards": shard_counter[0],
        "report": report,
        "token_budget_reached": budget_stop,
        **progress.snapshot(),
        "outcome": outcome.as_dict(),
    }
    for line in outcome.lines():
        (logger.info if outcome.ok else logger.warning)("%s", line)
    if run.status == "completed" and not outcome.ok:
        await asyncio.to_thread(
            runs_repo.finish_run,
            engine,
            run_id,
            status="failed",
            stats=_jsonable(run.stats),
            error=outcome.verdict(),
        )
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


async def _outcome(
    run: RunContext,
    worker: str,
    sources: Sequence[str] | None,
    progress: BuildProgress,
    stop: StopRequest,
    budget_stop: bool,
    real_models: bool,
) -> BuildOutcome:
    engine, run_id = run.engine, run.run_id
    assert run_id is not None
    failures = await asyncio.to_thread(failures_repo.run_failures, engine, run_id)
    pending = await asyncio.to_thread(claims_repo.count_pending, engine, sources, real_models=real_models)
    holders = await asyncio.to_thread(claims_repo.live_holders, engine, except_worker=worker, sources=sources)
    aside_total = await asyncio.to_thread(failures_repo.count_set_aside, engine)
    unusable = {
        u.role: [u.outputs, u.unusable]
        for u in await asyncio.to_thread(reports_repo.unusable_outputs, engine, run_id)
    }
    alarms = alarms_of(unusable, run.settings.unusable_alarm_rate)
    waiting = len(await asyncio.to_thread(batch_repo.waiting_in_run, engine, run_id))
    open_batches = await asyncio.to_thread(batch_repo.count_open, engine)
    status: RunStatus
    if stop.requested:
        status = "interrupted" if stop.interrupted else "endpoint_down"
    elif failures.set_aside or failures.failed:
        status = "incomplete"
    elif alarms:
        status = "degraded"
    else:
        status = "done"
    return BuildOutcome(
        run_id=run_id,
        status=status,
        done=progress.done,
        accepted=progress.accepted,
        rejected=progress.rejected,
        set_aside=failures.set_aside,
        failed=failures.failed,
        pending=pending,
        held=[HeldClaim.of(h) for h in holders],
        stop_reason=stop.reason,
        token_budget_reached=budget_stop,
        set_aside_total=aside_total,
        unusable=unusable,
        alarms=alarms,
        waiting=waiting,
        open_batches=open_batches,
    )


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
            await acreate_table_artifact(table=_jsonable(rows), key=key, description=f"run {run_id}: {title}")
