"""Re-judging stored paths under the current configuration, without generating anything.

``reasonmed rejudge --stage verify|rank|summarize`` reopens the finished questions whose stored verdicts,
scores or summaries are not those of the configured (model, prompt) key, then runs the stages that follow
from that stage for them: verify -> resolve -> summarize, rank -> resolve -> summarize, or summarize. Every
step asks only for what the new key lacks, so tiers, acceptances and summaries change exactly where the
new judgments imply; rows of the old key stay, marked superseded. Generation never runs: a re-decided
question whose tier now needs a refinement or regeneration it never had gets it (that is resolution, not
generation of the nine paths).

A question whose stage fails stays reopened (``resolved``) with the failure counted in the result; the next
``reasonmed run`` or ``rejudge`` picks it up.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from reasonmed.db import reopen_repo, runs_repo
from reasonmed.db.reopen_repo import OutcomeSnapshot, QuestionFilter
from reasonmed.pipeline import stages
from reasonmed.pipeline.context import StageContext
from reasonmed.pipeline.failures import StageIncomplete
from reasonmed.provenance import Provenance
from reasonmed.question_state import FINISHED

REJUDGE_STAGES = ("verify", "rank", "summarize")
_FOLLOW: dict[str, tuple[str, ...]] = {
    "verify": ("verify", "resolve", "summarize"),
    "rank": ("resolve", "summarize"),
    "summarize": ("summarize",),
}


@dataclass
class RejudgeResult:
    stage: str
    stale: dict[str, int]
    reopened: int = 0
    finished: int = 0
    failed: dict[int, str] = field(default_factory=dict)  # question -> one-line reason
    tier_changes: Counter[tuple[str | None, str | None]] = field(default_factory=Counter)
    status_changes: Counter[tuple[str, str]] = field(default_factory=Counter)
    acceptance_changed: int = 0  # questions whose accepted paths differ

    def lines(self) -> list[str]:
        out = [
            f"rejudge {self.stage}: {self.reopened} question(s) reopened, {self.finished} finished again, "
            f"{len(self.failed)} failed (left for the next run)",
            f"accepted paths changed for {self.acceptance_changed} question(s)",
        ]
        out += [f"tier {a} -> {b}: {n}" for (a, b), n in sorted(self.tier_changes.items(), key=str)]
        out += [f"status {a} -> {b}: {n}" for (a, b), n in sorted(self.status_changes.items())]
        out += [f"question {q}: {why}" for q, why in list(self.failed.items())[:10]]
        return out


async def rejudge(
    ctx: StageContext,
    *,
    stage: str,
    where: QuestionFilter | None = None,
    concurrency: int = 16,
    on_done: Callable[[int], Awaitable[None] | None] | None = None,
) -> RejudgeResult:
    """Re-run ``stage`` (and what follows from it) for the matching finished questions it made stale."""
    if stage not in REJUDGE_STAGES:
        raise ValueError(f"stage must be one of {', '.join(REJUDGE_STAGES)} (got {stage!r})")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1 (got {concurrency})")
    await ctx.db(runs_repo.ensure_prompt_templates, ctx.engine, ctx.cfg.prompt_variants())
    reopened = await ctx.db(reopen_repo.reopen_stale, ctx.engine, ctx.keys, stages=[stage], where=where)
    result = RejudgeResult(stage=stage, stale=reopened.stale, reopened=len(reopened.question_ids))
    before = await ctx.db(reopen_repo.outcome_snapshot, ctx.engine, reopened.question_ids)
    prov = Provenance(run_id=ctx.run_id)
    gate = asyncio.Semaphore(concurrency)
    steps = {"verify": stages.verify, "resolve": stages.resolve, "summarize": stages.summarize}

    async def one(qid: int) -> None:
        async with gate:
            try:
                for name in _FOLLOW[stage]:
                    await steps[name](ctx, qid, prov)
            except StageIncomplete as exc:
                result.failed[qid] = str(exc).splitlines()[0][:300]
            if on_done is not None:
                maybe = on_done(qid)
                if maybe is not None:
                    await maybe

    await asyncio.gather(*(one(q) for q in reopened.question_ids))
    after = await ctx.db(reopen_repo.outcome_snapshot, ctx.engine, reopened.question_ids)
    for qid, old in before.items():
        new = after.get(qid, OutcomeSnapshot(None, "missing", ()))
        if new.status in FINISHED:
            result.finished += 1
        if new.tier != old.tier:
            result.tier_changes[(old.tier, new.tier)] += 1
        old_status = reopened.prior_status.get(qid, old.status)
        if new.status in FINISHED and new.status != old_status:
            result.status_changes[(old_status, new.status)] += 1
        if new.accepted != old.accepted:
            result.acceptance_changed += 1
    return result
