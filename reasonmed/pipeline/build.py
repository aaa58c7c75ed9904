"""One build run's loop: claim shards, work their questions, keep the claims alive, take back the questions
whose batches came back, give everything back at the end and say what happened.

The Prefect flow (``flows/build.py``) wraps it and hands it what only Prefect has: the stage tasks
(``StageCalls``), a way to run a shard as a child flow run (``ShardRunner``), its logger and the
background work that reports to the UI. Everything else (when to claim, how much, when to stop, what a
failure costs a question) is decided here, without Prefect, so it reads in one place and can be driven
without a flow.

Shape, chosen for throughput: questions are claimed shard by shard (a lease in the database, so several
workers share one pending set and a dead worker's questions come back); inside a shard every question is
its own coroutine running four stages; a semaphore keeps enough questions in flight to fill every
endpoint's cap, and the per-endpoint caps themselves live in the LLM clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from reasonmed.best_effort import Log, best_effort
from reasonmed.config import PipelineConfig, Settings
from reasonmed.db import audit_rollups, batch_repo, claims_repo, failures_repo, reopen_repo, reports_repo
from reasonmed.db.claims_repo import Priority
from reasonmed.llm.registry import LLMRegistry
from reasonmed.llm.types import LLMError
from reasonmed.pipeline import workers
from reasonmed.pipeline.budgets import over_budget
from reasonmed.pipeline.context import Carried, StageContext
from reasonmed.pipeline.failures import Waiting, classify
from reasonmed.pipeline.outcome import BuildOutcome, HeldClaim, RunStatus, alarms_of
from reasonmed.pipeline.progress import BuildProgress
from reasonmed.pipeline.stop import StopRequest
from reasonmed.roles import QuestionStatus

T = TypeVar("T")
Counts = dict[str, int]
ShardRunner = Callable[[int, list[int]], Awaitable[Counts]]
"""Runs one claimed shard (its index, its question ids) and counts its questions' statuses."""


@dataclass(frozen=True)
class StageCalls:
    """A question's four stages as the flow runs them (Prefect tasks), each given the question id and
    its carried state; a stage whose requests wait in a batch returns ``Waiting``."""

    generate: Callable[[int, Carried], Awaitable[int | Waiting]]
    verify: Callable[[int, Carried], Awaitable[Waiting | None]]
    resolve: Callable[[int, Carried], Awaitable[str | Waiting]]
    summarize: Callable[[int, Carried], Awaitable[str | Waiting | None]]


@dataclass(frozen=True)
class BuildRequest:
    """What one build is asked to do, every default resolved (``resolve``)."""

    limit: int | None
    sources: list[str] | None
    shard_size: int
    questions_in_flight: int
    max_tokens: int | None
    priority: Priority
    batch_wait_s: float

    @classmethod
    def resolve(
        cls,
        settings: Settings,
        cfg: PipelineConfig,
        *,
        limit: int | None = None,
        sources: Sequence[str] | None = None,
        shard_size: int | None = None,
        questions_in_flight: int | None = None,
        max_tokens: int | None = None,
        priority: Priority = "fifo",
        batch_wait_s: float | None = None,
    ) -> BuildRequest:
        """The flow's parameters with the settings' and endpoints' defaults filled in."""
        check_priority(priority)
        return cls(
            limit=limit,
            sources=list(sources) if sources else None,
            shard_size=shard_size or settings.shard_size,
            questions_in_flight=questions_in_flight
            or settings.questions_in_flight
            or default_questions_in_flight(cfg),
            max_tokens=max_tokens,
            priority=priority,
            batch_wait_s=settings.batch_wait_s if batch_wait_s is None else batch_wait_s,
        )

    def parameters(self, config: str | None) -> dict[str, Any]:
        """What the run's row records as its parameters."""
        return {
            "limit": self.limit,
            "sources": self.sources,
            "config": config,
            "shard_size": self.shard_size,
            "questions_in_flight": self.questions_in_flight,
            "max_tokens": self.max_tokens,
            "priority": self.priority,
            "batch_wait_s": self.batch_wait_s,
        }


def check_priority(priority: str) -> None:
    if priority not in claims_repo.PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(claims_repo.PRIORITIES)} (got {priority!r})")


def default_questions_in_flight(cfg: PipelineConfig) -> int:
    """Enough questions that every endpoint's cap can stay full (a question often has one call out)."""
    return max(8, sum(ep.total_in_flight for ep in cfg.endpoints.values()))


async def open_endpoints(registry: LLMRegistry, cfg: PipelineConfig, log: Log) -> None:
    """Ask every endpoint once before anything is claimed (one line naming a bad one), collect finished
    batches, and warn of requests the endpoints' contexts cannot hold."""
    await registry.preflight()
    if registry.batch_endpoints:
        await collect_batches(registry, log)
    for budget, context in over_budget(cfg, registry.contexts):
        log.warning(
            "budget %s: such requests get a lower max_tokens, or are refused (context_exceeded)",
            budget.describe(context),
        )


async def collect_batches(registry: LLMRegistry, log: Log) -> bool:
    """Store the results of every finished batch; False if a batch endpoint could not be asked (its
    questions wait on, and a later poll or run asks again)."""
    try:
        got = await registry.collect_batches(workers.provably_dead)
    except LLMError as exc:
        log.warning("batches not polled: %s", exc)
        return False
    if got.stored or got.still_open:
        log.info(
            "batches: %s collected (%s request(s) answered, %s failed), %s still open",
            got.stored,
            got.completed_requests,
            got.failed_requests,
            got.still_open,
        )
    return True


def _go_on(result: T | Waiting) -> T:
    """A stage's result, or (its question waits on batch results) the stage's ``StageIncomplete`` again."""
    if isinstance(result, Waiting):
        raise result.incomplete
    return result


class BuildLoop:
    """One build run from its first claim to its outcome (``prepare``, ``run``, ``report``, ``outcome``)."""

    def __init__(
        self,
        *,
        ctx: StageContext,
        registry: LLMRegistry,
        settings: Settings,
        request: BuildRequest,
        stages: StageCalls,
        stop: StopRequest,
        progress: BuildProgress,
        worker: str,
        log: Log,
    ) -> None:
        assert ctx.run_id is not None, "the run's row is recorded first"
        self.ctx, self.registry, self.settings, self.request = ctx, registry, settings, request
        self.stages, self.stop, self.progress, self.worker, self.log = stages, stop, progress, worker, log
        self.run_id: int = ctx.run_id
        self.engine = ctx.engine
        self.real_models = not ctx.cfg.simulated
        self.totals: Counts = {}  # question statuses over every shard
        self.shards = 0
        self.held: set[int] = set()  # claims this run holds, renewed by the heartbeat
        self._remaining: float = request.limit if request.limit is not None else float("inf")
        self._slots = asyncio.Semaphore(request.questions_in_flight)
        # Enough shards at once that the question semaphore, not shard boundaries, limits concurrency.
        self._shard_workers = max(1, -(-request.questions_in_flight // request.shard_size)) + 1

    # -- before the loop ----------------------------------------------------------------------------------
    async def prepare(self) -> None:
        """Reopen finished work whose judges changed, take back dead workers' claims, count the work."""
        engine, sources = self.engine, self.request.sources
        # Prompt-aware resume: finished questions judged under another verifier, ranker or summariser
        # (model or prompt) are reopened, so this run re-judges exactly what the new keys lack.
        reopened = await asyncio.to_thread(reopen_repo.reopen_stale, engine, self.ctx.keys, sources=sources)
        if reopened.question_ids:
            self.log.info(
                "run %s: reopened %s finished question(s) whose judged stages changed (%s)",
                self.run_id,
                len(reopened.question_ids),
                ", ".join(f"{k} {v}" for k, v in reopened.stale.items()),
            )
        await self._take_back_dead_claims()
        pending = await asyncio.to_thread(
            claims_repo.count_pending, engine, sources, real_models=self.real_models
        )
        if self.real_models:
            redo = await asyncio.to_thread(claims_repo.count_simulated_finished, engine, sources)
            if redo:
                self.log.warning(
                    "%s questions in this database were finished only by SIMULATED models: they are not counted "
                    "as done and are redone with the real models of this run (their simulated paths are kept "
                    "for audit, never exported as real)",
                    redo,
                )
        limit, progress = self.request.limit, self.progress
        progress.total = min(pending, limit) if limit is not None else pending
        progress.usage = lambda: self.registry.usage
        progress.started = time.monotonic()
        self.log.info(
            "run %s: %s questions to process (%s pending), %s in flight, shards of %s, %s paths per question",
            self.run_id,
            progress.total,
            pending,
            self.request.questions_in_flight,
            self.request.shard_size,
            self.ctx.cfg.paths_per_question,
        )

    async def _take_back_dead_claims(self) -> None:
        """Free at once the claims of holders that provably died (same host, process gone); the others'
        claims run out with their lease, and the run's outcome reports them as held."""
        holders = await asyncio.to_thread(claims_repo.live_holders, self.engine, sources=self.request.sources)
        dead = [h.worker for h in holders if workers.provably_dead(h.worker)]
        if dead:
            freed = await asyncio.to_thread(claims_repo.release_holders, self.engine, dead)
            self.log.info("took back %s claim(s) of %s dead worker(s): %s", freed, len(dead), ", ".join(dead))

    # -- one question, one shard ----------------------------------------------------------------------
    async def work_shard(self, question_ids: list[int]) -> Counts:
        """A claimed shard's questions, their stored states read in one go and carried stage to stage."""
        carried = await self.ctx.preload(question_ids)
        statuses = await asyncio.gather(*(self.work_question(q, carried[q]) for q in question_ids))
        counts: Counts = {}
        for s in statuses:
            counts[s] = counts.get(s, 0) + 1
        return counts

    async def work_question(self, question_id: int, carried: Carried) -> QuestionStatus:
        """The question's four stages; a failure is recorded against the question (and may set it aside)
        and costs only this question: it is never claimed again by this run."""
        stage = "generate"
        async with self._slots:
            self.progress.in_flight += 1
            try:
                _go_on(await self.stages.generate(question_id, carried))
                stage = "verify"
                _go_on(await self.stages.verify(question_id, carried))
                stage = "resolve"
                status = QuestionStatus(_go_on(await self.stages.resolve(question_id, carried)))
                if status is not QuestionStatus.REJECTED:
                    stage = "summarize"
                    summarized = _go_on(await self.stages.summarize(question_id, carried))
                    status = QuestionStatus(summarized) if summarized else status
            except Exception as exc:
                return await self._failed(question_id, stage, exc)
            finally:
                self.progress.in_flight -= 1
        self.progress.settle(status)
        return status

    async def _failed(self, question_id: int, stage: str, exc: Exception) -> QuestionStatus:
        failure = classify(stage, exc)
        if failure.cls == "waiting":  # its requests are in a batch: it goes on once they are answered
            await asyncio.to_thread(
                batch_repo.mark_waiting, self.engine, question_id, stage=stage, run_id=self.run_id
            )
            self.progress.waiting += 1
            return QuestionStatus.WAITING
        if not failure.counts:  # the endpoint's outage, not the question's: it stays pending
            return QuestionStatus.ENDPOINT_DOWN
        attempts = self.settings.question_attempts
        recorded = await asyncio.to_thread(
            failures_repo.record_failure,
            self.engine,
            question_id,
            failure,
            run_id=self.run_id,
            budget=attempts,
        )
        status = QuestionStatus.SET_ASIDE if recorded.set_aside else QuestionStatus.FAILED
        self.progress.settle(status)
        self.log.warning(
            "question %s %s at %s (%s failure %s of %s): %s",
            question_id,
            "set aside" if recorded.set_aside else "failed",
            stage,
            failure.cls,
            recorded.failures,
            attempts,
            failure.message,
        )
        return status

    # -- the loop ---------------------------------------------------------------------------------------
    def token_budget_spent(self) -> bool:
        if self.request.max_tokens is None:
            return False
        snap = self.progress.snapshot()
        return snap["prompt_tokens"] + snap["completion_tokens"] >= self.request.max_tokens

    def check_breakers(self) -> bool:
        """An endpoint whose circuit breaker opened stops the run; True once a stop is requested."""
        trips = self.registry.trips()
        if trips:
            self.stop.request("; ".join(t.describe() for t in trips), interrupted=False)
        return self.stop.requested

    async def run(self, run_shard: ShardRunner, beside: Sequence[Coroutine[Any, Any, None]] = ()) -> None:
        """Every claimable question once, then the rounds of questions back from their batches; until the
        work is done or a stop is requested (which cancels the questions in flight). ``beside``: the
        caller's background work (progress reports, a cancellation watch), cancelled when the loop ends.
        Whatever happens, the stage writes are committed, queued batch requests submitted and every
        claim given back, so a rerun resumes at once."""
        self.stop.bind()
        background = [asyncio.create_task(c) for c in (*beside, self._heartbeat())]
        work = asyncio.ensure_future(self._rounds(run_shard))
        try:
            stopper = asyncio.ensure_future(self.stop.wait())
            await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not work.done():  # stop requested: cancel the in-flight questions (and their requests)
                self.log.warning("run %s: stopping: %s", self.run_id, self.stop.reason)
                work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            self.check_breakers()
        except Exception:
            raise
        except BaseException as exc:
            # Stopped from outside (cancelled, the process signalled, the loop shut down): the same stop.
            self.stop.request(f"{type(exc).__name__} (the process is being stopped)", interrupted=True)
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            raise
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._give_back()

    async def _give_back(self) -> None:
        self.progress.finished = True
        if self.ctx.writer is not None:  # stage writes handed in are committed before the claims go back
            await self.ctx.writer.aclose()
        if self.registry.batch_endpoints:
            with best_effort("batch submission", self.log):  # requests queued when the run stopped
                await self.registry.submit_batches(worker=self.worker, run_id=self.run_id)
        # Whatever this run still holds goes back at once: a rerun needs no lease to run out.
        await asyncio.to_thread(claims_repo.release_claims, self.engine, worker=self.worker)

    async def _rounds(self, run_shard: ShardRunner) -> None:
        """Every claimable question once; then, while questions wait on batches and the run may wait for
        them (``batch_wait_s``), wait for the batches and take those questions again."""
        wait_s = self.request.batch_wait_s
        deadline = time.monotonic() + wait_s
        await asyncio.gather(*(self._claiming_worker(run_shard) for _ in range(self._shard_workers)))
        while wait_s > 0 and self.registry.batch_endpoints and not self.stop.requested:
            if not await asyncio.to_thread(batch_repo.waiting_in_run, self.engine, self.run_id):
                return
            if not await asyncio.to_thread(batch_repo.count_open, self.engine):
                # Questions wait but no batch is open: their submission failed; rounds would only
                # repeat it until the deadline. A later run asks again.
                self.log.warning("run %s: questions wait on batches that were not submitted", self.run_id)
                return
            if not await self._wait_for_batches(deadline):
                self.log.info(
                    "run %s: its batches are not all back within --batch-wait; a later run goes on",
                    self.run_id,
                )
                return
            freed = await asyncio.to_thread(batch_repo.release_waits, self.engine, self.run_id)
            self.progress.waiting -= len(freed)
            await self._take_back(freed, run_shard)

    async def _claiming_worker(self, run_shard: ShardRunner) -> None:
        """Claim a shard, work it, repeat: until the limit, the token budget or a stop."""
        while self._remaining > 0 and not self.token_budget_spent() and not self.check_breakers():
            take = int(min(self.request.shard_size, self._remaining))
            self._remaining -= take  # reserve before awaiting, so concurrent workers never over-claim
            ids = await asyncio.to_thread(
                claims_repo.claim_questions,
                self.engine,
                worker=self.worker,
                lease_s=self.settings.claim_lease_s,
                sources=self.request.sources,
                limit=take,
                priority=self.request.priority,
                run_id=self.run_id,
                real_models=self.real_models,
            )
            self._remaining += take - len(ids)
            if not ids:
                return
            self.progress.claimed += len(ids)
            await self._run_claimed(ids, run_shard)

    async def _run_claimed(self, ids: list[int], run_shard: ShardRunner) -> None:
        """One claimed shard: its questions, the batches they wait on, its claims given back; except
        those of questions waiting on batches, which this run keeps (the heartbeat renews them) so no
        other worker takes them while it waits, and which go back when it ends."""
        self.held.update(ids)
        index = self.shards
        self.shards += 1
        counts = await run_shard(index, ids)
        await self.registry.submit_batches(worker=self.worker, run_id=self.run_id)  # what they wait on
        kept = (
            set(await asyncio.to_thread(batch_repo.waiting_in_run, self.engine, self.run_id))
            if counts.get(QuestionStatus.WAITING)
            else set()
        )
        done = [q for q in ids if q not in kept]
        await asyncio.to_thread(
            claims_repo.release_claims, self.engine, worker=self.worker, question_ids=done
        )
        self.held.difference_update(done)
        for k, v in counts.items():
            self.totals[k] = self.totals.get(k, 0) + v

    async def _wait_for_batches(self, deadline: float) -> bool:
        """Poll the open batches until none is left (True) or the deadline passes (False)."""
        while True:
            if await collect_batches(self.registry, self.log) and not await asyncio.to_thread(
                batch_repo.count_open, self.engine
            ):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(self.settings.batch_poll_s, left))

    async def _take_back(self, ids: list[int], run_shard: ShardRunner) -> None:
        """The questions this run saw wait, once their batches are back: still held by this run (they
        count against ``limit`` once); one whose claim lapsed meanwhile is claimed again if it is free."""
        size = self.request.shard_size
        shards = deque(ids[i : i + size] for i in range(0, len(ids), size))

        async def one_worker() -> None:
            while shards and not self.check_breakers():
                listed = shards.popleft()
                ours = [q for q in listed if q in self.held]
                ours += await asyncio.to_thread(
                    claims_repo.claim_listed,
                    self.engine,
                    worker=self.worker,
                    question_ids=[q for q in listed if q not in self.held],
                    lease_s=self.settings.claim_lease_s,
                )
                if ours:
                    await self._run_claimed(sorted(ours), run_shard)

        await asyncio.gather(*(one_worker() for _ in range(self._shard_workers)))

    async def _heartbeat(self) -> None:
        """Renew every claim this run holds, from the moment it is taken (a child flow run can take a
        while to start on a busy Prefect server) until it is released; watch the endpoints' breakers."""
        lease = self.settings.claim_lease_s
        renew_every = lease / 3
        waited = 0.0
        while True:
            await asyncio.sleep(1.0)
            self.check_breakers()
            waited += 1.0
            if waited >= renew_every:
                waited = 0.0
                with best_effort("claim heartbeat", self.log):
                    await asyncio.to_thread(
                        claims_repo.renew_claims,
                        self.engine,
                        worker=self.worker,
                        question_ids=sorted(self.held),
                        lease_s=lease,
                    )

    # -- after the loop ---------------------------------------------------------------------------------
    @property
    def ended(self) -> tuple[str, str | None] | None:
        """How the run ended when a stop cut it short ("interrupted" or "failed", and why); None otherwise."""
        if not self.stop.requested:
            return None
        return ("interrupted" if self.stop.interrupted else "failed", self.stop.reason)

    def stats(self) -> dict[str, Any]:
        """The run's counters as its row records them."""
        return jsonable({**self.progress.snapshot(), "statuses": self.totals, "shards": self.shards})

    async def refresh_audits(self) -> None:
        """Recompute the rolled-up audit views (Postgres), so the audits count this run's rows; a refresh
        that fails is logged and the run's outcome stands."""
        with best_effort("refresh of the audit rollups", self.log):
            await asyncio.to_thread(audit_rollups.refresh_rollups, self.engine)

    async def report(self) -> dict[str, Any]:
        """The run's tables: tiers, rejections, rejected paths, verifier accuracy, tokens, set-aside
        questions, and (with batch endpoints) open batches and waiting questions."""
        engine = self.engine
        report: dict[str, Any] = await asyncio.to_thread(reports_repo.run_report, engine, self.run_id)
        report["set_aside"] = await asyncio.to_thread(
            failures_repo.list_set_aside, engine, run_id=self.run_id
        )
        if self.registry.batch_endpoints:
            report["open_batches"] = await asyncio.to_thread(batch_repo.list_open, engine)
            waiting = await asyncio.to_thread(batch_repo.waiting_in_run, engine, self.run_id)
            report["waiting"] = [{"question_id": q} for q in waiting]
        return report

    async def outcome(self) -> BuildOutcome:
        """What the run did and what it left, judged once for the CLI, the flow and its artifacts."""
        engine, run_id, sources = self.engine, self.run_id, self.request.sources
        failures = await asyncio.to_thread(failures_repo.run_failures, engine, run_id)
        pending = await asyncio.to_thread(
            claims_repo.count_pending, engine, sources, real_models=self.real_models
        )
        holders = await asyncio.to_thread(
            claims_repo.live_holders, engine, except_worker=self.worker, sources=sources
        )
        aside_total = await asyncio.to_thread(failures_repo.count_set_aside, engine)
        unusable = {
            u.role: [u.outputs, u.unusable]
            for u in await asyncio.to_thread(reports_repo.unusable_outputs, engine, run_id)
        }
        alarms = alarms_of(unusable, self.settings.unusable_alarm_rate)
        waiting = len(await asyncio.to_thread(batch_repo.waiting_in_run, engine, run_id))
        open_batches = await asyncio.to_thread(batch_repo.count_open, engine)
        status: RunStatus
        if self.stop.requested:
            status = "interrupted" if self.stop.interrupted else "endpoint_down"
        elif failures.set_aside or failures.failed:
            status = "incomplete"
        elif alarms:
            status = "degraded"
        else:
            status = "done"
        progress = self.progress
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
            stop_reason=self.stop.reason,
            token_budget_reached=self.token_budget_spent(),
            set_aside_total=aside_total,
            unusable=unusable,
            alarms=alarms,
            waiting=waiting,
            open_batches=open_batches,
        )

    def result(self, outcome: BuildOutcome, report: dict[str, Any]) -> dict[str, Any]:
        """The flow's result: counters, report and outcome (``flows.build.build_result`` reads it back)."""
        return {
            "run_id": self.run_id,
            "statuses": self.totals,
            "shards": self.shards,
            "report": report,
            "token_budget_reached": outcome.token_budget_reached,
            **self.progress.snapshot(),
            "outcome": outcome.as_dict(),
        }


def jsonable(value: Any) -> Any:
    """``value`` with string keys, lists for tuples and ``None`` for an infinite float (JSON has none)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value == float("inf"):
        return None
    return value
