"""One night of growth without Prefect: its lock, then ingest what is new, build the next questions,
export a version if the dataset changed, and gather the figures (``Growth``).

The nightly flow (``flows/nightly.py``) hands it what only Prefect has (``NightCalls``: the ingest task,
the build and export child flows) and its logger, and turns what it returns into the run's end: a
refusal into a Cancelled or Failed state, the growth into an artifact and the flow's result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from reasonmed.best_effort import Log, best_effort
from reasonmed.config import PipelineConfig, Settings
from reasonmed.db import audit_rollups, nightly_repo, runs_repo
from reasonmed.nightly import guard
from reasonmed.nightly.ingest import IngestOne, NightInput, ingest_new
from reasonmed.nightly.report import Growth
from reasonmed.nightly.request import NightRequest
from reasonmed.pipeline.dry_run import plan_run
from reasonmed.redact import redact

KIND = "nightly growth"  # how the lock's messages name the run


@dataclass(frozen=True)
class BuildDone:
    """The night's build (a child flow run): its result, and whether its state said all work got done."""

    result: dict[str, Any]
    completed: bool
    message: str | None  # the state's message: the build's verdict when it did not complete


@dataclass(frozen=True)
class NightCalls:
    """What the night runs through Prefect: the ingest task per file, the build and export child flows."""

    ingest_file: IngestOne
    build: Callable[[NightRequest], Awaitable[BuildDone]]
    export: Callable[[NightRequest, bool], Awaitable[dict[str, Any]]]  # (request, allow simulated rows)


@dataclass(frozen=True)
class Refused:
    """Why a night did not start. ``cancelled``: another night holds the lock (the usual overlap); else a
    session kept the key that serialises starts, which an operator must look at (the run fails)."""

    message: str
    cancelled: bool


class Night:
    """One night: ``estimate`` (a dry run), or ``lock`` and then ``grow``."""

    def __init__(
        self,
        request: NightRequest,
        *,
        engine: Engine,
        settings: Settings,
        cfg: Callable[[], PipelineConfig],
        calls: NightCalls,
        log: Log,
    ) -> None:
        """``cfg`` gives the pipeline config when first needed (a night that never exports or estimates
        does not read the file itself: its build does)."""
        self.request, self.engine, self.settings, self.cfg = request, engine, settings, cfg
        self.calls, self.log = calls, log

    async def estimate(self) -> dict[str, Any]:
        """Calls, tokens, wall time and cost of the night over the questions already stored; nothing is
        ingested, claimed or written."""
        r = self.request
        est = await asyncio.to_thread(
            plan_run, self.engine, self.cfg(), limit=r.max_questions, sources=r.sources
        )
        self.log.info(
            "dry run: %s pending question(s), %s calls, %s tokens, wall time %s s, cost %s",
            est.pending,
            est.calls,
            est.tokens,
            est.wall_s,
            est.cost_usd,
        )
        return est.as_dict()

    async def lock(self, prefect_flow_run_id: str | None) -> guard.RunLock | Refused:
        """The night's lock (its heartbeat started; ``stop()`` it when the night ends), or why not."""
        ttl = self.request.lock_ttl_s or self.settings.claim_lease_s
        try:
            lock = await asyncio.to_thread(
                guard.acquire,
                self.engine,
                kind="nightly",
                ttl_s=ttl,
                wait_s=self.settings.run_lock_wait_s,
                parameters=self.request.parameters(),
                prefect_flow_run_id=prefect_flow_run_id,
            )
        except nightly_repo.LockKeyHeld as busy:  # not another night: something an operator must look at
            message = guard.key_held_message(KIND, busy)
            self.log.error(message)
            return Refused(message, cancelled=False)
        if not isinstance(lock, guard.RunLock):
            message = guard.refusal_message(KIND, lock, ttl)
            self.log.warning(message)
            return Refused(message, cancelled=True)
        return lock

    async def grow(self, run_id: int) -> Growth:
        """Ingest, build, export; a build that left work undone or an export that failed is recorded in the
        growth (the night then ends failed), after everything else was done and counted."""
        started = runs_repo.now()
        before = await asyncio.to_thread(nightly_repo.dataset_totals, self.engine)
        growth = Growth(
            nightly_run_id=run_id,
            started_at=started.strftime("%Y-%m-%d %H:%M UTC"),
            parameters=self.request.parameters(),
            before=before,
            after=before,
        )
        if self.request.input_location:
            growth.ingest = await ingest_new(
                self._input(self.request.input_location), self.calls.ingest_file, self.log
            )
        if self.request.builds:
            await self._build(growth)
        growth.after = await asyncio.to_thread(nightly_repo.dataset_totals, self.engine)
        growth.finished = await asyncio.to_thread(nightly_repo.finished_since, self.engine, started)
        # What the day wrote outside a build (a rejudge, a retry) too; not again after the night's build did.
        with best_effort("refresh of the audit rollups", self.log):
            await asyncio.to_thread(audit_rollups.refresh_rollups, self.engine, unless_since=started)
        if self.request.export:
            await self._export(growth)
        return growth

    def _input(self, location: str) -> NightInput:
        r, settings = self.request, self.settings
        return NightInput(
            location=location,
            source=r.source,
            pattern=r.pattern,
            split=r.split,
            benchmark_test_ids=r.benchmark_test_ids,
            database_url=settings.database_url,
            endpoint_url=settings.s3_endpoint_url,
            limits=settings.ingest_limits,
        )

    async def _build(self, growth: Growth) -> None:
        done = await self.calls.build(self.request)
        growth.build = done.result
        if not done.completed:  # what it did is exported all the same; the night then ends Failed
            growth.build_error = done.message
            self.log.error("build did not finish its work: %s", done.message)

    async def _export(self, growth: Growth) -> None:
        if not growth.changed_dataset:  # a version identical to the last one would only add noise
            growth.export_skipped = "the night added no sample and accepted no question"
            self.log.info("no export: %s", growth.export_skipped)
            return
        try:
            # A night on the simulator exports its own (simulated) rows, flagged as such in card and manifest.
            growth.export = await self.calls.export(self.request, self.cfg().simulated)
        except Exception as exc:  # reported, and the night fails, once the growth figures are recorded
            growth.export_error = redact(f"{type(exc).__name__}: {exc}")
            self.log.error("export failed: %s", growth.export_error)
