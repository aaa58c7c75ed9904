"""Every SQL statement the audits and the report run: reads of the ``audit_*`` views (migrations 0002-0007)
and the few aggregates the figures need. Read-only, on Postgres and SQLite alike."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, text

# View -> its stable ORDER BY (views themselves carry no order).
AUDIT_VIEWS: dict[str, str] = {
    "audit_tier_distribution": "run_id, tier",
    "audit_verifier_accuracy": "model, temperature, source, origin, verifier_model",
    "audit_refinement_success": "stage, model",
    "audit_rejected_questions": "question_id",
    "audit_rejected_paths": "question_id, path_id, verifier_model",
    "audit_token_usage": "day, stage, model",
    "audit_contamination": "question_id, test_question_id",  # migration 0003
    "audit_set_aside": "question_id, stage",  # migration 0005
    "audit_verifier_disagreements": "question_id, path_id, verdict_id",  # migration 0007
    "audit_verifier_versions": "a_model, a_prompt_sha256, b_model, b_prompt_sha256, path_model, temperature, origin",
    "audit_batches": "batch_id",  # migration 0014
    "audit_cost_per_sample": "tier, role",  # migration 0016
}


def _plain(value: Any) -> Any:
    """Postgres sums come back as Decimal: whole numbers become int, the rest float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


# Each column of a relation and whether the connected role may read it (Postgres column privileges).
_COLUMN_PRIVILEGES = text("""
SELECT attname, has_column_privilege(attrelid, attnum, 'SELECT') FROM pg_attribute
WHERE attrelid = CAST(:relation AS regclass) AND attnum > 0 AND NOT attisdropped ORDER BY attnum
""")


def _select_list(conn: Connection, view: str) -> str:
    """``*``, or the columns this role may read when some are withheld from it: the audit role reads
    every view but not prompt texts and raw error bodies (reasonmed.db.audit_role.WITHHELD)."""
    if conn.dialect.name != "postgresql":
        return "*"
    columns = conn.execute(_COLUMN_PRIVILEGES, {"relation": view}).all()
    if all(readable for _name, readable in columns):
        return "*"
    quote = conn.dialect.identifier_preparer.quote_identifier
    return ", ".join(quote(name) for name, readable in columns if readable)


def view_rows(engine: Engine, view: str, *, limit: int | None = None) -> list[dict[str, Any]]:
    """All rows of one audit view (or the first ``limit``), in the view's stable order; the columns the
    connected role may read (all of them but for the audit role)."""
    if view not in AUDIT_VIEWS:
        raise ValueError(f"unknown audit view {view!r} (known: {', '.join(AUDIT_VIEWS)})")
    params: dict[str, Any] = {}
    with engine.connect() as conn:
        sql = f"SELECT {_select_list(conn, view)} FROM {view} ORDER BY {AUDIT_VIEWS[view]}"
        if limit is not None:
            sql += " LIMIT :limit"
            params["limit"] = limit
        return [{k: _plain(v) for k, v in r.items()} for r in conn.execute(text(sql), params).mappings()]


def count_rows(engine: Engine, view: str) -> int:
    if view not in AUDIT_VIEWS:
        raise ValueError(f"unknown audit view {view!r}")
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {view}")).scalar_one())


def tier_totals(engine: Engine) -> list[dict[str, Any]]:
    """Questions per tier and status over every run."""
    sql = """
        SELECT tier, sum(accepted) AS accepted, sum(resolved) AS resolved, sum(rejected) AS rejected,
               sum(questions) AS questions
        FROM audit_tier_distribution GROUP BY tier ORDER BY tier"""
    with engine.connect() as conn:
        return [{k: _plain(v) for k, v in r.items()} for r in conn.execute(text(sql)).mappings()]


def generator_accuracy(engine: Engine) -> list[dict[str, Any]]:
    """Share of generated paths the verifier judged correct, per generator model and temperature."""
    sql = """
        SELECT model, temperature, sum(paths) AS paths, sum(correct) AS correct,
               CAST(sum(correct) AS DOUBLE PRECISION) / sum(paths) AS accuracy
        FROM audit_verifier_accuracy WHERE origin = 'generated'
        GROUP BY model, temperature ORDER BY model, temperature"""
    with engine.connect() as conn:
        return [{k: _plain(v) for k, v in r.items()} for r in conn.execute(text(sql)).mappings()]


def rejections_by_reason(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Rejected questions by recorded reason, and rejected paths by why they were not kept."""
    questions = """
        SELECT coalesce(rejection_reason, '(none recorded)') AS reason, count(*) AS n
        FROM audit_rejected_questions GROUP BY coalesce(rejection_reason, '(none recorded)') ORDER BY count(*) DESC, 1"""
    paths = (
        "SELECT why AS reason, count(*) AS n FROM audit_rejected_paths GROUP BY why ORDER BY count(*) DESC, 1"
    )
    with engine.connect() as conn:
        return {
            "questions": [
                {k: _plain(v) for k, v in r.items()} for r in conn.execute(text(questions)).mappings()
            ],
            "paths": [{k: _plain(v) for k, v in r.items()} for r in conn.execute(text(paths)).mappings()],
        }


def tokens_by_stage(engine: Engine) -> list[dict[str, Any]]:
    sql = """
        SELECT stage, sum(calls) AS calls, sum(prompt_tokens) AS prompt_tokens,
               sum(completion_tokens) AS completion_tokens, sum(total_tokens) AS total_tokens
        FROM audit_token_usage GROUP BY stage ORDER BY stage"""
    with engine.connect() as conn:
        return [{k: _plain(v) for k, v in r.items()} for r in conn.execute(text(sql)).mappings()]


def path_word_counts(engine: Engine) -> list[tuple[str, bool, int]]:
    """(origin, kept, words) for every reasoning path; words counted in SQL so no text is fetched.

    Postgres splits on any whitespace; SQLite (no regex) counts space- and newline-separated runs.
    """
    if engine.dialect.name == "postgresql":
        words = "coalesce(array_length(regexp_split_to_array(btrim(p.clean_text), '\\s+'), 1), 0)"
    else:
        words = (
            "CASE WHEN trim(p.clean_text) = '' THEN 0 ELSE length(trim(replace(p.clean_text, char(10), ' '))) - "
            "length(replace(trim(replace(p.clean_text, char(10), ' ')), ' ', '')) + 1 END"
        )
    sql = f"""
        SELECT p.origin, CASE WHEN a.path_id IS NULL THEN 0 ELSE 1 END AS kept, {words} AS words
        FROM reasoning_paths p LEFT JOIN accepted_paths a ON a.path_id = p.id ORDER BY p.id"""
    with engine.connect() as conn:
        return [(o, bool(k), int(w)) for o, k, w in conn.execute(text(sql))]
