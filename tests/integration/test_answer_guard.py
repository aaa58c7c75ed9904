"""The answer guard: a path whose own final answer is not the key is never accepted, whatever its verdict,
and every such Correct verdict is listed in the audits as a verifier disagreement."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from reasonmed.config import load_pipeline_config
from reasonmed.db import audit_repo, reports_repo
from reasonmed.db.engine import make_engine
from reasonmed.ingest.service import ingest_file
from reasonmed.llm.registry import LLMRegistry
from reasonmed.parsing import extract_answer
from reasonmed.pipeline import stages
from reasonmed.pipeline.context import StageContext
from reasonmed.provenance import Provenance
from reasonmed.sim.launcher import SimServer
from reasonmed.tiers import GuardMode, disagreement, passes
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
                    await fn(ctx, qid, Provenance())
                out.append(await stages.resolve(ctx, qid, Provenance()))
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
    report = reports_repo.run_report(engine)
    assert sum(r["paths"] for r in report["verifier_disagreements"]) == wrong_but_correct


# One question (key C), its nine generated paths written by hand, in generation order (model, then
# temperature): the path's text, the verifier's verdict, the verifier's reading of the path's conclusion, and
# the ranker's score. p2-p4 conclude in words the rules cannot read ("the vessel in the right atrioventricular
# groove"); p5 is judged Correct although it concludes B; p8 concludes C but the verifier reads it as B.
GUARD_QUESTION = {
    "question": "ST elevation in II, III and aVF: which coronary artery is most likely occluded?",
    "options": {
        "A": "Left anterior descending",
        "B": "Left circumflex",
        "C": "Right coronary",
        "D": "Left main",
    },
    "answer_idx": "C",
}
UNREAD = "The inferior wall is fed by the vessel in the right atrioventricular groove, which settles it."
SCRIPTED_PATHS: dict[tuple[str, float], tuple[str, str, str, int]] = {
    ("sim-qwen", 0.7): ("[p0] Inferior leads.\nFinal answer: C", "Correct", "C", 3),
    ("sim-qwen", 0.9): ("[p1] Inferior leads again.\nFinal answer: C", "Correct", "C", 3),
    ("sim-qwen", 1.0): (f"[p2] {UNREAD}", "Correct", "C", 5),
    ("sim-r1-distill", 0.7): (f"[p3] {UNREAD}", "Correct", "C", 3),
    ("sim-r1-distill", 0.9): (f"[p4] {UNREAD}", "Correct", "C", 3),
    ("sim-r1-distill", 1.0): ("[p5] Lateral, surely.\nFinal answer: B", "Correct", "B", 5),
    ("sim-huatuo", 0.7): ("[p6] Lateral.\nFinal answer: B", "Error", "B", 3),
    ("sim-huatuo", 0.9): ("[p7] Anterior.\nFinal answer: A", "Error", "A", 3),
    ("sim-huatuo", 1.0): ("[p8] Inferior, so the right one.\nFinal answer: C", "Correct", "B", 3),
}
BY_TAG = {entry[0].split("]")[0] + "]": entry for entry in SCRIPTED_PATHS.values()}


def _tag(path: str | None) -> str:
    assert path is not None and path.startswith("["), path
    return path.split("]")[0] + "]"


def _guard_script(endpoint: str, role: str, prompt, temperature: float) -> str:  # type: ignore[no-untyped-def]
    if role == "generate":
        return SCRIPTED_PATHS[(endpoint, temperature)][0]
    if role == "refine":
        return f"[r{_tag(prompt.path)[2:-1]}] Revised: the inferior leads.\nFinal answer: C"
    if role == "verify":
        if _tag(prompt.path).startswith("[r"):
            return json.dumps({"verdict": "Correct", "path_answer": "C", "reason": "Sound."})
        _, verdict, read_as, _ = BY_TAG[_tag(prompt.path)]
        return json.dumps({"verdict": verdict, "path_answer": read_as, "reason": f"Read as {read_as}."})
    if role == "rank":
        return json.dumps({"score": BY_TAG[_tag(prompt.path)][3], "justification": "Scripted."})
    raise AssertionError(f"no script for {role}")


# mode -> (tier, n_correct, the accepted paths by tag, in order); worked out by hand from the table above:
# extracted: p0, p1, p8 pass (3: medium); the best two by score then order, p0 and p1, are refined and pass.
# verifier: p0-p4 (5: easy); p2 scores 5, then p0 first in order. both: p0-p4 and p8 (6: easy), same two.
# off: every Correct verdict, p0-p5 and p8 (7: easy); p2 and p5 score 5.
GUARD_OUTCOMES = {
    "extracted": ("medium", 3, ["[r0]", "[r1]"]),
    "verifier": ("easy", 5, ["[p2]", "[p0]"]),
    "both": ("easy", 6, ["[p2]", "[p0]"]),
    "off": ("easy", 7, ["[p2]", "[p5]"]),
}


@pytest.mark.parametrize("mode", list(GUARD_OUTCOMES))
def test_guard_modes_decide_tiers_and_acceptance(db_url: str, tmp_path: Path, mode: str) -> None:
    from tests.scripted_chat import ScriptedBackends

    assert extract_answer(UNREAD, GUARD_QUESTION["options"]) is None  # the rules cannot read p2-p4
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps(GUARD_QUESTION) + "\n")
    engine = make_engine(db_url)
    ingest_file(engine, f, "medqa")
    with engine.connect() as c:
        (qid,) = c.execute(text("select id from questions")).scalars()
    cfg = load_pipeline_config(
        write_sim_config(tmp_path / "p.yaml", "http://127.0.0.1:9/v1", answer_guard=mode)
    )
    ctx = StageContext(engine=engine, cfg=cfg, backends=ScriptedBackends(cfg, _guard_script), run_id=None)

    async def run() -> str:
        for fn in (stages.generate, stages.verify):
            await fn(ctx, qid, Provenance())
        return await stages.resolve(ctx, qid, Provenance())

    status = asyncio.run(run())
    tier, n_correct, kept = GUARD_OUTCOMES[mode]
    with engine.connect() as c:
        outcome = c.execute(text("select tier, n_correct from question_outcomes")).one()
        accepted = list(
            c.execute(
                text("""select p.clean_text from accepted_paths a join reasoning_paths p on p.id = a.path_id
                        where a.superseded_at is null order by a.rank""")
            ).scalars()
        )
        readings = {
            _tag(t): (e, v, m, g)
            for t, e, v, m, g in c.execute(
                text("""select p.clean_text, v.extracted_answer, v.verifier_answer, v.answer_guard, v.guard_answer
                        from verdicts v join reasoning_paths p on p.id = v.path_id""")
            )
        }
        listed = {
            t: d
            for t, d in c.execute(
                text("""select p.clean_text, d.disagreement from audit_verifier_disagreements d
                        join reasoning_paths p on p.id = d.path_id""")
            )
        }
    assert status == "resolved"
    assert tuple(outcome) == (tier, n_correct)
    assert [_tag(t) for t in accepted] == kept
    # Every verdict keeps both readings, the mode and the reading the mode compared with the key.
    assert readings["[p2]"] == (None, "C", mode, {"extracted": None, "off": None}.get(mode, "C"))
    assert readings["[p8]"] == ("C", "B", mode, {"verifier": "B", "off": None}.get(mode, "C"))
    assert readings["[p6]"][:2] == ("B", "B")
    if mode == "extracted":
        assert {_tag(t): d for t, d in listed.items()} == {
            "[p2]": "no final answer",
            "[p3]": "no final answer",
            "[p4]": "no final answer",
            "[p5]": "other option",
            "[p8]": "readings differ",
        }
    if mode == "both":
        assert {_tag(t): d for t, d in listed.items()} == {
            "[p2]": "readings differ",
            "[p3]": "readings differ",
            "[p4]": "readings differ",
            "[p5]": "other option",
            "[p8]": "readings differ",
        }
