"""An independent oracle: questions whose every model decision is written by hand, run end to end.

``tests/sim_expectations.py`` predicts the simulator's hash decisions with the project's own tier rules, so it
cannot catch a wrong rule. Here the simulator follows a script (``reasonmed/sim/script.py``) and the expected
tier, kept paths and rejection reason of each question were worked out on paper from the table below and the
paper's rules (9 paths; easy at 5+ passing, medium at 2-4, difficult at 0-1; keep the top 2; the ranker's
ties keep generation order; medium refines its best 2 and keeps a rewrite that passes, else its parent;
difficult refines and regenerates from the lone passing path, else the first failed attempt with an answer,
and keeps passing rewrites). No project function computes an expectation. `reasonmed run` as a process:
real HTTP to the simulator, real Prefect, real Postgres.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import prefect.settings
import pytest
from sqlalchemy import text

from reasonmed.db.engine import get_engine
from reasonmed.ingest.service import ingest_file
from reasonmed.sim.launcher import SimServer
from tests.fixtures_pipeline import write_sim_config

pytestmark = [pytest.mark.postgres]

# Generation slots in generation order: model order, then temperature order (the embedded pipeline's).
SLOTS = [
    f"{model}@{t}"
    for model in ("sim/Qwen2.5-72B-Instruct", "sim/DeepSeek-R1-Distill-Llama-70B", "sim/HuatuoGPT-o1-70B")
    for t in ("0.7", "0.9", "1")
]
KEY = "C"


def _paths(answers: str, verdicts: str, scores: dict[int, int] | None = None) -> dict[str, dict]:
    """answers: one option per slot ('-' = commits to none); verdicts: C(orrect), E(rror), U(nparseable)."""
    names = {"C": "Correct", "E": "Error", "U": "unparseable"}
    return {
        slot: {
            "answer": None if a == "-" else a,
            "verdict": names[v],
            "score": (scores or {}).get(i, 3),
        }
        for i, (slot, a, v) in enumerate(zip(SLOTS, answers, verdicts, strict=True))
    }


CASES = {
    # 6 pass: easy; the ranker's two 5s are kept (s3 before s5: generation order).
    "EASY": (_paths("CCCCCCBBB", "CCCCCCEEE", {3: 5, 5: 5}), {}, {}),
    # 3 pass: medium; best two by score: s8 (5), then s0 and s4 tie at 4 and s0 comes first; both
    # refinements pass and replace their parents.
    "MEDIUM-PASS": (
        _paths("CBBBCBBBC", "CEEECEEEC", {0: 4, 4: 4, 8: 5}),
        {"answer": "C", "verdict": "Correct"},
        {},
    ),
    # 2 pass: medium; both refinements conclude B and fail, so the parents s1 and s2 are kept.
    "MEDIUM-FAIL": (_paths("BCCBBBBBB", "ECCEEEEEE", {}), {"answer": "B", "verdict": "Error"}, {}),
    # 1 pass (s6): difficult; its refinement passes, the regenerations fail.
    "DIFF-REFINED": (
        _paths("BBBBBBCBB", "EEEEEECEE"),
        {"answer": "C", "verdict": "Correct"},
        {"answer": "B", "verdict": "Error"},
    ),
    # 0 pass: difficult; the refinement (of s0) fails, both regenerations pass.
    "DIFF-REGEN": (
        _paths("BBBBBBBBB", "EEEEEEEEE"),
        {"answer": "B", "verdict": "Error"},
        {"answer": "C", "verdict": "Correct"},
    ),
    # 0 pass: difficult; nothing passes: rejected with the difficult tier's reason.
    "DIFF-REJECTED": (
        _paths("BBBBBBBBB", "EEEEEEEEE"),
        {"answer": "A", "verdict": "Error"},
        {"answer": "D", "verdict": "Error"},
    ),
    # 4 Correct verdicts and 2 verdicts that never parse (on paths concluding C): unparseable is not
    # Correct, so 4 pass: medium (6, easy, if it counted); s0 and s1 are refined and pass.
    "UNPARSEABLE": (_paths("CCCCCCBBB", "CCCCUUEEE"), {"answer": "C", "verdict": "Correct"}, {}),
    # 5 Correct verdicts, but s3 and s4 conclude B: the answer guard overrules them, 3 pass: medium.
    "GUARD": (_paths("CCCBBBBBB", "CCCCCEEEE"), {"answer": "C", "verdict": "Correct"}, {}),
}

# name -> (tier, passing generated paths, status, kept paths in order, rejection reason)
EXPECTED = {
    "EASY": ("easy", 6, "accepted", ["s3", "s5"], None),
    "MEDIUM-PASS": ("medium", 3, "accepted", ["refined-s8", "refined-s0"], None),
    "MEDIUM-FAIL": ("medium", 2, "accepted", ["s1", "s2"], None),
    "DIFF-REFINED": ("difficult", 1, "accepted", ["refined-s6"], None),
    "DIFF-REGEN": ("difficult", 0, "accepted", ["regenerated", "regenerated"], None),
    "DIFF-REJECTED": (
        "difficult",
        0,
        "rejected",
        [],
        "difficult tier: neither the refined path nor any of the 2 regenerated paths was verified correct",
    ),
    "UNPARSEABLE": ("medium", 4, "accepted", ["refined-s0", "refined-s1"], None),
    "GUARD": ("medium", 3, "accepted", ["refined-s0", "refined-s1"], None),
}


def _script(path: Path) -> Path:
    questions = [
        {"marker": f"ORACLE-{name}.", "paths": paths, "refine": refine or {"verdict": "Error"}}
        | ({"regenerate": regen} if regen else {})
        for name, (paths, refine, regen) in CASES.items()
    ]
    path.write_text(json.dumps({"questions": questions}))
    return path


def _questions(path: Path) -> Path:
    rows = [
        {
            "question": f"Case ORACLE-{name}. ST elevation in II, III and aVF: which artery is most likely occluded?",
            "options": {
                "A": "Left anterior descending",
                "B": "Left circumflex",
                "C": "Right coronary",
                "D": "Left main",
            },
            "answer_idx": KEY,
        }
        for name in CASES
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _kept_name(clean_text: str) -> str:
    first = clean_text.split("\n", 1)[0]
    assert first.startswith("Scripted path "), first
    name = first.removeprefix("Scripted path ").rstrip(".")
    if name.startswith("regenerated-"):
        return "regenerated"
    for i, slot in enumerate(SLOTS):
        name = name.replace(slot, f"s{i}")
    return name


def test_hand_worked_questions_land_where_the_paper_rules_put_them(
    pg_url: str, prefect_harness: None, tmp_path: Path
) -> None:
    engine = get_engine(pg_url)
    ingest_file(engine, _questions(tmp_path / "q.jsonl"), "medqa")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REASONMED_")}
    env.update(
        REASONMED_DATABASE_URL=pg_url,
        PREFECT_API_URL=prefect.settings.PREFECT_API_URL.value(),
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    with SimServer(base_latency_ms=1, per_token_ms=0, script=str(_script(tmp_path / "script.json"))) as sim:
        cfg = write_sim_config(tmp_path / "p.yaml", sim.base_url)
        run = subprocess.run(
            [sys.executable, "-m", "reasonmed", "run", "--config", str(cfg)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    got = {}
    with engine.connect() as c:
        for qid, question in c.execute(text("select id, question from questions")):
            name = question.split("ORACLE-", 1)[1].split(".", 1)[0]
            tier, n_correct, status, reason = c.execute(
                text(
                    "select tier, n_correct, status, rejection_reason from question_outcomes where question_id = :q"
                ),
                {"q": qid},
            ).one()
            kept = [
                _kept_name(t)
                for (t,) in c.execute(
                    text("""select p.clean_text from accepted_paths a join reasoning_paths p on p.id = a.path_id
                            where a.question_id = :q and a.superseded_at is null and a.dropped_reason is null
                            order by a.rank"""),
                    {"q": qid},
                )
            ]
            got[name] = (tier, n_correct, status, kept, reason if status == "rejected" else None)
        unparseable = c.execute(
            text("select count(*) from verdicts where outcome = 'unparseable'")
        ).scalar_one()
        overruled = [
            _kept_name(t)
            for (t,) in c.execute(
                text("""select p.clean_text from audit_verifier_disagreements d
                        join reasoning_paths p on p.id = d.path_id where d.disagreement = 'other option'""")
            )
        ]
        summaries = c.execute(text("select count(*) from summaries")).scalar_one()
    assert got == EXPECTED
    assert unparseable == 2
    assert sorted(overruled) == ["s3", "s4"]
    assert summaries == sum(len(kept) for *_, kept, _ in EXPECTED.values())
