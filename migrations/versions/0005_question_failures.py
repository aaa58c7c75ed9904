"""question failures and set-aside questions; accepted paths dropped for an unusable summary

question_failures: per question and stage, how many attempts failed, the last error and its kind, and
when the question was set aside (a permanent failure, or the attempt budget spent): a set-aside
question is skipped by every run until ``reasonmed retry`` puts it back. accepted_paths.dropped_reason:
an accepted path whose summary stayed unusable after every re-ask is dropped with its reason rather
than holding its question back. New view audit_set_aside; audit_rejected_paths also lists dropped paths.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

SET_ASIDE = """
SELECT f.question_id, q.source, q.source_id, f.stage, f.failures, f.permanent, f.last_error_kind,
       f.last_error, f.first_failed_at, f.last_failed_at, f.set_aside_at, f.last_run_id
FROM question_failures f
JOIN questions q ON q.id = f.question_id
WHERE f.set_aside_at IS NOT NULL
"""

# As in 0002, plus accepted paths dropped for an unusable summary (with the reason recorded then).
REJECTED_PATHS = """
SELECT p.id AS path_id, p.question_id, q.source, q.source_id, q.question, p.origin, p.role, p.model,
       p.temperature, p.run_id, v.id AS verdict_id, v.verifier_model,
       coalesce(v.outcome, 'unverified') AS verdict_outcome, v.reason AS error_analysis,
       CASE WHEN v.outcome IS NULL THEN 'not verified'
            WHEN v.outcome <> 'correct' THEN 'judged ' || v.outcome
            WHEN a.dropped_reason IS NOT NULL THEN a.dropped_reason
            ELSE 'correct but not kept' END AS why,
       o.tier, o.status AS question_status
FROM reasoning_paths p
JOIN questions q ON q.id = p.question_id
LEFT JOIN verdicts v ON v.path_id = p.id
LEFT JOIN question_outcomes o ON o.question_id = p.question_id
LEFT JOIN accepted_paths a ON a.path_id = p.id
WHERE v.outcome IS NULL OR v.outcome <> 'correct'
   OR (o.id IS NOT NULL AND (a.id IS NULL OR a.dropped_reason IS NOT NULL))
"""

OLD_REJECTED_PATHS = """
SELECT p.id AS path_id, p.question_id, q.source, q.source_id, q.question, p.origin, p.role, p.model,
       p.temperature, p.run_id, v.id AS verdict_id, v.verifier_model,
       coalesce(v.outcome, 'unverified') AS verdict_outcome, v.reason AS error_analysis,
       CASE WHEN v.outcome IS NULL THEN 'not verified'
            WHEN v.outcome <> 'correct' THEN 'judged ' || v.outcome
            ELSE 'correct but not kept' END AS why,
       o.tier, o.status AS question_status
FROM reasoning_paths p
JOIN questions q ON q.id = p.question_id
LEFT JOIN verdicts v ON v.path_id = p.id
LEFT JOIN question_outcomes o ON o.question_id = p.question_id
WHERE v.outcome IS NULL OR v.outcome <> 'correct'
   OR (o.id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM accepted_paths a WHERE a.path_id = p.id))
"""


def upgrade() -> None:
    op.create_table(
        "question_failures",
        sa.Column("id", BigId, primary_key=True),
        sa.Column(
            "question_id",
            BigId,
            sa.ForeignKey(
                "questions.id", ondelete="CASCADE", name=op.f("fk_question_failures_question_id_questions")
            ),
            nullable=False,
        ),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("permanent", sa.Boolean(), nullable=False),
        sa.Column("last_error_kind", sa.String(32), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column(
            "last_run_id",
            BigId,
            sa.ForeignKey(
                "pipeline_runs.id",
                ondelete="SET NULL",
                name=op.f("fk_question_failures_last_run_id_pipeline_runs"),
            ),
            nullable=True,
        ),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_aside_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retried_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_question_failures")),
        sa.UniqueConstraint("question_id", "stage", name=op.f("uq_question_failures_question_id_stage")),
        sa.CheckConstraint(
            "stage IN ('generate', 'verify', 'resolve', 'summarize')", name=op.f("ck_question_failures_stage")
        ),
    )
    op.create_index(
        op.f("ix_question_failures_set_aside_at"), "question_failures", ["set_aside_at"], unique=False
    )
    op.create_index(
        op.f("ix_question_failures_last_run_id"), "question_failures", ["last_run_id"], unique=False
    )
    # Plain ALTERs (SQLite 3.35+ drops columns too): a batch rebuild would trip over the views on the table.
    op.add_column("accepted_paths", sa.Column("dropped_reason", sa.Text(), nullable=True))
    op.execute("DROP VIEW IF EXISTS audit_rejected_paths")
    op.execute(f"CREATE VIEW audit_rejected_paths AS {REJECTED_PATHS.strip()}")
    op.execute(f"CREATE VIEW audit_set_aside AS {SET_ASIDE.strip()}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS audit_set_aside")
    op.execute("DROP VIEW IF EXISTS audit_rejected_paths")
    op.execute(f"CREATE VIEW audit_rejected_paths AS {OLD_REJECTED_PATHS.strip()}")
    op.execute("ALTER TABLE accepted_paths DROP COLUMN dropped_reason")
    op.drop_index("ix_question_failures_last_run_id", table_name="question_failures")
    op.drop_index("ix_question_failures_set_aside_at", table_name="question_failures")
    op.drop_table("question_failures")
