"""Prompt-aware resume and re-judging, counted at the simulator.

A changed verifier, ranker or summariser prompt reopens exactly the finished questions whose stored results
lack the new key, and the next run asks only for those results; ``reasonmed rejudge`` re-verifies stored
paths without generating and changes verdicts, tiers and exported rows exactly as the new verdicts imply.
Real Prefect build flow, real HTTP to the simulator, real Postgres.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text
from typer.testing import CliRunner

from reasonmed.db.engine import get_engine
from reasonmed.db.export_repo import ROW_COLUMNS, accepted_rows_query
from reasonmed.ingest.service import ingest_file
from reasonmed.prompts import get_template
from reasonmed.sim.launcher import SimServer
from reasonmed.tiers import assign_tier, passes
from tests.fixtures_pipeline import run_build, use_database, write_sim_config

pytestmark = pytest.mark.usefixtures("prefect_harness")

N_QUESTIONS = 16
ROLES = ("generate", "verify", "rank", "refine", "regenerate", "summarize")


def _questions(path: Path) -> Path:
    rows = []
    for i in range(N_QUESTIONS):
        rows.append(
            {
                "question": f"Patient {i}: a {20 + i}-year-old presents with finding number {i}. Which option is keyed?",
                "options": {"A": f"Alpha {i}", "B": f"Beta {i}", "C": f"Gamma {i}", "D": f"Delta {i}"},
                "answer_idx": "ABCD"[i % 4],
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _config(tmp: Path, sim_url: str, name: str, **prompts: str) -> Path:
    """The simulator pipeline, with ``role=template text`` written to files the agents read."""
    p = write_sim_config(tmp / name, sim_url)
    data = yaml.safe_load(p.read_text())
    for agent, body in prompts.items():
        f = tmp / f"{name}.{agent}.txt"
        f.write_text(body)
        data["agents"][agent]["prompt"] = f.name  # relative to the pipeline file
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _edited(role: str, system: str) -> str:
    """The shipped template with another system message (the simulator still recognises the role)."""
    return system + "\n---user---\n" + get_template(role).text.split("\n---user---\n", 1)[1]


def _roles(sim: SimServer) -> dict[str, int]:
    m = sim.metrics()
    return {r: int(m.get(f'requests_by_role_total{{role="{r}"}}', 0)) for r in ROLES}


def _one(engine, sql: str, **kw: Any) -> Any:  # type: ignore[no-untyped-def]
    with engine.connect() as c:
        return c.execute(text(sql), kw).scalar_one()


def _outcomes(engine) -> dict[int, tuple]:  # type: ignore[no-untyped-def,type-arg]
    with engine.connect() as c:
        acc: dict[int, list[int]] = {}
        for q, p in c.execute(
            text("""select question_id, path_id from accepted_paths
                                      where superseded_at is null and dropped_reason is null order by question_id, rank""")
        ):
            acc.setdefault(q, []).append(p)
        return {
            q: (t, s, tuple(acc.get(q, ())))
            for q, t, s in c.execute(text("select question_id, tier, status from question_outcomes"))
        }


@pytest.fixture
def built(pg_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    use_database(pg_url)
    engine = get_engine(pg_url)
    ingest_file(engine, _questions(tmp_path / "q.jsonl"), "medqa")
    return engine


def test_changed_prompts_rerun_only_the_affected_stages_for_affected_questions(
    built, pg_url: str, tmp_path: Path
) -> None:
    engine = built
    with SimServer(
        questions_db=pg_url, base_latency_ms=1, per_token_ms=0, default_accuracy=0.45, refine_accuracy=0.6
    ) as sim:
        base = _config(tmp_path, sim.base_url, "base.yaml")
        run_build(config=str(base), shard_size=8)
        first = _outcomes(engine)
        assert len(first) == N_QUESTIONS and all(s in ("accepted", "rejected") for _, s, _ in first.values())
        tiers = {t for t, _, _ in first.values()}
        assert len(tiers) >= 2, tiers  # the prompt changes below touch some tiers and not others
        verdicts = _one(engine, "select count(*) from verdicts")
        scores = _one(engine, "select count(*) from path_scores")
        scored_questions = _one(engine, "select count(distinct question_id) from path_scores")
        accepted_paths = _one(
            engine,
            """select count(*) from accepted_paths a join question_outcomes o
                                         on o.question_id = a.question_id where o.status = 'accepted'
                                         and a.dropped_reason is null""",
        )
        accepted_questions = sum(1 for _, s, _ in first.values() if s == "accepted")

        # 1. A new verifier prompt: every stored path is verified again, once; nothing else is asked for,
        #    since the simulator's verifier judges the same under either prompt, so no decision changes.
        sim.reset_metrics()
        v2 = _config(
            tmp_path,
            sim.base_url,
            "v2.yaml",
            verifier=_edited("verify", "You verify medical reasoning, strictly."),
        )
        run_build(config=str(v2), shard_size=8)
        assert _roles(sim) == {
            "generate": 0,
            "verify": verdicts,
            "rank": 0,
            "refine": 0,
            "regenerate": 0,
            "summarize": 0,
        }
        assert _one(engine, "select count(*) from verdicts where superseded_at is not null") == verdicts
        assert _one(engine, "select count(*) from verdicts where superseded_at is null") == verdicts
        assert _outcomes(engine) == first
        # Run again with the same prompt: nothing is stale, nothing is asked.
        sim.reset_metrics()
        run_build(config=str(v2), shard_size=8)
        assert sum(_roles(sim).values()) == 0

        # 2. A new ranker prompt: only the questions whose paths were scored (easy and medium) are
        #    reopened, and only their scores are asked for again.
        sim.reset_metrics()
        r2 = _config(
            tmp_path,
            sim.base_url,
            "r2.yaml",
            verifier=_edited("verify", "You verify medical reasoning, strictly."),
            ranker=_edited("rank", "You grade reasoning quality, tersely."),
        )
        run_build(config=str(r2), shard_size=8)
        assert _roles(sim) == {
            "generate": 0,
            "verify": 0,
            "rank": scores,
            "refine": 0,
            "regenerate": 0,
            "summarize": 0,
        }
        assert scored_questions < N_QUESTIONS  # difficult questions have no scores: they were not touched
        assert _outcomes(engine) == first

        # 3. A new summariser prompt: only accepted questions' kept paths are summarised again.
        sim.reset_metrics()
        s2 = _config(
            tmp_path,
            sim.base_url,
            "s2.yaml",
            verifier=_edited("verify", "You verify medical reasoning, strictly."),
            ranker=_edited("rank", "You grade reasoning quality, tersely."),
            summarizer=_edited("summarize", "You condense reasoning into a short summary."),
        )
        run_build(config=str(s2), shard_size=8)
        assert _roles(sim) == {
            "generate": 0,
            "verify": 0,
            "rank": 0,
            "refine": 0,
            "regenerate": 0,
            "summarize": accepted_paths,
        }
        assert accepted_questions < N_QUESTIONS or accepted_paths > 0
        assert _outcomes(engine) == first
        # The exported rows carry the new summaries, one per accepted path.
        with engine.connect() as c:
            rows = [
                dict(zip(ROW_COLUMNS, r, strict=True))
                for r in c.execute(accepted_rows_query(include_simulated=True))
            ]
            new = set(
                c.execute(
                    text("select id from summaries where superseded_at is null and prompt_sha256 = :s"),
                    {"s": _sha(tmp_path / "s2.yaml.summarizer.txt")},
                ).scalars()
            )
        assert len(rows) == accepted_paths and {r["summary_id"] for r in rows} <= new
        # 4. A new refiner prompt: only questions that had refinements (medium, difficult) are touched; each
        #    refinement is written again and verified; no generation, ranking or regeneration.
        with engine.connect() as c:
            refined_before = c.execute(
                text("select count(*) from reasoning_paths where origin = 'refined'")
            ).scalar_one()
            refined_questions = set(
                c.execute(
                    text("select distinct question_id from reasoning_paths where origin = 'refined'")
                ).scalars()
            )
            last_call = c.execute(text("select max(id) from llm_calls")).scalar_one()
        assert 0 < len(refined_questions) < N_QUESTIONS
        sim.reset_metrics()
        f2 = _config(
            tmp_path,
            sim.base_url,
            "f2.yaml",
            verifier=_edited("verify", "You verify medical reasoning, strictly."),
            ranker=_edited("rank", "You grade reasoning quality, tersely."),
            summarizer=_edited("summarize", "You condense reasoning into a short summary."),
            refiner=_edited(
                "refine", "You are a senior medical expert who corrects and strengthens reasoning, carefully."
            ),
        )
        run_build(config=str(f2), shard_size=8)
        calls = _roles(sim)
        assert (calls["generate"], calls["rank"], calls["regenerate"]) == (0, 0, 0)
        assert calls["refine"] == refined_before and calls["verify"] == refined_before
        with engine.connect() as c:
            touched = set(
                c.execute(
                    text("select distinct question_id from llm_calls where id > :i"), {"i": last_call}
                ).scalars()
            )
            assert (
                c.execute(text("select count(*) from reasoning_paths where origin = 'refined'")).scalar_one()
                == 2 * refined_before
            )
        assert touched == refined_questions
        # Run again: the new refinements are current, nothing is stale.
        sim.reset_metrics()
        run_build(config=str(f2), shard_size=8)
        assert sum(_roles(sim).values()) == 0
    # Every sha a row records resolves to its exact text, once.
    assert (
        _one(
            engine,
            """select count(*) from (select prompt_sha256 from verdicts union select prompt_sha256 from path_scores
                           union select prompt_sha256 from summaries union select prompt_sha256 from llm_calls
                           union select prompt_sha256 from reasoning_paths) s
                           where s.prompt_sha256 not in (select sha256 from prompt_templates)""",
        )
        == 0
    )


def _export_rows(c) -> set[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    """(question, path, summary) of every row the next export would write."""
    rows = [
        dict(zip(ROW_COLUMNS, r, strict=True)) for r in c.execute(accepted_rows_query(include_simulated=True))
    ]
    return {(r["question_id"], r["path_id"], r["summary_id"]) for r in rows}


def _sha(path: Path) -> str:
    from reasonmed.prompts import load_prompt_file

    return load_prompt_file("summarize", path).sha256


def test_rejudge_changes_verdicts_tiers_and_exports_as_the_new_verdicts_imply(
    built, pg_url: str, tmp_path: Path
) -> None:
    engine = built
    with SimServer(questions_db=pg_url, base_latency_ms=1, per_token_ms=0, default_accuracy=0.6) as sim:
        run_build(config=str(_config(tmp_path, sim.base_url, "base.yaml")), shard_size=8)
    before = _outcomes(engine)
    with engine.connect() as c:
        old_verdicts = {p: o for p, o in c.execute(text("select path_id, outcome from verdicts"))}
        gen_paths = c.execute(
            text("select count(*) from reasoning_paths where origin = 'generated'")
        ).scalar_one()
        old_rows = _export_rows(c)

    # The new verifier (another prompt) judges differently: here the simulator flips a third of its verdicts.
    with SimServer(
        questions_db=pg_url, base_latency_ms=1, per_token_ms=0, default_accuracy=0.6, verifier_error_rate=0.35
    ) as sim:
        v2 = _config(
            tmp_path,
            sim.base_url,
            "v2.yaml",
            verifier=_edited("verify", "You verify medical reasoning, strictly."),
        )
        out = CliRunner().invoke(
            _app(), ["rejudge", "--stage", "verify", "--config", str(v2), "--database-url", pg_url]
        )
        assert out.exit_code == 0, out.output
        calls = _roles(sim)
    assert "reopened" in out.output and f"{N_QUESTIONS} question(s) reopened" in out.output
    assert calls["generate"] == 0  # nothing regenerated
    with engine.connect() as c:
        assert (
            c.execute(text("select count(*) from reasoning_paths where origin = 'generated'")).scalar_one()
            == gen_paths
        )
        current = {
            p: o
            for p, o in c.execute(text("select path_id, outcome from verdicts where superseded_at is null"))
        }
        paths = c.execute(
            text("""select p.id, p.question_id, p.origin, p.extracted_answer, q.answer
                                  from reasoning_paths p join questions q on q.id = p.question_id""")
        ).all()
        new_rows = _export_rows(c)
        runs = c.execute(text("select kind, status from pipeline_runs where kind = 'rejudge'")).all()
    assert runs == [("rejudge", "completed")]
    flipped = {p for p, o in old_verdicts.items() if p in current and current[p] != o}
    assert flipped  # the new verifier did judge differently
    after = _outcomes(engine)
    changed_questions = {q for p, q, *_ in paths if p in flipped}
    for qid, (tier, status, accepted) in after.items():
        gen = [(pid, ans, key) for pid, q, origin, ans, key in paths if q == qid and origin == "generated"]
        n_ok = sum(passes("extracted", current[pid], ans, None, key) for pid, ans, key in gen)
        assert tier == assign_tier(n_ok, easy_min_correct=5, medium_min_correct=2).value, qid
        assert status in ("accepted", "rejected") and (status == "accepted") == bool(accepted)
        for pid in accepted:  # every kept path passes the new verifier and the answer guard
            _, _, _, ans, key = next(p for p in paths if p[0] == pid)
            assert passes("extracted", current[pid], ans, None, key), (qid, pid)
        if qid not in changed_questions:  # no verdict of this question changed: nothing about it changed
            assert (tier, status, accepted) == before[qid], qid
    assert any(after[q] != before[q] for q in changed_questions)
    # Exports: rows of untouched questions are identical; every row is a current accepted path.
    untouched = {r for r in old_rows if r[0] not in changed_questions}
    assert untouched == {r for r in new_rows if r[0] not in changed_questions}
    assert {(q, p) for q, p, _ in new_rows} == {
        (q, p) for q, (t, s, acc) in after.items() if s == "accepted" for p in acc
    }
    # Old verdicts stay for audit, and the audit view compares the two verifier versions.
    with engine.connect() as c:
        versions = c.execute(text("select sum(paths), sum(paths - agree) from audit_verifier_versions")).one()
        reverified = c.execute(
            text("select count(*) from verdicts where superseded_at is not null")
        ).scalar_one()
    # Re-verified: every stored path except refinements a re-decided tier no longer asks for.
    assert (int(versions[0]), int(versions[1])) == (reverified, len(flipped))
    assert gen_paths <= reverified <= len(old_verdicts)


def _app():  # type: ignore[no-untyped-def]
    from reasonmed.cli import app

    return app
