"""The answer guard: a path whose own final answer is not the key is never accepted, whatever its verdict,
and every such Correct verdict is listed in the audits as a verifier disagreement."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from reasonmed.answer_guard import GuardMode, disagreement, passes
from reasonmed.config import load_pipeline_config
from reasonmed.db import audit_repo
from reasonmed.db import pipeline_repo as repo
from reasonmed.db.engine import make_engine
from reasonmed.ingest.service import ingest_file
from reasonmed.llm.registry import LLMRegistry
from reasonmed.pipeline import stages
from reasonmed.pipeline.stages import StageContext
from reasonmed.sim.launcher import SimServer
from tests.fixtures_pipeline import write_sim_config

# (mode, verdict outcome, rules' reading, verifier's reading, key) -> (passes, disagreement); worked by hand
CASES = [
    ("extracted", "correct", "C", None, "C", True, None),
    ("extracted", "correct", "B", "C", "C", False, "other option"),
    ("extracted", "correct", None, "C", "C", False, "no final answer"),
    ("extracted", "error", "C", "C", "C", False, None),
    ("extracted", "unparseable", "C", None, "C", False, None),
    ("extracted", None, "C", None, "C", False, None),
    ("extracted", "correct", "yes", None, "yes", True, None),
    ("extracted", "correct", "maybe", None, "yes", False, "other option"),
    ("verifier", "correct", None, "C", "C", True, None),
    ("verifier", "correct", "C", None, "C", False, "no final answer"),
    ("verifier", "correct", "C", "B", "C", False, "other option"),
    ("both", "correct", None, "C", "C", True, None),
    ("both", "correct", "B", "C", "C", False, "other option"),  # the rules' reading comes first
    ("both", "correct", "C", "B", "C", True, None),
    ("both", "correct", None, None, "C", False, "no final answer"),
    ("both", "error", None, "C", "C", False, None),
    ("off", "correct", None, None, "C", True, None),
    ("off", "correct", "B", "B", "C", True, None),
    ("off", "error", "C", "C", "C", False, None),
]


@pytest.mark.parametrize(("mode", "outcome", "extracted", "verifier", "key", "ok", "why"), CASES)
def test_guard_table(
    mode: GuardMode,
    outcome: str | None,
    extracted: str | None,
    verifier: str | None,
    key: str,
    ok: bool,
    why: str | None,
) -> None:
    assert passes(mode, outcome, extracted, verifier, key) is ok
    assert disagreement(mode, outcome, extracted, verifier, key) == why


QUESTIONS = [
    {
        "question": f"Case {i}: which coronary artery is most likely occluded with ST elevation in II, III and aVF?",
        "options": {
            "A": "Left anterior descending",
            "B": "Left circumflex",
            "C": "Right coronary",
            "D": "Left main",
        },
        "answer_idx": "C",
    }
    for i in range(4)
]


def test_guard_rejects_correct_verdicts_on_wrong_answers(db_url: str, tmp_path: Path) -> None:
    """A verifier that flips every verdict judges the wrong-answer paths Correct: the guard accepts none of
    them, the tiers count none of them, and the audit view lists each one."""
    f = tmp_path / "q.jsonl"
    f.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    engine = make_engine(db_url)
    ingest_file(engine, f, "medqa")
    with engine.connect() as c:
        qids = list(c.execute(text("select id from questions order by id")).scalars())

    async def run_all(cfg) -> list[str]:  # type: ignore[no-untyped-def]
        registry = LLMRegistry(cfg)
        try:
            ctx = StageContext(engine=engine, cfg=cfg, backends=registry, run_id=None)
            out = []
            for qid in qids:
                for fn in (stages.generate, stages.verify):
                    await fn(ctx, qid, {"run_id": None})
                out.append(await stages.resolve(ctx, qid, {"run_id": None}))
            return out
        finally:
            await registry.aclose()

    with SimServer(
        questions_db=db_url,
        base_latency_ms=1,
        per_token_ms=0,
        default_accuracy=0.5,
        refine_accuracy=0.5,
        verifier_error_rate=1.0,
    ) as sim:
        cfg = load_pipeline_config(write_sim_config(tmp_path / "p.yaml", sim.base_url))
        statuses = asyncio.run(run_all(cfg))

    def n(sql: str) -> int:
        with engine.connect() as c:
            return int(c.execute(text(sql)).scalar_one())

    wrong_but_correct = n("""select count(*) from verdicts v join reasoning_paths p on p.id = v.path_id
                             join questions q on q.id = p.question_id
                             where v.outcome = 'correct' and (p.extracted_answer is null or p.extracted_answer <> q.answer)""")
    assert wrong_but_correct > 0  # the verifier did call wrong answers Correct
    # ... and not one of them was accepted; every accepted path concludes with the key.
    assert (
        n("""select count(*) from accepted_paths a join reasoning_paths p on p.id = a.path_id
                join questions q on q.id = p.question_id
                where p.extracted_answer is null or p.extracted_answer <> q.answer""")
        == 0
    )
    # The tier counts only guarded paths: with every verdict flipped, no generated path passes.
    assert n("select max(n_correct) from question_outcomes") == 0
    assert set(statuses) <= {"resolved", "rejected"}
    assert n("select count(*) from question_outcomes where tier = 'difficult'") == len(qids)
    # Audits: the disagreements view lists exactly those verdicts; the rejected-paths view says why.
    assert audit_repo.count_rows(engine, "audit_verifier_disagreements") == wrong_but_correct
    why = {r["reason"]: r["n"] for r in audit_repo.rejections_by_reason(engine)["paths"]}
    assert why.get("judged correct but its answer is not the key", 0) == wrong_but_correct
    report = repo.run_report(engine)
    assert sum(r["paths"] for r in report["verifier_disagreements"]) == wrong_but_correct
