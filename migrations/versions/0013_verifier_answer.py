"""verdicts: both readings of a path's concluding option, and the answer guard they were judged under

The verifier's JSON now names the option the path itself concludes with (``path_answer``), a second reader
beside the rules of ``parsing.extract_answer``; the pipeline file's ``answer_guard`` (extracted, verifier,
both, off) says whose reading must be the key. Each verdict keeps ``extracted_answer`` (the rules'),
``verifier_answer`` (the verifier's; NULL when it named none or was not asked), ``answer_guard`` (the mode)
and ``guard_answer`` (the reading that mode compared, computed by ``reasonmed/tiers.py``), so the
views read the guard's decision instead of restating its rule. Existing verdicts were judged by the rules
alone: they are backfilled as ``extracted``.

Views: audit_verifier_disagreements lists Correct verdicts the guard overruled and paths whose two readings
differ (the verifier named an option the rules did not read); audit_rejected_paths names guard rejections
from the stored guard reading.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 12:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OVERRULED = "(v.answer_guard <> 'off' AND (v.guard_answer IS NULL OR v.guard_answer <> q.answer))"

DISAGREEMENTS = f"""
SELECT p.id AS path_id, p.question_id, q.source, q.source_id, p.origin, p.model, p.temperature, p.run_id,
       v.id AS verdict_id, v.verifier_model, v.prompt_sha256 AS verifier_prompt_sha256,
       q.answer AS answer_key, v.extracted_answer, v.verifier_answer, v.answer_guard, v.guard_answer,
       CASE WHEN v.outcome = 'correct' AND {OVERRULED} AND v.guard_answer IS NULL THEN 'no final answer'
            WHEN v.outcome = 'correct' AND {OVERRULED} THEN 'other option'
            ELSE 'readings differ' END AS disagreement,
       v.reason AS verifier_reason, CASE WHEN v.superseded_at IS NULL THEN 1 ELSE 0 END AS current_verdict
FROM verdicts v
JOIN reasoning_paths p ON p.id = v.path_id
JOIN questions q ON q.id = p.question_id
WHERE (v.outcome = 'correct' AND {OVERRULED})
   OR (v.verifier_answer IS NOT NULL AND (v.extracted_answer IS NULL OR v.extracted_answer <> v.verifier_answer))
"""

REJECTED_PATHS = f"""
SELECT p.id AS path_id, p.question_id, q.source, q.source_id, q.question, p.origin, p.role, p.model,
       p.temperature, p.run_id, v.id AS verdict_id, v.verifier_model,
       coalesce(v.outcome, 'unverified') AS verdict_outcome, v.reason AS error_analysis,
       CASE WHEN v.outcome IS NULL THEN 'not verified'
            WHEN v.outcome <> 'correct' THEN 'judged ' || v.outcome
            WHEN {OVERRULED} THEN 'judged correct but its answer is not the key'
            WHEN a.dropped_reason IS NOT NULL THEN a.dropped_reason
            ELSE 'correct but not kept' END AS why,
       o.tier, o.status AS question_status
FROM reasoning_paths p
JOIN questions q ON q.id = p.question_id
LEFT JOIN verdicts v ON v.path_id = p.id AND v.superseded_at IS NULL
LEFT JOIN question_outcomes o ON o.question_id = p.question_id
LEFT JOIN accepted_paths a ON a.path_id = p.id AND a.superseded_at IS NULL
WHERE v.outcome IS NULL OR v.outcome <> 'correct'
   OR {OVERRULED}
   OR (o.id IS NOT NULL AND (a.id IS NULL OR a.dropped_reason IS NOT NULL))
"""

VIEWS = {"audit_verifier_disagreements": DISAGREEMENTS, "audit_rejected_paths": REJECTED_PATHS}


def _migration_0007() -> Any:
    """0007's module, read from its file (a migration module is not importable by name from an installed
    console script): its view definitions, and its reader of every stored view."""
    from importlib import util
    from pathlib import Path

    spec = util.spec_from_file_location(
        "_m0007", Path(__file__).resolve().parent / "0007_prompt_keys_and_guard.py"
    )
    assert spec is not None and spec.loader is not None
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    for name in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    op.add_column("verdicts", sa.Column("extracted_answer", sa.String(32), nullable=True))
    op.add_column("verdicts", sa.Column("verifier_answer", sa.String(32), nullable=True))
    op.add_column(
        "verdicts", sa.Column("answer_guard", sa.String(16), nullable=False, server_default="extracted")
    )
    op.add_column("verdicts", sa.Column("guard_answer", sa.String(32), nullable=True))
    op.execute(
        "UPDATE verdicts SET extracted_answer = "
        "(SELECT p.extracted_answer FROM reasoning_paths p WHERE p.id = verdicts.path_id)"
    )
    op.execute("UPDATE verdicts SET guard_answer = extracted_answer")
    for name, sql in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {sql.strip()}")


def downgrade() -> None:
    m0007 = _migration_0007()
    # SQLite rebuilds ``verdicts`` to drop a column and refuses while a view names it: drop every view
    # first (0007's reader of the stored definitions) and create them again afterwards.
    views = m0007._stored_views()
    for name in views:
        op.execute(f"DROP VIEW IF EXISTS {name}")
    with op.batch_alter_table("verdicts") as b:
        for column in ("guard_answer", "answer_guard", "verifier_answer", "extracted_answer"):
            b.drop_column(column)
    previous = {
        "audit_verifier_disagreements": m0007.DISAGREEMENTS,
        "audit_rejected_paths": m0007.REJECTED_PATHS,
    }
    for name, sql in views.items():
        if name in previous:
            op.execute(f"CREATE VIEW {name} AS {previous[name].strip()}")
        else:
            op.execute(sql)
