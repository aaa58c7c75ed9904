"""Changed prompts and models that must change decisions: reopening followed by the right new outcome.

``test_rejudge.py`` shows reopening where every decision stays the same. Here the simulator follows a
hand-written script (``reasonmed/sim/script.py``) whose verdicts differ between two versions, so a changed
verifier prompt, a changed regenerator prompt and a changed verifier model each must flip a tier or an
acceptance. Every expected outcome below was worked out on paper from the scripts; the simulator counts the
requests each step sends. Real Prefect build flow, real HTTP, real Postgres.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from reasonmed.db.engine import get_engine
from reasonmed.ingest.service import ingest_file
from reasonmed.prompts import get_template
from reasonmed.sim.launcher import SimServer
from tests.fixtures_pipeline import run_build, use_database, write_sim_config
from tests.integration.test_oracle import SLOTS, _kept_name, _paths

pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.postgres]

ROLES = ("generate", "verify", "rank", "refine", "regenerate", "summarize")
# Two versions of the same decisions. VERIFY: six paths conclude C (the key); version A judges them
# Correct (easy), version B only the first three (medium). REGEN: every path concludes B (difficult);
# its rewrites conclude B under A and C under B, judged accordingly.
SCRIPT_A = {
    "VERIFY": (_paths("CCCCCCBBB", "CCCCCCEEE"), {"answer": "C", "verdict": "Correct"}, None),
    "REGEN": (
        _paths("BBBBBBBBB", "EEEEEEEEE"),
        {"answer": "B", "verdict": "Error"},
        {"answer": "B", "verdict": "Error"},
    ),
}
SCRIPT_B = {
    "VERIFY": (_paths("CCCCCCBBB", "CCCEEEEEE"), {"answer": "C", "verdict": "Correct"}, None),
    "REGEN": (
        _paths("BBBBBBBBB", "EEEEEEEEE"),
        {"answer": "B", "verdict": "Error"},
        {"answer": "C", "verdict": "Correct"},
    ),
}


def _script(path: Path, version: dict[str, Any]) -> str:
    questions = [
        {"marker": f"REOPEN-{name}.", "paths": paths, "refine": refine}
        | ({"regenerate": regen} if regen else {})
        for name, (paths, refine, regen) in version.items()
    ]
    path.write_text(json.dumps({"questions": questions}))
    return str(path)


def _edited(role: str, system: str) -> str:
    return system + "\n---user---\n" + get_template(role).text.split("\n---user---\n", 1)[1]


def _config(tmp: Path, sim_url: str, name: str, *, verifier_model: str | None = None, **prompts: str) -> str:
    p = write_sim_config(tmp / name, sim_url)
    data = yaml.safe_load(p.read_text())
    for agent, body in prompts.items():
        f = tmp / f"{name}.{agent}.txt"
        f.write_text(body)
        data["agents"][agent]["prompt"] = f.name
    if verifier_model:
        data["endpoints"]["sim-verifier-2"] = {**data["endpoints"]["sim-qwen"], "model": verifier_model}
        data["agents"]["verifier"]["endpoint"] = "sim-verifier-2"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(p)


def _outcomes(engine: Any) -> dict[str, tuple[str, str, list[str]]]:
    out = {}
    with engine.connect() as c:
        for qid, question in c.execute(text("select id, question from questions")):
            name = question.split("REOPEN-", 1)[1].split(".", 1)[0]
            tier, status = c.execute(
                text("select tier, status from question_outcomes where question_id = :q"), {"q": qid}
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
            out[name] = (tier, status, kept)
    return out


def _roles(sim: SimServer) -> dict[str, int]:
    m = sim.metrics()
    return {r: int(m.get(f'requests_by_role_total{{role="{r}"}}', 0)) for r in ROLES}


def test_prompt_and_model_changes_flip_tiers_and_acceptance_as_the_new_judgements_imply(
    pg_url: str, tmp_path: Path
) -> None:
    assert len(SLOTS) == 9
    use_database(pg_url)
    engine = get_engine(pg_url)
    rows = [
        {
            "question": f"Case REOPEN-{name}. ST elevation in II, III and aVF: which artery is occluded?",
            "options": {"A": "LAD", "B": "Left circumflex", "C": "Right coronary", "D": "Left main"},
            "answer_idx": "C",
        }
        for name in SCRIPT_A
    ]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    ingest_file(engine, tmp_path / "q.jsonl", "medqa")
    verifier_v2 = _edited("verify", "You verify medical reasoning, strictly.")
    regenerator_v2 = _edited(
        "regenerate", "You write a deeper chain of thought after earlier attempts failed."
    )

    # 1. Version A: VERIFY easy (six pass; the top two by equal scores are s0 and s1); REGEN rejected.
    with SimServer(base_latency_ms=1, per_token_ms=0, script=_script(tmp_path / "a.json", SCRIPT_A)) as sim:
        run_build(config=_config(tmp_path, sim.base_url, "base.yaml"))
    assert _outcomes(engine) == {
        "VERIFY": ("easy", "accepted", ["s0", "s1"]),
        "REGEN": ("difficult", "rejected", []),
    }

    with SimServer(base_latency_ms=1, per_token_ms=0, script=_script(tmp_path / "b.json", SCRIPT_B)) as sim:
        # 2. A new verifier prompt, judging as version B: VERIFY has three passing paths (medium); its best
        #    two, s0 and s1, are refined (passing) and replace them. REGEN's rewrites from step 1 conclude B:
        #    the new verifier calls its regenerations Correct (reading C), but the answer guard reads B and
        #    refuses them: still rejected. Asked: 9 + 9 generated paths, VERIFY's 2 new refinements and
        #    REGEN's 1 refined and 2 regenerated paths are verified; 2 refinements; 2 summaries.
        run_build(config=_config(tmp_path, sim.base_url, "v2.yaml", verifier=verifier_v2))
        assert _outcomes(engine) == {
            "VERIFY": ("medium", "accepted", ["refined-s0", "refined-s1"]),
            "REGEN": ("difficult", "rejected", []),
        }
        assert _roles(sim) == {
            "generate": 0,
            "verify": 23,
            "rank": 0,
            "refine": 2,
            "regenerate": 0,
            "summarize": 2,
        }

        # 3. A new regenerator prompt: only REGEN holds regenerated paths, so only it reopens; two new
        #    regenerations conclude C, pass, and are kept (the refined path of step 1 still fails).
        sim.reset_metrics()
        run_build(
            config=_config(
                tmp_path, sim.base_url, "g2.yaml", verifier=verifier_v2, regenerator=regenerator_v2
            )
        )
        assert _outcomes(engine) == {
            "VERIFY": ("medium", "accepted", ["refined-s0", "refined-s1"]),
            "REGEN": ("difficult", "accepted", ["regenerated", "regenerated"]),
        }
        assert _roles(sim) == {
            "generate": 0,
            "verify": 2,
            "rank": 0,
            "refine": 0,
            "regenerate": 2,
            "summarize": 2,
        }

    # 4. Another verifier model (not prompt), judging as version A again: VERIFY is easy once more (its six
    #    generated paths pass; the kept two are s0 and s1 again); REGEN's current regenerations are judged
    #    Error: rejected again.
    with SimServer(base_latency_ms=1, per_token_ms=0, script=_script(tmp_path / "a2.json", SCRIPT_A)) as sim:
        run_build(
            config=_config(
                tmp_path,
                sim.base_url,
                "m2.yaml",
                verifier_model="sim/verifier-v2",
                verifier=verifier_v2,
                regenerator=regenerator_v2,
            )
        )
        asked = _roles(sim)
    assert _outcomes(engine) == {
        "VERIFY": ("easy", "accepted", ["s0", "s1"]),
        "REGEN": ("difficult", "rejected", []),
    }
    assert asked["generate"] == asked["refine"] == asked["regenerate"] == 0
