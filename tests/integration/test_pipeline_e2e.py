"""End to end: a real build (Prefect flow -> simulator over HTTP -> Postgres) stores exactly what the
simulator's deterministic answers imply, and every accepted sample traces back through SQL."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import text

from reasonmed.config import load_pipeline_config
from reasonmed.db.engine import get_engine
from reasonmed.sim.prose import clip_words, defuse
from reasonmed.tiers import Tier
from tests.sim_expectations import expected_for

# tests/fixtures_pipeline.py builds with these simulator settings.
ACCURACY, REFINE_ACCURACY = 0.4, 0.55


def _rows(engine, sql: str, **params):  # type: ignore[no-untyped-def]
    with engine.connect() as c:
        return c.execute(text(sql), params).all()


def test_counts_match_what_the_simulator_implies(built_pg_db) -> None:
    engine = get_engine(built_pg_db.url)
    cfg = load_pipeline_config(built_pg_db.config_path)
    outcomes = {
        qid: (tier, status, n_correct)
        for qid, tier, status, n_correct in _rows(
            engine, "select question_id, tier, status, n_correct from question_outcomes"
        )
    }
    assert len(outcomes) == 60
    tiers_seen: Counter[str] = Counter()
    expected_paths = expected_verdicts = expected_summaries = 0
    for qid, (tier, status, n_correct) in outcomes.items():
        exp = expected_for(engine, cfg, qid, accuracy=ACCURACY, refine_accuracy=REFINE_ACCURACY)
        assert (n_correct, tier, status) == (exp.n_correct, exp.tier.value, exp.status), f"question {qid}"
        accepted = [
            k
            for (k,) in _rows(
                engine,
                """
            select p.path_key from accepted_paths a join reasoning_paths p on p.id = a.path_id
            where a.question_id = :q order by a.rank""",
                q=qid,
            )
        ]
        assert accepted == exp.accepted_keys, f"question {qid}"
        tiers_seen[tier] += 1
        extra = {
            Tier.EASY: 0,
            Tier.MEDIUM: min(cfg.agents.refiner.max_paths, exp.n_correct),
            Tier.DIFFICULT: 1 + cfg.agents.regenerator.paths,
        }[exp.tier]
        expected_paths += cfg.paths_per_question + extra
        expected_verdicts += cfg.paths_per_question + extra
        expected_summaries += len(exp.accepted_keys)
    # The fixture's low accuracy exercises every tier, refinement and rejection.
    assert set(tiers_seen) == {"easy", "medium", "difficult"}, tiers_seen
    assert _rows(engine, "select count(*) from reasoning_paths")[0][0] == expected_paths
    assert _rows(engine, "select count(*) from verdicts")[0][0] == expected_verdicts
    assert _rows(engine, "select count(*) from summaries")[0][0] == expected_summaries
    # One call row per logical request; nothing failed in a fault-free run.
    n_calls, n_failed = _rows(
        engine, "select count(*), sum(case when status = 'ok' then 0 else 1 end) from llm_calls"
    )[0]
    assert n_failed == 0
    assert n_calls == built_pg_db.sim_metrics['requests_total{outcome="ok"}']


def test_no_benchmark_test_item_was_processed(built_pg_db) -> None:
    engine = get_engine(built_pg_db.url)
    assert _rows(engine, "select count(*) from questions where is_benchmark_test")[0][0] == 500
    leaked = _rows(
        engine,
        """select count(*) from questions q where q.is_benchmark_test and
        (exists (select 1 from reasoning_paths p where p.question_id = q.id)
         or exists (select 1 from question_outcomes o where o.question_id = q.id))""",
    )
    assert leaked[0][0] == 0


def test_every_sample_traces_back_to_paths_verdicts_calls_and_prompts(built_pg_db) -> None:
    engine = get_engine(built_pg_db.url)
    rows = _rows(
        engine,
        """
        select a.path_id, v.outcome, p.origin, c.prompt_sha256 = p.prompt_sha256, t.name, s.text, cs.role,
               r.kind, r.status, c.prefect_task_run_id is not null, c.prefect_flow_run_id is not null
        from accepted_paths a
        join question_outcomes o on o.question_id = a.question_id and o.status = 'accepted'
        join reasoning_paths p on p.id = a.path_id
        join verdicts v on v.id = a.verdict_id and v.path_id = p.id
        join llm_calls c on c.id = p.llm_call_id
        join prompt_templates t on t.sha256 = p.prompt_sha256
        join summaries s on s.path_id = p.id
        join llm_calls cs on cs.id = s.llm_call_id
        join pipeline_runs r on r.id = p.run_id""",
    )
    n_accepted = _rows(
        engine,
        """select count(*) from accepted_paths a join question_outcomes o
        on o.question_id = a.question_id where o.status = 'accepted'""",
    )[0][0]
    assert n_accepted > 0 and len(rows) == n_accepted  # every sample joins all the way through
    for (
        _pid,
        outcome,
        origin,
        same_sha,
        template,
        summary,
        summary_role,
        kind,
        run_status,
        has_task,
        has_flow,
    ) in rows:
        assert outcome == "correct"
        assert same_sha
        assert template == {"generated": "generate", "refined": "refine", "regenerated": "regenerate"}[origin]
        assert summary.strip() and summary_role == "summarizer"
        assert (kind, run_status) == ("build", "completed")
        assert has_task and has_flow
    # Rejected questions carry their reason; no summaries are written for them.
    for reason, n_summaries in _rows(
        engine,
        """select o.rejection_reason, (select count(*) from summaries s
        where s.question_id = o.question_id) from question_outcomes o where o.status = 'rejected'""",
    ):
        assert reason and reason.startswith("difficult tier:") and n_summaries == 0


def test_rewrites_start_from_the_correct_path_else_a_failed_attempt_with_the_errors(built_pg_db) -> None:
    """Refiner and regenerator start from the question's Correct path when it has one (the released
    diff_opti.py does so for its regenerator), else from a failed attempt."""
    engine = get_engine(built_pg_db.url)
    rows = _rows(
        engine,
        """
        select p.question_id, p.origin, p.clean_text, parent.origin, v.outcome, o.tier, o.n_correct
        from reasoning_paths p
        join reasoning_paths parent on parent.id = p.parent_path_id
        join verdicts v on v.path_id = parent.id
        join question_outcomes o on o.question_id = p.question_id
        where p.origin in ('refined', 'regenerated')""",
    )
    assert {(r[1], r[5]) for r in rows} == {
        ("refined", "medium"),
        ("refined", "difficult"),
        ("regenerated", "difficult"),
    }
    assert {(r[1], r[4]) for r in rows if r[5] == "difficult" and r[6] == 1} == {
        ("refined", "correct"),
        ("regenerated", "correct"),
    }
    for qid, origin, clean_text, parent_origin, parent_outcome, tier, n_correct in rows:
        assert parent_origin == "generated"
        if tier == "difficult" and n_correct == 0:
            assert parent_outcome == "error"  # no Correct path: a failed attempt
        else:
            assert parent_outcome == "correct"  # the best (medium) or the lone (difficult) Correct path
        # The prompt carried the verifier's analyses of the question's failed attempts, in generation
        # order (the simulator quotes the first four back): they are what the rewrite corrects.
        reasons = list(
            dict.fromkeys(
                r
                for (r,) in _rows(
                    engine,
                    """
            select v.reason from reasoning_paths g join verdicts v on v.path_id = g.id
            where g.question_id = :q and g.origin = 'generated' and v.outcome = 'error'
            order by g.generation_order, g.id""",
                    q=qid,
                )
            )
        )
        assert reasons, qid
        for reason in reasons[:4]:
            assert defuse(clip_words(reason.strip(), 30)) in clean_text, (qid, origin)


def test_run_report_and_artifact_tables(built_pg_db) -> None:
    report = built_pg_db.result["report"]
    assert sum(r["questions"] for r in report["tiers"]) == 60
    generators = {r["model"] for r in report["verifier_accuracy"]}
    assert generators == {
        "sim/Qwen2.5-72B-Instruct",
        "sim/DeepSeek-R1-Distill-Llama-70B",
        "sim/HuatuoGPT-o1-70B",
    }
    assert {r["stage"] for r in report["tokens"]} >= {"generator", "verifier", "summarizer"}
    # Every path not accepted is counted once, by origin and why (judged error, correct but not kept...).
    engine = get_engine(built_pg_db.url)
    n_paths, n_accepted = _rows(
        engine, "select (select count(*) from reasoning_paths), (select count(*) from accepted_paths)"
    )[0]
    assert sum(r["paths"] for r in report["rejected_paths"]) == n_paths - n_accepted
    assert {r["reason"] for r in report["rejected_paths"]} >= {"judged error", "correct but not kept"}
    assert built_pg_db.result["done"] == 60 and built_pg_db.result["failed"] == 0


def test_run_artifacts_are_published_with_keys(built_pg_db) -> None:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read(key: str):  # type: ignore[no-untyped-def]
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
            )

    flow_run_id = _rows(
        get_engine(built_pg_db.url), "select prefect_flow_run_id from pipeline_runs where kind = 'build'"
    )[0][0]
    for key in (
        "build-tiers",
        "build-verifier-accuracy",
        "build-tokens",
        "build-rejections",
        "build-rejected-paths",
        "build-progress",
    ):
        artifacts = asyncio.run(read(key))
        mine = [a for a in artifacts if str(a.flow_run_id) == flow_run_id]
        assert mine, f"artifact {key} missing for the build's flow run"
    tiers = [a for a in asyncio.run(read("build-tiers")) if str(a.flow_run_id) == flow_run_id][0]
    assert "easy" in str(tiers.data) and "difficult" in str(tiers.data)
    progress = [a for a in asyncio.run(read("build-progress")) if str(a.flow_run_id) == flow_run_id][0]
    assert float(progress.data) == 100.0
    # The description carries the run's summary with its time left (none: all settled).
    assert progress.description == (
        f"build run {built_pg_db.result['run_id']}: 60 of 60 questions settled; "
        "time left: none, every question has settled"
    )
