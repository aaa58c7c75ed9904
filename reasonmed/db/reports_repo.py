"""What a run produced, in the tables its artifacts and the CLI show: tiers, rejections, verifier
agreement, tokens, and the share of each role's outputs that stayed unusable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select, text

from reasonmed.db.models import PathScore, ReasoningPath, Verdict


@dataclass(frozen=True, slots=True)
class UnusableShare:
    role: str
    outputs: int
    unusable: int


def unusable_outputs(engine: Engine, run_id: int) -> list[UnusableShare]:
    """Per role, this run's outputs and how many were unusable after every re-ask: generated paths with
    no extractable answer, unparseable verdicts, rank scores that did not parse."""
    probes = {
        "generator": select(
            func.count(), func.count().filter(ReasoningPath.extracted_answer.is_(None))
        ).where(ReasoningPath.run_id == run_id, ReasoningPath.origin == "generated"),
        "verifier": select(func.count(), func.count().filter(Verdict.outcome == "unparseable")).where(
            Verdict.run_id == run_id
        ),
        "ranker": select(func.count(), func.count().filter(PathScore.score.is_(None))).where(
            PathScore.run_id == run_id
        ),
    }
    with engine.connect() as c:
        return [UnusableShare(role, *c.execute(stmt).one()) for role, stmt in probes.items()]


def run_report(engine: Engine, run_id: int | None = None) -> dict[str, list[dict[str, Any]]]:
    """The tables a run's artifacts and the CLI show; ``run_id=None`` covers the whole database."""
    params = {} if run_id is None else {"run_id": run_id}
    o_run = "" if run_id is None else "AND o.run_id = :run_id"
    p_run = "" if run_id is None else "AND p.run_id = :run_id"
    c_run = "" if run_id is None else "AND c.run_id = :run_id"
    r_run = "" if run_id is None else "AND r.run_id = :run_id"
    queries = {
        "tiers": f"""
            SELECT coalesce(o.tier, '-') AS tier, o.status, count(*) AS questions, sum(o.n_accepted) AS accepted_paths
            FROM question_outcomes o WHERE 1 = 1 {o_run} GROUP BY o.tier, o.status ORDER BY o.tier, o.status""",
        "rejections": f"""
            SELECT o.tier, o.rejection_reason AS reason, count(*) AS questions
            FROM question_outcomes o WHERE o.status = 'rejected' {o_run}
            GROUP BY o.tier, o.rejection_reason ORDER BY count(*) DESC""",
        "rejected_paths": f"""
            SELECT r.origin, r.why AS reason, count(*) AS paths
            FROM audit_rejected_paths r WHERE 1 = 1 {r_run}
            GROUP BY r.origin, r.why ORDER BY count(*) DESC, r.origin, r.why""",
        "verifier_disagreements": f"""
            SELECT d.model, d.disagreement, count(*) AS paths
            FROM audit_verifier_disagreements d WHERE d.current_verdict = 1 {r_run.replace("r.", "d.")}
            GROUP BY d.model, d.disagreement ORDER BY d.model, d.disagreement""",
        "verifier_accuracy": f"""
            SELECT p.model, p.temperature, count(*) AS paths,
                   sum(CASE WHEN v.outcome = 'correct' THEN 1 ELSE 0 END) AS correct,
                   round(cast(avg(CASE WHEN v.outcome = 'correct' THEN 1.0 ELSE 0.0 END) AS numeric), 3) AS accuracy
            FROM reasoning_paths p JOIN verdicts v ON v.path_id = p.id AND v.superseded_at IS NULL
            WHERE p.origin = 'generated' {p_run}
            GROUP BY p.model, p.temperature ORDER BY p.model, p.temperature""",
        "tokens": f"""
            SELECT c.role AS stage, c.model, count(*) AS calls, sum(c.prompt_tokens) AS prompt_tokens,
                   sum(c.completion_tokens) AS completion_tokens,
                   sum(CASE WHEN c.status = 'ok' THEN 0 ELSE 1 END) AS failed_calls
            FROM llm_calls c WHERE 1 = 1 {c_run} GROUP BY c.role, c.model ORDER BY c.role, c.model""",
    }
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as c:
        for name, sql in queries.items():
            out[name] = [
                {k: (float(v) if hasattr(v, "as_tuple") else v) for k, v in row.items()}
                for row in c.execute(text(sql), params).mappings()
            ]
    return out
