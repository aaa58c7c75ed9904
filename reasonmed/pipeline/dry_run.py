"""``--dry-run``: the estimate of a run over the database's pending questions, nothing claimed or written."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine

from reasonmed.config import PipelineConfig
from reasonmed.db import claims_repo, inspect_repo
from reasonmed.pipeline.estimate import RunEstimate, estimate


def plan_run(
    engine: Engine, cfg: PipelineConfig, *, limit: int | None = None, sources: Sequence[str] | None = None
) -> RunEstimate:
    """What a run with these options would take: pending questions (capped by ``limit``) and per stage
    the calls, tokens, time and cost, scaled from the stored history when there is one."""
    pending = claims_repo.count_pending(engine, sources)
    if limit is not None:
        pending = min(pending, limit)
    return _estimate(engine, cfg, pending, sources)


def _estimate(
    engine: Engine, cfg: PipelineConfig, pending: int, sources: Sequence[str] | None
) -> RunEstimate:
    finished, history = inspect_repo.call_history(engine)
    return estimate(
        cfg,
        pending=pending,
        finished=finished,
        history=history,
        prompt_chars=inspect_repo.pending_prompt_chars(engine, sources),
    )


# The replica plan is a ratio of the endpoints' work; with nothing pending it is planned for this many
# questions, enough that rounding a role's calls per question to whole calls does not show.
NOMINAL_QUESTIONS = 10_000


def plan_work(engine: Engine, cfg: PipelineConfig, est: RunEstimate) -> RunEstimate:
    """The estimate a replica plan is made from: the run's, or, when no question is pending (files not
    ingested yet), that of ``NOMINAL_QUESTIONS`` questions from the same history or limits."""
    return est if est.pending else _estimate(engine, cfg, NOMINAL_QUESTIONS, None)
