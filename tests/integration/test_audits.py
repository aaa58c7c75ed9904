"""The audit views (migration 0002) on a small hand-built database, exact output on Postgres and SQLite
(the read-only audit role that reads them: test_audit_role.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session

from reasonmed.db import audit_repo, audit_rollups, migrate
from reasonmed.db.engine import make_engine
from reasonmed.db.models import (
    AcceptedPath,
    ContaminationMatch,
    LLMBatch,
    LLMCall,
    PipelineRun,
    Question,
    QuestionFailure,
    QuestionOutcome,
    ReasoningPath,
    Verdict,
)

VIEWS = list(audit_repo.AUDIT_VIEWS)
# Views added after 0002 (by 0003, 0005 and 0007).
LATER_VIEWS = {
    "audit_contamination",
    "audit_set_aside",
    "audit_verifier_disagreements",
    "audit_verifier_versions",
    "audit_batches",
    "audit_cost_per_sample",
}
T0 = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # late in the UTC day: a local-time bug would shift it
PUB = [["yes", "yes"], ["no", "no"], ["maybe", "maybe"]]
MCQ = [["A", "a"], ["B", "b"]]

# (id, question, origin, role, model, temperature, verdict outcome or None, reason)
PATHS = [
    (1, 1, "generated", "generator", "mA", 0.7, "correct", None),
    (2, 1, "generated", "generator", "mB", 0.7, "correct", None),
    (3, 1, "generated", "generator", "mA", 1.0, "error", "misses the key finding"),
    (4, 2, "generated", "generator", "mA", 0.7, "error", "wrong drug"),
    (5, 2, "generated", "generator", "mB", 0.7, "unparseable", "unparseable"),
    (6, 2, "regenerated", "regenerator", "R", 0.7, "error", "still wrong"),
    (7, 3, "generated", "generator", "mA", 0.7, "error", "bad anatomy"),
    (8, 3, "generated", "generator", "mB", 0.7, "correct", None),
    (9, 3, "generated", "generator", "mB", 1.0, None, None),
    (10, 4, "generated", "generator", "mA", 0.7, "correct", None),
    (11, 4, "refined", "refiner", "F", 0.8, "correct", None),
    (12, 4, "refined", "refiner", "F", 0.8, "error", "refined but wrong"),
]


def build_fixture(engine: Engine) -> None:
    """Four questions: accepted (easy), rejected (difficult), in progress, accepted after refinement."""
    with Session(engine) as s, s.begin():
        s.add_all(
            [
                PipelineRun(id=1, kind="build", status="completed", parameters={}, stats={}, started_at=T0),
                PipelineRun(id=2, kind="build", status="completed", parameters={}, stats={}, started_at=T0),
            ]
        )
        s.flush()
        for qid, src, sid, opts, ans in [
            (1, "pubmedqa", "p1", PUB, "yes"),
            (2, "medqa", "m1", MCQ, "A"),
            (3, "medqa", "m2", MCQ, "B"),
            (4, "pubmedqa", "p2", PUB, "no"),
        ]:
            s.add(
                Question(
                    id=qid,
                    content_hash=f"h{qid}",
                    source=src,
                    source_id=sid,
                    split="train",
                    is_benchmark_test=False,
                    question=f"Question {qid}?",
                    context=None,
                    options=opts,
                    answer=ans,
                    meta={},
                    created_at=T0,
                )
            )
        s.flush()
        keys = {1: "yes", 2: "A", 3: "B", 4: "no"}
        for pid, qid, origin, role, model, temp, outcome, _ in PATHS:
            # Paths judged correct conclude with the key (else the answer guard would overrule them).
            s.add(
                ReasoningPath(
                    id=pid,
                    question_id=qid,
                    path_key=f"k{pid}",
                    origin=origin,
                    role=role,
                    run_id=1 if qid < 4 else 2,
                    endpoint=model,
                    model=model,
                    temperature=temp,
                    prompt_sha256="x",
                    raw_text=f"path {pid}",
                    clean_text=f"path {pid}",
                    extracted_answer=keys[qid] if outcome == "correct" and pid != 8 else None,
                    created_at=T0,
                )
            )
        # Path 8 was judged correct but concludes with another option: a verifier disagreement.
        s.flush()
        s.execute(text("UPDATE reasoning_paths SET extracted_answer = 'A' WHERE id = 8"))
        s.flush()
        # Each verdict keeps the rules' reading of its path, judged under the default guard (extracted).
        readings = {
            pid: ans for pid, ans in s.execute(text("SELECT id, extracted_answer FROM reasoning_paths"))
        }
        for pid, qid, *_, outcome, reason in PATHS:
            if outcome:
                s.add(
                    Verdict(
                        id=100 + pid,
                        path_id=pid,
                        question_id=qid,
                        verifier_model="V",
                        prompt_sha256="x",
                        outcome=outcome,
                        reason=reason,
                        created_at=T0,
                        extracted_answer=readings[pid],
                        answer_guard="extracted",
                        guard_answer=readings[pid],
                    )
                )
        # An earlier verifier version judged path 3 correct; the current one (V, prompt x) replaced it.
        s.add(
            Verdict(
                id=90,
                path_id=3,
                question_id=1,
                verifier_model="V0",
                prompt_sha256="old",
                outcome="correct",
                reason=None,
                created_at=T0,
                superseded_at=T0,
            )
        )
        s.flush()
        # Question 1 (accepted) nearly copies question 3, standing in for a benchmark test item.
        s.add(
            ContaminationMatch(
                question_id=1,
                test_question_id=3,
                kind="near",
                jaccard=0.875,
                threshold=0.8,
                ngram=3,
                description="near duplicate (word 3-gram Jaccard 0.875)",
                detected_at=T0,
            )
        )
        s.add_all(
            [
                AcceptedPath(question_id=1, path_id=1, verdict_id=101, rank=0, run_id=1, created_at=T0),
                # Kept by the ranker, then dropped: its summary stayed truncated (migration 0005).
                AcceptedPath(
                    question_id=1,
                    path_id=2,
                    verdict_id=102,
                    rank=1,
                    run_id=1,
                    created_at=T0,
                    dropped_reason="summary truncated after 2 re-ask(s)",
                ),
                # Question 3: refused for good at verification (set aside); question 2 failed once, not set aside.
                QuestionFailure(
                    question_id=3,
                    stage="verify",
                    failures=1,
                    permanent=True,
                    last_error_kind="client_error",
                    last_error="HTTP 400 maximum context length",
                    last_run_id=2,
                    first_failed_at=T0,
                    last_failed_at=T0,
                    set_aside_at=T0,
                ),
                QuestionFailure(
                    question_id=2,
                    stage="generate",
                    failures=1,
                    permanent=False,
                    last_error_kind="timeout",
                    last_error="no complete response",
                    last_run_id=1,
                    first_failed_at=T0,
                    last_failed_at=T0,
                ),
                AcceptedPath(question_id=4, path_id=11, verdict_id=111, rank=0, run_id=2, created_at=T0),
                QuestionOutcome(
                    question_id=1,
                    run_id=1,
                    tier="easy",
                    n_paths=3,
                    n_correct=2,
                    status="accepted",
                    n_accepted=1,
                    updated_at=T0,
                ),
                QuestionOutcome(
                    question_id=2,
                    run_id=1,
                    tier="difficult",
                    n_paths=3,
                    n_correct=0,
                    status="rejected",
                    rejection_reason="no path verified correct after regeneration",
                    n_accepted=0,
                    updated_at=T0,
                ),
                QuestionOutcome(
                    question_id=4,
                    run_id=2,
                    tier="medium",
                    n_paths=1,
                    n_correct=1,
                    status="accepted",
                    n_accepted=1,
                    updated_at=T0,
                ),
            ]
        )
        calls = []
        for i in range(20):  # verifier, day 1: latencies 10..200; one failed call that took 3 attempts
            calls.append(
                dict(
                    role="verifier",
                    model="V",
                    prompt_tokens=100,
                    completion_tokens=10,
                    latency_ms=10.0 * (i + 1),
                    status="error" if i == 0 else "ok",
                    attempts=3 if i == 0 else 1,
                    created_at=T0,
                    # questions 1 (easy), 2 (difficult) and 4 (medium): 10, 5 and 5 verifications
                    question_id=1 if i < 10 else 2 if i < 15 else 4,
                    cached_prompt_tokens=40,  # the verifier's server reports its prefix-cache hits
                )
            )
        for lat, pt, ct, qid in [(None, None, 1, 1), (30.0, 5, 2, 1), (10.0, 7, None, 2)]:  # generator, day 2
            calls.append(
                dict(
                    role="generator",
                    model="mA",
                    prompt_tokens=pt,
                    completion_tokens=ct,
                    latency_ms=lat,
                    status="ok",
                    attempts=1,
                    created_at=T0 + timedelta(hours=1),
                    question_id=qid,
                )
            )
        calls.append(
            dict(
                role="generator",
                model="mA",
                prompt_tokens=None,
                completion_tokens=None,
                latency_ms=42.5,
                status="ok",
                attempts=1,
                created_at=T0,
                question_id=3,  # in progress: no outcome, so no tier and no cost per sample yet
            )
        )
        for i, c in enumerate(calls):
            s.add(LLMCall(call_key=f"c{i}", endpoint=c["model"], temperature=0.0, n=1, **c))
        # A collected batch: 4 requests, 2 answered, 1 failed line, 1 no line answered.
        s.add(
            LLMBatch(
                id=1,
                endpoint="hosted",
                model="S",
                submission_key="k1",
                remote_id="batch_1",
                status="expired",
                requests=4,
                input_bytes=1000,
                completed=2,
                failed=1,
                prompt_tokens=300,
                completion_tokens=40,
                cost_usd=0.00057,
                worker="w",
                run_id=1,
                created_at=T0,
                collected_at=T0,
            )
        )


EXPECTED: dict[str, list[dict]] = {
    "audit_rejected_paths": [
        # (path_id, question_id, why, verdict_outcome, error_analysis, tier, question_status)
        dict(
            path_id=2,
            question_id=1,
            why="summary truncated after 2 re-ask(s)",
            verdict_outcome="correct",
            error_analysis=None,
            tier="easy",
            question_status="accepted",
        ),
        dict(
            path_id=3,
            question_id=1,
            why="judged error",
            verdict_outcome="error",
            error_analysis="misses the key finding",
            tier="easy",
            question_status="accepted",
        ),
        dict(
            path_id=4,
            question_id=2,
            why="judged error",
            verdict_outcome="error",
            error_analysis="wrong drug",
            tier="difficult",
            question_status="rejected",
        ),
        dict(
            path_id=5,
            question_id=2,
            why="judged unparseable",
            verdict_outcome="unparseable",
            error_analysis="unparseable",
            tier="difficult",
            question_status="rejected",
        ),
        dict(
            path_id=6,
            question_id=2,
            why="judged error",
            verdict_outcome="error",
            error_analysis="still wrong",
            tier="difficult",
            question_status="rejected",
        ),
        dict(
            path_id=7,
            question_id=3,
            why="judged error",
            verdict_outcome="error",
            error_analysis="bad anatomy",
            tier=None,
            question_status=None,
        ),
        dict(
            path_id=8,
            question_id=3,
            why="judged correct but its answer is not the key",
            verdict_outcome="correct",
            error_analysis=None,
            tier=None,
            question_status=None,
        ),
        dict(
            path_id=9,
            question_id=3,
            why="not verified",
            verdict_outcome="unverified",
            error_analysis=None,
            tier=None,
            question_status=None,
        ),
        dict(
            path_id=10,
            question_id=4,
            why="correct but not kept",
            verdict_outcome="correct",
            error_analysis=None,
            tier="medium",
            question_status="accepted",
        ),
        dict(
            path_id=12,
            question_id=4,
            why="judged error",
            verdict_outcome="error",
            error_analysis="refined but wrong",
            tier="medium",
            question_status="accepted",
        ),
    ],
    "audit_verifier_accuracy": [
        dict(
            model="F",
            temperature=0.8,
            source="pubmedqa",
            origin="refined",
            verifier_model="V",
            paths=2,
            correct=1,
            errors=1,
            unparseable=0,
            accuracy=0.5,
        ),
        dict(
            model="R",
            temperature=0.7,
            source="medqa",
            origin="regenerated",
            verifier_model="V",
            paths=1,
            correct=0,
            errors=1,
            unparseable=0,
            accuracy=0.0,
        ),
        dict(
            model="mA",
            temperature=0.7,
            source="medqa",
            origin="generated",
            verifier_model="V",
            paths=2,
            correct=0,
            errors=2,
            unparseable=0,
            accuracy=0.0,
        ),
        dict(
            model="mA",
            temperature=0.7,
            source="pubmedqa",
            origin="generated",
            verifier_model="V",
            paths=2,
            correct=2,
            errors=0,
            unparseable=0,
            accuracy=1.0,
        ),
        dict(
            model="mA",
            temperature=1.0,
            source="pubmedqa",
            origin="generated",
            verifier_model="V",
            paths=1,
            correct=0,
            errors=1,
            unparseable=0,
            accuracy=0.0,
        ),
        dict(
            model="mB",
            temperature=0.7,
            source="medqa",
            origin="generated",
            verifier_model="V",
            paths=2,
            correct=1,
            errors=0,
            unparseable=1,
            accuracy=0.5,
        ),
        dict(
            model="mB",
            temperature=0.7,
            source="pubmedqa",
            origin="generated",
            verifier_model="V",
            paths=1,
            correct=1,
            errors=0,
            unparseable=0,
            accuracy=1.0,
        ),
    ],
    "audit_tier_distribution": [
        dict(
            run_id=1,
            tier="difficult",
            questions=1,
            accepted=0,
            resolved=0,
            rejected=1,
            accepted_paths=0,
            share=0.5,
        ),
        dict(
            run_id=1,
            tier="easy",
            questions=1,
            accepted=1,
            resolved=0,
            rejected=0,
            accepted_paths=1,
            share=0.5,
        ),
        dict(
            run_id=2,
            tier="medium",
            questions=1,
            accepted=1,
            resolved=0,
            rejected=0,
            accepted_paths=1,
            share=1.0,
        ),
    ],
    "audit_refinement_success": [
        dict(
            stage="refiner",
            model="F",
            paths_written=2,
            verified=2,
            reverified_correct=1,
            success_rate=0.5,
            kept=1,
        ),
        dict(
            stage="regenerator",
            model="R",
            paths_written=1,
            verified=1,
            reverified_correct=0,
            success_rate=0.0,
            kept=0,
        ),
    ],
    "audit_rejected_questions": [
        dict(
            question_id=2,
            source="medqa",
            source_id="m1",
            question="Question 2?",
            tier="difficult",
            n_paths=3,
            n_correct=0,
            rejection_reason="no path verified correct after regeneration",
            run_id=1,
        ),
    ],
    "audit_set_aside": [
        dict(
            question_id=3,
            source="medqa",
            source_id="m2",
            stage="verify",
            failures=1,
            last_error_kind="client_error",
            last_error="HTTP 400 maximum context length",
            last_run_id=2,
        ),
    ],
    "audit_contamination": [
        dict(
            question_id=1,
            source="pubmedqa",
            source_id="p1",
            kind="near",
            jaccard=0.875,
            test_question_id=3,
            test_source="medqa",
            test_source_id="m2",
            threshold=0.8,
            ngram=3,
        ),
    ],
    "audit_verifier_disagreements": [
        dict(
            path_id=3,
            question_id=1,
            verdict_id=90,
            verifier_model="V0",
            answer_key="yes",
            extracted_answer=None,
            disagreement="no final answer",
            current_verdict=0,
        ),
        dict(
            path_id=8,
            question_id=3,
            verdict_id=108,
            verifier_model="V",
            answer_key="B",
            extracted_answer="A",
            disagreement="other option",
            current_verdict=1,
        ),
    ],
    "audit_verifier_versions": [
        dict(
            a_model="V0",
            a_prompt_sha256="old",
            b_model="V",
            b_prompt_sha256="x",
            path_model="mA",
            temperature=1.0,
            origin="generated",
            paths=1,
            agree=0,
            agreement=0.0,
            flips_from_correct=1,
            flips_to_correct=0,
        ),
    ],
    "audit_batches": [
        dict(
            batch_id=1,
            endpoint="hosted",
            status="expired",
            requests=4,
            completed=2,
            failed=1,
            unanswered=1,
            prompt_tokens=300,
            completion_tokens=40,
            cost_usd=0.00057,
            run_id=1,
        )
    ],
    # Worked by hand from the calls above: verifier calls have 100 prompt and 10 completion tokens and
    # latencies 10, 20, ..., 200 ms (calls 1-10 question 1, 11-15 question 2, 16-20 question 4); tiers hold one
    # question each, with 1 (easy), 0 (difficult) and 1 (medium) accepted samples.
    "audit_cost_per_sample": [
        dict(
            tier="easy",
            role="verifier",
            questions=1,
            accepted_samples=1,
            calls=10,
            prompt_tokens=1000,
            cached_prompt_tokens=400,  # 40 per call, as the server reported
            completion_tokens=100,
            engine_s=0.55,  # 10 + 20 + ... + 100 ms
            prompt_tokens_per_sample=1000.0,
            completion_tokens_per_sample=100.0,
            engine_s_per_sample=0.55,
        ),
        dict(
            tier="easy",
            role="generator",
            questions=1,
            accepted_samples=1,
            calls=2,
            prompt_tokens=5,  # a call that reported no usage counts none
            cached_prompt_tokens=None,  # the server never said
            completion_tokens=3,
            engine_s=0.03,
            prompt_tokens_per_sample=5.0,
            completion_tokens_per_sample=3.0,
            engine_s_per_sample=0.03,
        ),
        dict(
            tier="difficult",
            role="verifier",
            questions=1,
            accepted_samples=0,
            calls=5,
            prompt_tokens=500,
            cached_prompt_tokens=200,
            completion_tokens=50,
            engine_s=0.65,  # 110 + ... + 150 ms
            prompt_tokens_per_sample=None,  # nothing accepted: no cost per sample
            completion_tokens_per_sample=None,
            engine_s_per_sample=None,
        ),
        dict(
            tier="difficult",
            role="generator",
            questions=1,
            accepted_samples=0,
            calls=1,
            prompt_tokens=7,
            cached_prompt_tokens=None,
            completion_tokens=0,
            engine_s=0.01,
            prompt_tokens_per_sample=None,
            completion_tokens_per_sample=None,
            engine_s_per_sample=None,
        ),
        dict(
            tier="medium",
            role="verifier",
            questions=1,
            accepted_samples=1,
            calls=5,
            prompt_tokens=500,
            cached_prompt_tokens=200,
            completion_tokens=50,
            engine_s=0.9,  # 160 + ... + 200 ms
            prompt_tokens_per_sample=500.0,
            completion_tokens_per_sample=50.0,
            engine_s_per_sample=0.9,
        ),
    ],
    "audit_token_usage": [
        dict(
            model="V",
            stage="verifier",
            day="2026-11-20",
            calls=20,
            failed_calls=1,
            attempts=22,
            prompt_tokens=2000,
            completion_tokens=200,
            total_tokens=2200,
            mean_latency_ms=105.0,
            p95_latency_ms=190.0,
        ),
        dict(
            model="mA",
            stage="generator",
            day="2026-11-20",
            calls=1,
            failed_calls=0,
            attempts=1,
            prompt_tokens=0,
            completion_tokens=0,
            total_tokens=0,
            mean_latency_ms=42.5,
            p95_latency_ms=42.5,
        ),
        dict(
            model="mA",
            stage="generator",
            day="2026-11-21",
            calls=3,
            failed_calls=0,
            attempts=3,
            prompt_tokens=12,
            completion_tokens=3,
            total_tokens=15,
            mean_latency_ms=20.0,
            p95_latency_ms=30.0,
        ),
    ],
}


@pytest.fixture
def audit_engine(db_url: str) -> Iterator[Engine]:
    """The fixture's rows, counted by the rolled-up views too (Postgres: test_audit_rollups.py)."""
    eng = make_engine(db_url)
    build_fixture(eng)
    audit_rollups.refresh_rollups(eng)
    yield eng
    eng.dispose()


def _key(row: dict) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def _project(rows: list[dict], like: list[dict]) -> list[dict]:
    keys = list(like[0]) if like else []
    return [{k: r[k] for k in keys} for r in rows]


@pytest.mark.parametrize("view", VIEWS)
def test_view_output_is_exact(audit_engine: Engine, view: str) -> None:
    """The same hand-built rows give the same view output on Postgres and on SQLite."""
    with audit_engine.connect() as conn:
        order = audit_repo.AUDIT_VIEWS[view]
        rows = [dict(r) for r in conn.execute(text(f"SELECT * FROM {view} ORDER BY {order}")).mappings()]
    # Sorted in Python: text collation differs between the engines ('R' < 'mA' in C, not in en_US).
    expected = sorted(EXPECTED[view], key=_key)
    got = sorted(_project(rows, expected), key=_key)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g == pytest.approx(e), (g, e)
    if view == "audit_rejected_paths":
        assert {r["verifier_model"] for r in rows if r["path_id"] != 9} == {"V"} and next(
            r for r in rows if r["path_id"] == 9
        )["verdict_id"] is None
        assert (
            rows[0]["source"] == "pubmedqa"
            and rows[0]["model"] == "mB"
            and rows[0]["temperature"] == pytest.approx(0.7)
        )
    if view == "audit_rejected_questions":
        assert rows[0]["updated_at"] is not None
    if view == "audit_contamination":  # EXISTS is 0/1 on SQLite, a boolean on Postgres
        assert (bool(rows[0]["has_accepted_paths"]), bool(rows[0]["in_dataset"])) == (True, False)


def test_audit_repo_summaries(audit_engine: Engine) -> None:
    assert audit_repo.rejections_by_reason(audit_engine) == {
        "questions": [{"reason": "no path verified correct after regeneration", "n": 1}],
        "paths": [
            {"reason": "judged error", "n": 5},
            {"reason": "correct but not kept", "n": 1},
            {"reason": "judged correct but its answer is not the key", "n": 1},
            {"reason": "judged unparseable", "n": 1},
            {"reason": "not verified", "n": 1},
            {"reason": "summary truncated after 2 re-ask(s)", "n": 1},
        ],
    }
    acc = {(r["model"], r["temperature"]): r["accuracy"] for r in audit_repo.generator_accuracy(audit_engine)}
    assert acc == pytest.approx({("mA", 0.7): 0.5, ("mA", 1.0): 0.0, ("mB", 0.7): 2 / 3})
    words = audit_repo.path_word_counts(audit_engine)
    assert words[0] == ("generated", True, 2) and len(words) == len(PATHS)
    assert {r["stage"]: r["total_tokens"] for r in audit_repo.tokens_by_stage(audit_engine)} == {
        "generator": 15,
        "verifier": 2200,
    }


def test_views_query_on_sqlite_and_are_dropped_by_downgrade(sqlite_url: str) -> None:
    eng = make_engine(sqlite_url)
    try:
        assert set(VIEWS) - LATER_VIEWS <= set(inspect(eng).get_view_names())
        for view in VIEWS:
            assert audit_repo.view_rows(eng, view) == []
        migrate.downgrade(sqlite_url, "0001")
        eng.dispose()
        assert not set(VIEWS) & set(inspect(eng).get_view_names())
        assert "questions" in inspect(eng).get_table_names()
    finally:
        eng.dispose()


@pytest.mark.postgres
def test_downgrade_drops_the_views_on_postgres(empty_pg_url: str) -> None:
    migrate.upgrade(empty_pg_url, "0002")
    eng = make_engine(empty_pg_url)
    try:
        assert set(VIEWS) - LATER_VIEWS <= set(inspect(eng).get_view_names())
        migrate.downgrade(empty_pg_url, "0001")
        assert not set(VIEWS) & set(inspect(eng).get_view_names())
        migrate.upgrade(empty_pg_url, "0002")
        assert set(VIEWS) - LATER_VIEWS <= set(inspect(eng).get_view_names())
    finally:
        eng.dispose()


def test_nightly_cost_per_sample_of_the_questions_finished_since(audit_engine: Engine) -> None:
    """The nightly report's per-sample rows, worked by hand from the fixture: question 1 (easy, 1 sample) has
    10 verifier and 2 generator calls, question 2 (difficult, rejected) 5 and 1, question 4 (medium, 1
    sample) 5; question 3 is unfinished and left out."""
    from reasonmed.db.nightly_repo import finished_since

    cost = sorted(finished_since(audit_engine, T0 - timedelta(hours=1))["cost"], key=lambda r: r["tier"])
    assert cost == [
        dict(
            tier="difficult",
            samples=0,
            calls=6,
            prompt_tokens_per_sample=None,
            completion_tokens_per_sample=None,
            engine_s_per_sample=None,
        ),
        dict(
            tier="easy",
            samples=1,
            calls=12,
            prompt_tokens_per_sample=1005.0,
            completion_tokens_per_sample=103.0,
            engine_s_per_sample=0.58,
        ),
        dict(
            tier="medium",
            samples=1,
            calls=5,
            prompt_tokens_per_sample=500.0,
            completion_tokens_per_sample=50.0,
            engine_s_per_sample=0.9,
        ),
    ]
    assert finished_since(audit_engine, T0 + timedelta(hours=1))["cost"] == []  # nothing finished since
