"""The stage functions on their own (no Prefect): idempotent, resumable, and robust to bad output and
failing endpoints. Real HTTP to the simulator, real databases."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from reasonmed.config import PipelineConfig, load_pipeline_config
from reasonmed.db import state_repo
from reasonmed.db.engine import make_engine
from reasonmed.ingest.service import ingest_file
from reasonmed.llm.registry import LLMRegistry
from reasonmed.pipeline import stages
from reasonmed.pipeline.context import StageContext, stage_keys
from reasonmed.pipeline.failures import StageIncomplete
from reasonmed.provenance import Provenance
from reasonmed.sim.launcher import SimServer
from tests.fixtures_pipeline import write_sim_config

QUESTION = {
    "question": "A 62-year-old man has crushing chest pain radiating to the left arm for 40 minutes. ECG shows "
    "ST elevation in II, III and aVF. Which coronary artery is most likely occluded?",
    "options": {
        "A": "Left anterior descending artery",
        "B": "Left circumflex artery",
        "C": "Right coronary artery",
        "D": "Left main coronary artery",
    },
    "answer_idx": "C",
}


def _setup(url: str, tmp_path: Path) -> int:
    f = tmp_path / "q.jsonl"
    import json

    f.write_text(json.dumps(QUESTION) + "\n")
    engine = make_engine(url)
    ingest_file(engine, f, "medqa")
    with engine.connect() as c:
        return c.execute(text("select id from questions")).scalar_one()


def _count(url: str, sql: str) -> int:
    engine = make_engine(url)
    with engine.connect() as c:
        return c.execute(text(sql)).scalar_one()


async def _run(url: str, cfg: PipelineConfig, fn, qid: int):  # type: ignore[no-untyped-def]
    registry = LLMRegistry(cfg)
    try:
        ctx = StageContext(engine=make_engine(url), cfg=cfg, backends=registry, run_id=None)
        return await fn(ctx, qid, Provenance())
    finally:
        await registry.aclose()


def test_stages_write_once_and_ask_only_for_what_is_missing(db_url: str, tmp_path: Path) -> None:
    qid = _setup(db_url, tmp_path)
    with SimServer(questions_db=db_url, base_latency_ms=1, per_token_ms=0) as sim:
        cfg = load_pipeline_config(write_sim_config(tmp_path / "p.yaml", sim.base_url))
        assert asyncio.run(_run(db_url, cfg, stages.generate, qid)) == 9
        assert asyncio.run(_run(db_url, cfg, stages.generate, qid)) == 0
        assert sim.metrics()['requests_by_role_total{role="generate"}'] == 9
        with pytest.raises(StageIncomplete, match="generation or verification is incomplete"):
            asyncio.run(_run(db_url, cfg, stages.resolve, qid))
        for _ in range(2):
            asyncio.run(_run(db_url, cfg, stages.verify, qid))
        assert sim.metrics()['requests_by_role_total{role="verify"}'] == 9
        status = asyncio.run(_run(db_url, cfg, stages.resolve, qid))
        assert status in ("resolved", "rejected")
        before = sim.metrics()['requests_total{outcome="ok"}']
        assert asyncio.run(_run(db_url, cfg, stages.resolve, qid)) == status  # decided once
        final = asyncio.run(_run(db_url, cfg, stages.summarize, qid))
        assert asyncio.run(_run(db_url, cfg, stages.summarize, qid)) == final
        n_summaries = _count(db_url, "select count(*) from summaries")
        assert final == ("accepted" if status == "resolved" else "rejected")
        assert (
            n_summaries == _count(db_url, "select count(*) from accepted_paths")
            if final == "accepted"
            else n_summaries == 0
        )
        # The second resolve and summarize asked nothing new beyond the first summarize.
        served = sim.metrics()['requests_total{outcome="ok"}']
        assert served - before == n_summaries
    assert _count(db_url, "select count(*) from reasoning_paths where origin = 'generated'") == 9
    # One call row per request the simulator served (its own count): no request unrecorded, none twice.
    assert _count(db_url, "select count(*) from llm_calls") == served
    assert _count(db_url, "select sum(attempts) from llm_calls") == served


def test_failing_endpoint_keeps_the_good_paths_and_records_the_failures(pg_url: str, tmp_path: Path) -> None:
    qid = _setup(pg_url, tmp_path)
    with (
        SimServer(questions_db=pg_url, base_latency_ms=1, per_token_ms=0) as good,
        SimServer(questions_db=pg_url, base_latency_ms=1, per_token_ms=0, faults={"500": 1.0}) as broken,
    ):
        path = write_sim_config(tmp_path / "p.yaml", good.base_url)
        cfg = load_pipeline_config(path)
        data = cfg.snapshot()
        data["endpoints"]["sim-huatuo"].update(base_url=broken.base_url, max_retries=2)
        bad_cfg = PipelineConfig.model_validate(data)
        with pytest.raises(
            StageIncomplete, match="3 request\\(s\\) failed; first: generator on sim-huatuo: server_error"
        ):
            asyncio.run(_run(pg_url, bad_cfg, stages.generate, qid))
        assert _count(pg_url, "select count(*) from reasoning_paths") == 6
        assert (
            _count(
                pg_url,
                "select count(*) from llm_calls where status = 'error' and error_kind = 'server_error'",
            )
            == 3
        )
        assert (
            _count(pg_url, "select min(attempts) from llm_calls where status = 'error'") == 3
        )  # 1 + 2 retries
        assert broken.metrics()['requests_total{outcome="500"}'] == 9
        # The endpoint recovers: only the three missing paths are asked for, and their call rows complete.
        assert asyncio.run(_run(pg_url, cfg, stages.generate, qid)) == 3
        assert good.metrics()['requests_by_role_total{role="generate"}'] == 9
    assert _count(pg_url, "select count(*) from reasoning_paths") == 9
    assert _count(pg_url, "select count(*) from llm_calls where status = 'error'") == 0
    assert _count(pg_url, "select count(*) from llm_calls") == 9


def test_unparseable_output_is_recorded_not_fatal(sqlite_url: str, tmp_path: Path) -> None:
    qid = _setup(sqlite_url, tmp_path)
    with SimServer(
        questions_db=sqlite_url, base_latency_ms=1, per_token_ms=0, faults={"noanswer": 1.0}
    ) as sim:
        cfg = load_pipeline_config(write_sim_config(tmp_path / "p.yaml", sim.base_url, output_retries=1))
        asyncio.run(_run(sqlite_url, cfg, stages.generate, qid))
        asyncio.run(_run(sqlite_url, cfg, stages.verify, qid))
        status = asyncio.run(_run(sqlite_url, cfg, stages.resolve, qid))
    # Paths with no final answer are kept as such; verdicts that never parse are kept as 'unparseable'.
    assert (
        _count(
            sqlite_url,
            "select count(*) from reasoning_paths where origin = 'generated' and extracted_answer is null",
        )
        == 9
    )
    assert (
        _count(
            sqlite_url,
            "select count(*) from verdicts where outcome = 'unparseable' and reason = 'unparseable'",
        )
        >= 9
    )
    assert (
        _count(sqlite_url, "select min(attempts) from llm_calls where role = 'generator'") == 2
    )  # asked again once
    assert (
        _count(sqlite_url, "select min(parse_attempts) from verdicts") == cfg.agents.verifier.parse_attempts
    )
    # Nothing counted as correct: the question goes to the difficult tier and is rejected with a reason.
    assert status == "rejected"
    engine = make_engine(sqlite_url)
    st = state_repo.load_state(engine, qid, stage_keys(cfg), simulated=True)
    assert st.outcome.tier == "difficult" and "regenerated" in st.outcome.rejection_reason


async def test_a_reask_says_what_was_wrong_and_keeps_the_seed(sim_factory) -> None:  # type: ignore[no-untyped-def]
    """An unparseable reply is asked again with the same seed and a note appended to the request: a real
    engine at temperature 0 would repeat the same text for the same prompt, so the prompt must change.
    Over real HTTP: the simulator's first reply carries no verdict, the second is a normal one."""
    from reasonmed.agents.base import REASK_NOTES, QuestionView, Sampling
    from reasonmed.agents.verifier import verify_path
    from reasonmed.llm.openai_backend import OpenAICompatibleBackend
    from reasonmed.prompts import get_template
    from tests.fixtures_sim import sim_endpoint

    server = sim_factory(fault_script=["noanswer", "ok"])
    http = OpenAICompatibleBackend("sim", sim_endpoint(server))
    sent: list[tuple[list[dict[str, str]], int | None]] = []

    class Recording:
        name, model = http.name, http.model

        async def complete(self, messages, **kw):  # type: ignore[no-untyped-def]
            sent.append(([dict(m) for m in messages], kw.get("seed")))
            return await http.complete(messages, **kw)

    q = QuestionView(
        id=1,
        content_hash="h",
        source="medqa",
        question="Which drug reverses heparin?",
        context=None,
        options={"A": "Vitamin K", "B": "Protamine sulfate", "C": "Naloxone"},
        answer="B",
    )
    try:
        call, verdict = await verify_path(
            Recording(),
            q,
            "Protamine binds heparin.\nFinal answer: B",  # type: ignore[arg-type]
            sampling=Sampling(0.0, 1.0, 256),
            seed=42,
            attempts=2,
        )
    finally:
        await http.aclose()
    assert verdict is not None and verdict.outcome == "correct" and call.attempts == 2
    (first, seed1), (second, seed2) = sent
    assert seed1 == seed2 == 42
    assert second[0] == first[0]  # the same system prompt
    assert (
        second[1]["content"] == first[1]["content"].rstrip("\n") + "\n\n" + REASK_NOTES["unparseable"] + "\n"
    )
    # The call records the sha of the variant it last sent (the re-ask), whose rendering is exactly that text.
    template = get_template("verify")
    variant = template.reask("unparseable")
    assert call.template_sha256 == template.sha256 and call.prompt_sha256 == variant.sha256 != template.sha256
    fields = q.prompt_fields() | {"path": "Protamine binds heparin.\nFinal answer: B"}
    assert variant.render(**fields) == second
