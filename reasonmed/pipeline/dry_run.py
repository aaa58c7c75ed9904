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
    finished, history = inspect_repo.call_history(engine)
    return estimate(
        cfg,
        pending=pending,
        finished=finished,
        history=history,
        prompt_chars=inspect_repo.pending_prompt_chars(engine, sources),
    )
