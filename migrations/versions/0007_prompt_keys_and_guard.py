"""prompt-keyed stage rows, superseded rows, prompt variants, judge modes; answer-guard and verifier audits

verdicts, path_scores, summaries: ``prompt_sha256`` (the sha of the configured template, the stage key
together with the model; backfilled from each row's call) and ``superseded_at`` (set when a newer key's
row replaced it: old rows stay for audit). Their unique keys become (path, model, prompt_sha256), so a
changed prompt writes new rows beside the old ones. accepted_paths.superseded_at: a path a re-derived
resolution no longer keeps. prompt_templates.variant: 'template', or the re-ask variant
('reask-truncated', 'reask-unparseable') whose exact text was sent. dataset_quality_scores.judge_mode:
'rubric' (four criteria, sees the key) or 'paper' (question + response, one 1-10 score).

Views: audit_verifier_disagreements (paths judged Correct whose own final answer is not the key: the
answer guard never accepts them), audit_verifier_versions (two verdicts of one path by different
verifier models or prompts: agreement and flips by path model and temperature), audit_rejected_paths
names guard rejections, and the other views read only current (not superseded) rows.

SQLite cannot change a unique key in place: the three tables are rebuilt (batch mode) with every view
dropped first and created again afterwards, from their stored definitions.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYED = {  # table -> its model column
    "verdicts": "verifier_model",
    "path_scores": "ranker_model",
    "summaries": "summarizer_model",
}

DISAGREEMENTS = """
SELECT p.id AS path_id, p.question_id, q.source, q.source_id, p.origin, p.model, p.temperature, p.run_id,
       v.id AS verdict_id, v.verifier_model, v.prompt_sha256 AS verifier_prompt_sha256,
       q.answer AS answer_key, p.extracted_answer,
       CASE WHEN p.extracted_answer IS NULL THEN 'no final answer' ELSE 'other option' END AS disagreement,
       v.reason AS verifier_reason, CASE WHEN v.superseded_at IS NULL THEN 1 ELSE 0 END AS current_verdict
FROM verdicts v
JOIN reasoning_paths p ON p.id = v.path_id
JOIN questions q ON q.id = p.question_id
WHERE v.outcome = 'correct' AND (p.extracted_answer IS NULL OR p.extracted_answer <> q.answer)
"""

VERIFIER_VERSIONS = """
SELECT a.verifier_model AS a_model, a.prompt_sha256 AS a_prompt_sha256,
       b.verifier_model AS b_model, b.prompt_sha256 AS b_prompt_sha256,
       p.model AS path_model, p.temperature, p.origin,
       count(*) AS paths,
       sum(CASE WHEN a.outcome = b.outcome THEN 1 ELSE 0 END) AS agree,
       CAST(sum(CASE WHEN a.outcome = b.outcome THEN 1 ELSE 0 END) AS DOUBLE PRECISION) / count(*) AS agreement,
       sum(CASE WHEN a.outcome = 'correct' AND b.outcome <> 'correct' THEN 1 ELSE 0 END) AS flips_from_correct,
       sum(CASE WHEN a.outcome <> 'correct' AND b.outcome = 'correct' THEN 1 ELSE 0 END) AS flips_to_correct
FROM verdicts a
JOIN verdicts b ON b.path_id = a.path_id AND b.id > a.id
     AND (b.verifier_model <> a.verifier_model OR b.prompt_sha256 <> a.prompt_sha256)
JOIN reasoning_paths p ON p.id = a.path_id
GROUP BY a.verifier_model, a.prompt_sha256, b.verifier_model, b.prompt_sha256, p.model, p.temperature, p.origin
"""

# As in 0005, reading current rows only, plus the answer guard's rejections.
REJECTED_PATHS = """
SELECT p.id AS path_id, p.question_id, q.source, q.source_id, q.question, p.origin, p.role, p.model,
       p.temperature, p.run_id, v.id AS verdict_id, v.verifier_model,
       coalesce(v.outcome, 'unverified') AS verdict_outcome, v.reason AS error_analysis,
       CASE WHEN v.outcome IS NULL THEN 'not verified'
            WHEN v.outcome <> 'correct' THEN 'judged ' || v.outcome
            WHEN p.extracted_answer IS NULL OR p.extracted_answer <> q.answer THEN 'judged correct but its answer is not the key'
            WHEN a.dropped_reason IS NOT NULL THEN a.dropped_reason
            ELSE 'correct but not kept' END AS why,
       o.tier, o.status AS question_status
FROM reasoning_paths p
JOIN questions q ON q.id = p.question_id
LEFT JOIN verdicts v ON v.path_id = p.id AND v.superseded_at IS NULL
LEFT JOIN question_outcomes o ON o.question_id = p.question_id
LEFT JOIN accepted_paths a ON a.path_id = p.id AND a.superseded_at IS NULL
WHERE v.outcome IS NULL OR v.outcome <> 'correct'
   OR p.extracted_answer IS NULL OR p.extracted_answer <> q.answer
   OR (o.id IS NOT NULL AND (a.id IS NULL OR a.dropped_reason IS NOT NULL))
"""

VERIFIER_ACCURACY = """
SELECT p.model, p.temperature, q.source, p.origin, v.verifier_model,
       count(*) AS paths,
       sum(CASE WHEN v.outcome = 'correct' THEN 1 ELSE 0 END) AS correct,
       sum(CASE WHEN v.outcome = 'error' THEN 1 ELSE 0 END) AS errors,
       sum(CASE WHEN v.outcome = 'unparseable' THEN 1 ELSE 0 END) AS unparseable,
       CAST(sum(CASE WHEN v.outcome = 'correct' THEN 1 ELSE 0 END) AS DOUBLE PRECISION) / count(*) AS accuracy
FROM reasoning_paths p
JOIN verdicts v ON v.path_id = p.id AND v.superseded_at IS NULL
JOIN questions q ON q.id = p.question_id
GROUP BY p.model, p.temperature, q.source, p.origin, v.verifier_model
"""

REFINEMENT_SUCCESS = """
SELECT p.role AS stage, p.model, count(DISTINCT p.id) AS paths_written,
       count(DISTINCT v.path_id) AS verified,
       count(DISTINCT CASE WHEN v.outcome = 'correct' THEN p.id END) AS reverified_correct,
       CAST(count(DISTINCT CASE WHEN v.outcome = 'correct' THEN p.id END) AS DOUBLE PRECISION)
           / count(DISTINCT p.id) AS success_rate,
       count(DISTINCT a.path_id) AS kept
FROM reasoning_paths p
LEFT JOIN verdicts v ON v.path_id = p.id AND v.superseded_at IS NULL
LEFT JOIN accepted_paths a ON a.path_id = p.id AND a.superseded_at IS NULL
WHERE p.origin IN ('refined', 'regenerated')
GROUP BY p.role, p.model
"""

REPLACED = ("audit_rejected_paths", "audit_verifier_accuracy", "audit_refinement_success")
NEW = {"audit_verifier_disagreements": DISAGREEMENTS, "audit_verifier_versions": VERIFIER_VERSIONS}
NOW_CURRENT = {
    "audit_rejected_paths": REJECTED_PATHS,
    "audit_verifier_accuracy": VERIFIER_ACCURACY,
    "audit_refinement_success": REFINEMENT_SUCCESS,
}


def _stored_views() -> dict[str, str]:
    """Every view's CREATE statement (SQLite keeps them verbatim in sqlite_master; Postgres rebuilds them)."""
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        rows = bind.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'view'")).all()
        return {name: sql for name, sql in rows}
    rows = bind.execute(
        sa.text("SELECT viewname, definition FROM pg_views WHERE schemaname = current_schema()")
    ).all()
    return {name: f"CREATE VIEW {name} AS {definition}" for name, definition in rows}


def _rekey(table: str, old_cols: list[str], new_cols: list[str]) -> None:
    old = f"uq_{table}_{'_'.join(old_cols)}"
    new = f"uq_{table}_{'_'.join(new_cols)}"
    with op.batch_alter_table(table) as b:
        b.alter_column("prompt_sha256", existing_type=sa.String(64), nullable=False)
        b.drop_constraint(old, type_="unique")
        b.create_unique_constraint(new, new_cols)


def upgrade() -> None:
    views = _stored_views()
    for name in views:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    for table, model_col in KEYED.items():
        op.add_column(table, sa.Column("prompt_sha256", sa.String(64), nullable=True))
        op.add_column(table, sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True))
        op.execute(
            f"UPDATE {table} SET prompt_sha256 = coalesce("
            f"(SELECT c.prompt_sha256 FROM llm_calls c WHERE c.id = {table}.llm_call_id), 'unknown')"
        )
        _rekey(table, ["path_id", model_col], ["path_id", model_col, "prompt_sha256"])
    op.add_column("accepted_paths", sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "prompt_templates", sa.Column("variant", sa.String(32), nullable=False, server_default="template")
    )
    op.add_column(
        "dataset_quality_scores",
        sa.Column("judge_mode", sa.String(16), nullable=False, server_default="rubric"),
    )
    for name, sql in views.items():
        if name not in REPLACED:
            op.execute(sql)
    for name, sql in {**NOW_CURRENT, **NEW}.items():
        op.execute(f"CREATE VIEW {name} AS {sql.strip()}")


def downgrade() -> None:
    for name in NEW:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    views = _stored_views()
    for name in views:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    for table, model_col in KEYED.items():
        # One row per (path, model) again: the current one (superseded rows go).
        op.execute(f"DELETE FROM {table} WHERE superseded_at IS NOT NULL")
        with op.batch_alter_table(table) as b:
            b.drop_constraint(f"uq_{table}_path_id_{model_col}_prompt_sha256", type_="unique")
            b.create_unique_constraint(f"uq_{table}_path_id_{model_col}", ["path_id", model_col])
            b.drop_column("superseded_at")
            b.drop_column("prompt_sha256")
    op.execute("ALTER TABLE accepted_paths DROP COLUMN superseded_at")
    op.execute("ALTER TABLE prompt_templates DROP COLUMN variant")
    op.execute("ALTER TABLE dataset_quality_scores DROP COLUMN judge_mode")
    from importlib import util
    from pathlib import Path

    here = Path(__file__).resolve().parent
    old = {}
    for file, attr, name in (
        ("0005_question_failures.py", "REJECTED_PATHS", "audit_rejected_paths"),
        ("0002_audit_views.py", "VERIFIER_ACCURACY", "audit_verifier_accuracy"),
        ("0002_audit_views.py", "REFINEMENT_SUCCESS", "audit_refinement_success"),
    ):
        spec = util.spec_from_file_location(f"_m{file[:4]}", here / file)
        mod = util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(mod)  # type: ignore[union-attr]
        old[name] = getattr(mod, attr)
    for name, sql in views.items():
        if name in NOW_CURRENT:
            op.execute(f"CREATE VIEW {name} AS {old[name].strip()}")
        elif name not in NEW:
            op.execute(sql)
