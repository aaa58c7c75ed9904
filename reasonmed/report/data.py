"""What the report shows, read once from the audit views into one plain object."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy import Engine

from reasonmed.db import audit_repo, audit_rollups
from reasonmed.db.audit_rollups import RollupState


class ReportData(BaseModel):
    tiers: list[dict[str, Any]]
    tier_by_run: list[dict[str, Any]]
    accuracy: list[dict[str, Any]]
    refinement: list[dict[str, Any]]
    rejected_questions: dict[str, list[dict[str, Any]]]
    tokens: list[dict[str, Any]]
    token_usage: list[dict[str, Any]]
    cost_per_sample: list[dict[str, Any]] = []
    word_counts: list[tuple[str, bool, int]]
    rollups: list[RollupState] = []  # how current the rolled-up views are (Postgres; none on SQLite)


def load_report_data(engine: Engine) -> ReportData:
    return ReportData(
        tiers=audit_repo.tier_totals(engine),
        tier_by_run=audit_repo.view_rows(engine, "audit_tier_distribution"),
        accuracy=audit_repo.generator_accuracy(engine),
        refinement=audit_repo.view_rows(engine, "audit_refinement_success"),
        rejected_questions=audit_repo.rejections_by_reason(engine),
        tokens=audit_repo.tokens_by_stage(engine),
        token_usage=audit_repo.view_rows(engine, "audit_token_usage"),
        cost_per_sample=audit_repo.view_rows(engine, "audit_cost_per_sample"),
        word_counts=audit_repo.path_word_counts(engine),
        rollups=audit_rollups.rollup_states(engine),
    )
