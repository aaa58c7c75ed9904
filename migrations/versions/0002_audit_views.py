"""audit views: rejected paths, verifier accuracy, tiers, refinement success, rejected questions, tokens

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:00:00

Read-only SQL views that answer the audit questions without anyone writing joins by hand. The SQL is
shared by Postgres and SQLite except the calendar-day expression; the latency p95 is a nearest-rank
percentile built from window functions so it needs no engine-specific aggregate.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A path counts as "correct but not kept" only once its question has an outcome; before that the
# ranker may simply not have run yet.
REJECTED_PATHS = """
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

VERIFIER_ACCURACY = """
SELECT p.model, p.temperature, q.source, p.origin, v.verifier_model,
       count(*) AS paths,
       sum(CASE WHEN v.outcome = 'correct' THEN 1 ELSE 0 END) AS correct,
       sum(CASE WHEN v.outcome = 'error' THEN 1 ELSE 0 END) AS errors,
       sum(CASE WHEN v.outcome = 'unparseable' THEN 1 ELSE 0 END) AS unparseable,
       CAST(sum(CASE WHEN v.outcome = 'correct' THEN 1 ELSE 0 END) AS DOUBLE PRECISION) / count(*) AS accuracy
FROM reasoning_paths p
JOIN verdicts v ON v.path_id = p.id
JOIN questions q ON q.id = p.question_id
GROUP BY p.model, p.temperature, q.source, p.origin, v.verifier_model
"""

TIER_DISTRIBUTION = """
SELECT o.run_id, coalesce(o.tier, '-') AS tier,
       count(*) AS questions,
       sum(CASE WHEN o.status = 'accepted' THEN 1 ELSE 0 END) AS accepted,
       sum(CASE WHEN o.status = 'resolved' THEN 1 ELSE 0 END) AS resolved,
       sum(CASE WHEN o.status = 'rejected' THEN 1 ELSE 0 END) AS rejected,
       sum(o.n_accepted) AS accepted_paths,
       CAST(count(*) AS DOUBLE PRECISION) / sum(count(*)) OVER (PARTITION BY o.run_id) AS share
FROM question_outcomes o
GROUP BY o.run_id, coalesce(o.tier, '-')
"""

REFINEMENT_SUCCESS = """
SELECT p.role AS stage, p.model, count(DISTINCT p.id) AS paths_written,
       count(DISTINCT v.path_id) AS verified,
       count(DISTINCT CASE WHEN v.outcome = 'correct' THEN p.id END) AS reverified_correct,
       CAST(count(DISTINCT CASE WHEN v.outcome = 'correct' THEN p.id END) AS DOUBLE PRECISION)
           / count(DISTINCT p.id) AS success_rate,
       count(DISTINCT a.path_id) AS kept
FROM reasoning_paths p
LEFT JOIN verdicts v ON v.path_id = p.id
LEFT JOIN accepted_paths a ON a.path_id = p.id
WHERE p.origin IN ('refined', 'regenerated')
GROUP BY p.role, p.model
"""

REJECTED_QUESTIONS = """
SELECT o.question_id, q.source, q.source_id, q.question, o.tier, o.n_paths, o.n_correct,
       o.rejection_reason, o.run_id, o.updated_at
FROM question_outcomes o
JOIN questions q ON q.id = o.question_id
WHERE o.status = 'rejected'
"""

# Nearest-rank p95: the value at position ceil(0.95 * n) of the sorted non-null latencies.
TOKEN_USAGE = """
WITH c AS (
    SELECT model, role, {day} AS day, status, attempts, prompt_tokens, completion_tokens, latency_ms,
           ROW_NUMBER() OVER (PARTITION BY model, role, {day}, CASE WHEN latency_ms IS NULL THEN 1 ELSE 0 END
                              ORDER BY latency_ms) AS rn,
           COUNT(latency_ms) OVER (PARTITION BY model, role, {day}) AS n_lat
    FROM llm_calls
)
SELECT model, role AS stage, day, count(*) AS calls,
       sum(CASE WHEN status = 'ok' THEN 0 ELSE 1 END) AS failed_calls,
       sum(attempts) AS attempts,
       coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
       coalesce(sum(completion_tokens), 0) AS completion_tokens,
       coalesce(sum(prompt_tokens), 0) + coalesce(sum(completion_tokens), 0) AS total_tokens,
       avg(latency_ms) AS mean_latency_ms,
       max(CASE WHEN latency_ms IS NOT NULL AND rn = (95 * n_lat + 99) / 100 THEN latency_ms END) AS p95_latency_ms
FROM c
GROUP BY model, role, day
"""

_DAY = {
    "postgresql": "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    "sqlite": "substr(created_at, 1, 10)",
}

VIEWS: dict[str, str] = {
    "audit_rejected_paths": REJECTED_PATHS,
    "audit_verifier_accuracy": VERIFIER_ACCURACY,
    "audit_tier_distribution": TIER_DISTRIBUTION,
    "audit_refinement_success": REFINEMENT_SUCCESS,
    "audit_rejected_questions": REJECTED_QUESTIONS,
    "audit_token_usage": TOKEN_USAGE,
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    day = _DAY.get(dialect, _DAY["sqlite"])
    for name, sql in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql.format(day=day).strip()}")


def downgrade() -> None:
    for name in reversed(list(VIEWS)):
        op.execute(f"DROP VIEW IF EXISTS {name}")
