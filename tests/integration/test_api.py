"""The notebook API runs what the CLI runs and hands back Python objects."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

import reasonmed
from reasonmed.db.engine import make_engine
from reasonmed.jobs.build import BuildIncomplete
from reasonmed.mistake import Mistake
from reasonmed.pipeline.outcome import BuildOutcome
from reasonmed.sim.launcher import SimServer
from tests.fixtures_pipeline import PUBMEDQA_FILE, PUBMEDQA_TEST_IDS, write_sim_config


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The settings the run writes (as `reasonmed run` does) are put back after the test."""
    for name in (
        "REASONMED_DATABASE_URL",
        "REASONMED_SIM_URL",
        "REASONMED_PIPELINE_CONFIG",
        "PREFECT_LOGGING_LEVEL",
        "PREFECT_LOGGING_TO_API_ENABLED",
        "PREFECT_SERVER_LOGGING_LEVEL",
    ):
        monkeypatch.delenv(name, raising=False)
    yield


def test_build_returns_the_accepted_samples_and_show_tells_one_story(
    tmp_path: Path,
    prefect_harness: None,
    isolated_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "notebook.db"
    frame = reasonmed.build(
        questions=str(PUBMEDQA_FILE),
        benchmark_test_ids=PUBMEDQA_TEST_IDS,
        database=db,
        limit=6,
        sim_latency_ms=1,
    )  # format guessed from the file: pubmedqa
    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as c:
        accepted = c.execute(
            text("""select count(*) from accepted_paths a join question_outcomes o using (question_id)
                                     where o.status = 'accepted' and a.dropped_reason is null""")
        ).scalar_one()
        finished = c.execute(
            text("select count(*) from question_outcomes where status in ('accepted','rejected')")
        ).scalar_one()
        sources = {s for (s,) in c.execute(text("select distinct source from questions"))}
    assert isinstance(frame, pd.DataFrame)
    assert finished == 6 and sources == {"pubmedqa"}
    assert len(frame) == accepted > 0
    assert {"question_id", "question", "options", "answer", "model", "origin", "cot", "summary"} <= set(
        frame.columns
    )
    assert all(m.startswith("sim/") for m in frame["model"]) and not frame["is_benchmark_test"].any()
    assert isinstance(frame["options"][0], list)

    qid = int(frame["question_id"][0])
    capsys.readouterr()
    story = reasonmed.show(qid, database=db)
    printed = capsys.readouterr().out
    assert (
        story.id == qid
        and story.status == "accepted"
        and len([p for p in story.paths if p.origin == "generated"]) == 9
    )
    assert f"question {qid}: pubmedqa" in printed and "accepted paths and summaries" in printed
    assert reasonmed.samples(db).equals(frame)
    with pytest.raises(Mistake, match="no question with id 999999"):
        reasonmed.show(999999, database=db)
    engine.dispose()


def test_a_run_that_left_work_undone_raises_with_its_typed_outcome(
    tmp_path: Path, prefect_harness: None, isolated_env: None
) -> None:
    """Four training questions, one of which the simulator refuses for good (HTTP 400): the run sets it
    aside and ends INCOMPLETE; the API raises ``BuildIncomplete`` carrying the outcome, not an exit code."""
    data = json.loads(PUBMEDQA_FILE.read_text())
    test_ids = set(json.loads(PUBMEDQA_TEST_IDS.read_text()))
    keys = [k for k in data if k not in test_ids][:4]
    questions = {k: dict(data[k]) for k in keys}
    questions[keys[1]]["QUESTION"] += " POISON-API"
    file = tmp_path / "four.json"
    file.write_text(json.dumps(questions))
    db = tmp_path / "notebook.db"
    with SimServer(
        questions_db=f"sqlite:///{db}",
        base_latency_ms=1,
        per_token_ms=0,
        targeted_faults=("*:POISON-API=400",),
    ) as sim:
        config = write_sim_config(tmp_path / "pipeline.yaml", sim.base_url)
        with pytest.raises(BuildIncomplete) as raised:
            reasonmed.build(config, questions=file, database=db, format="pubmedqa")
    outcome = raised.value.result.outcome
    assert isinstance(outcome, BuildOutcome)
    assert (outcome.status, outcome.set_aside, outcome.failed, outcome.done) == ("incomplete", 1, 0, 3)
    assert str(raised.value).startswith("INCOMPLETE: 1 question(s) set aside and 0 failed")
    assert raised.value.result.report["set_aside"][0]["stage"] == "generate"
