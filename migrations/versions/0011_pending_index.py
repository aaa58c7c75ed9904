"""questions.finished_by, kept by triggers on question_outcomes, and a partial index of pending questions;
two indexes for audit_refinement_success

Claiming the next shard picked the lowest pending ids by walking ``questions`` in id order and dropping
every finished one (an anti-join against question_outcomes): late in a run that is O(finished questions),
314 ms for a shard of 200 behind 185k finished at the paper's size. ``finished_by`` ('real',
'simulated' or NULL: the question has no accepted or rejected outcome) mirrors question_outcomes, row
by row, through triggers, so no writer has to remember it; the partial index holds only the training
questions a run with real models still has to do, and the claim reads the next shard from it.

audit_refinement_success read every current verdict (a hash join over all 1.8M at the paper's size, 3 s)
to judge the 6% of paths that are refinements or regenerations: ix_reasoning_paths_rewritten lists those
paths, ix_verdicts_current_path answers each one's current verdict from the index alone (0.2-0.7 s).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The value finished_by takes from one outcome row (NEW.* in a trigger, o.* in the backfill).
FINISHED_BY = (
    "CASE WHEN {o}.status IN ('accepted', 'rejected') THEN CASE WHEN {o}.simulated THEN 'simulated' "
    "ELSE 'real' END END"
)
PENDING_WHERE = {
    "postgresql": "is_benchmark_test IS false AND (finished_by IS NULL OR finished_by = 'simulated')",
    "sqlite": "is_benchmark_test IS 0 AND (finished_by IS NULL OR finished_by = 'simulated')",
}
REWRITTEN = "origin IN ('refined', 'regenerated')"  # as the view writes it, so the planner proves it
CURRENT = "superseded_at IS NULL"

PG_FUNCTION = f"""
CREATE FUNCTION questions_finished_by() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.question_id <> NEW.question_id) THEN
        UPDATE questions SET finished_by = NULL WHERE id = OLD.question_id AND finished_by IS NOT NULL;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        UPDATE questions SET finished_by = {FINISHED_BY.format(o="NEW")}
        WHERE id = NEW.question_id AND finished_by IS DISTINCT FROM ({FINISHED_BY.format(o="NEW")});
    END IF;
    RETURN NULL;
END $$
"""
PG_TRIGGER = """
CREATE TRIGGER question_outcomes_finished_by
AFTER INSERT OR UPDATE OF status, simulated, question_id OR DELETE ON question_outcomes
FOR EACH ROW EXECUTE FUNCTION questions_finished_by()
"""
SQLITE_TRIGGERS = {
    "question_outcomes_finished_by_insert": f"""
        CREATE TRIGGER question_outcomes_finished_by_insert AFTER INSERT ON question_outcomes BEGIN
            UPDATE questions SET finished_by = {FINISHED_BY.format(o="NEW")} WHERE id = NEW.question_id;
        END""",
    "question_outcomes_finished_by_update": f"""
        CREATE TRIGGER question_outcomes_finished_by_update AFTER UPDATE OF status, simulated, question_id
        ON question_outcomes BEGIN
            UPDATE questions SET finished_by = NULL WHERE id = OLD.question_id;
            UPDATE questions SET finished_by = {FINISHED_BY.format(o="NEW")} WHERE id = NEW.question_id;
        END""",
    "question_outcomes_finished_by_delete": """
        CREATE TRIGGER question_outcomes_finished_by_delete AFTER DELETE ON question_outcomes BEGIN
            UPDATE questions SET finished_by = NULL WHERE id = OLD.question_id;
        END""",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("questions", sa.Column("finished_by", sa.String(16), nullable=True))
    op.execute(
        f"UPDATE questions SET finished_by = (SELECT {FINISHED_BY.format(o='o')} FROM question_outcomes o "
        "WHERE o.question_id = questions.id) "
        "WHERE EXISTS (SELECT 1 FROM question_outcomes o WHERE o.question_id = questions.id "
        "AND o.status IN ('accepted', 'rejected'))"
    )
    if dialect == "postgresql":
        op.execute(PG_FUNCTION)
        op.execute(PG_TRIGGER)
    else:
        for sql in SQLITE_TRIGGERS.values():
            op.execute(sql)
    op.create_index(
        "ix_questions_pending",
        "questions",
        ["id"],
        unique=False,
        postgresql_where=sa.text(PENDING_WHERE["postgresql"]),
        sqlite_where=sa.text(PENDING_WHERE["sqlite"]),
    )
    op.create_index(
        "ix_reasoning_paths_rewritten",
        "reasoning_paths",
        ["role", "model", "id"],
        unique=False,
        postgresql_where=sa.text(REWRITTEN),
        sqlite_where=sa.text(REWRITTEN),
    )
    op.create_index(
        "ix_verdicts_current_path",
        "verdicts",
        ["path_id"],
        unique=False,
        postgresql_include=["outcome", "verifier_model"],
        postgresql_where=sa.text(CURRENT),
        sqlite_where=sa.text(CURRENT),
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_index("ix_verdicts_current_path", table_name="verdicts")
    op.drop_index("ix_reasoning_paths_rewritten", table_name="reasoning_paths")
    op.drop_index("ix_questions_pending", table_name="questions")
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS question_outcomes_finished_by ON question_outcomes")
        op.execute("DROP FUNCTION IF EXISTS questions_finished_by()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    # A plain DROP COLUMN (SQLite 3.35+): a batch copy of the table would break the views over it.
    op.drop_column("questions", "finished_by")
