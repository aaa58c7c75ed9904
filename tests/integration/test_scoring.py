"""Dataset quality score (the paper's score evaluator) over a real export of a real build, judged by the
simulation server: the stored ratings and their means are exactly what the judge answered for the
exported text, the seeded sample is stable, and a rerun asks the judge only for rows not rated yet."""

from __future__ import annotations

import asyncio
import hashlib
import json
import statistics
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from reasonmed.config import load_pipeline_config
from reasonmed.db.engine import make_engine
from reasonmed.export.service import ExportOptions, export_dataset
from reasonmed.sim.behaviour import judge_scores
from reasonmed.sim.launcher import SimServer
from tests.export_helpers import no_contamination
from tests.fixtures_pipeline import use_database, write_sim_config

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
JUDGED = 'requests_by_role_total{role="judge"}'


@pytest.fixture(scope="module")
def exported(built_copy: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The built copy exported once as JSONL: (database url, version, {dataset: {path_id: row}})."""
    engine = make_engine(built_copy)
    out = tmp_path_factory.mktemp("export")
    result = export_dataset(
        engine,
        ExportOptions(out=str(out), formats=["jsonl"], allow_simulated=True),
        contamination=no_contamination,
    )
    rows = {}
    for name in ("ReasonMed", "CoTMed", "ResponseMed"):
        lines = (Path(result.location) / name / f"{name}.jsonl").read_text().splitlines()
        rows[name] = {r["path_id"]: r for r in map(json.loads, lines)}
    engine.dispose()
    yield built_copy, result.version, rows


def _sample(path_ids, n: int, seed: int) -> list[int]:  # type: ignore[no-untyped-def]
    """The documented sampling rule: rank rows by sha256("reasonmed-score|seed|path id"), take the first n."""
    return sorted(path_ids, key=lambda p: hashlib.sha256(f"reasonmed-score|{seed}|{p}".encode()).digest())[:n]


def _score(version: int, config: Path, **kw):  # type: ignore[no-untyped-def]
    from reasonmed.flows.score import score_dataset

    return asyncio.run(score_dataset(dataset_version=version, config=str(config), **kw))


def test_ratings_are_the_judges_and_reruns_only_fill_gaps(exported, prefect_harness, tmp_path: Path) -> None:
    url, version, rows = exported
    use_database(url)
    engine = make_engine(url)
    with SimServer(base_latency_ms=0, per_token_ms=0) as sim:
        cfg = write_sim_config(tmp_path / "pipeline.yaml", sim.base_url)
        judge_model = load_pipeline_config(cfg).endpoints["sim-qwen"].model
        first = _score(version, cfg, sample=12, variants=["reasonmed", "responsemed"], seed=7)
        after_first = sim.metrics()[JUDGED]
        again = _score(version, cfg, sample=12, variants=["reasonmed", "responsemed"], seed=7)
        after_again = sim.metrics()[JUDGED]
        larger = _score(version, cfg, sample=16, variants=["reasonmed", "responsemed"], seed=7)
        after_larger = sim.metrics()[JUDGED]
        other_seed = _score(version, cfg, sample=12, variants=["reasonmed"], seed=8)

    all_paths = list(rows["ReasonMed"])
    assert len(all_paths) > 16
    assert first["sample"] == _sample(all_paths, 12, 7)
    assert larger["sample"][:12] == first["sample"]  # a larger sample with the same seed contains the smaller
    assert other_seed["sample"] != first["sample"]
    assert first["judge_model"] == judge_model  # default judge: the verifier's endpoint

    with engine.connect() as c:
        with_questions = {
            qid: (q, dict((lab, t) for lab, t in opts), ans)
            for qid, q, opts, ans in c.execute(
                text("select id, question, options, answer from questions")
            ).all()
        }
    by_variant = {s["variant"]: s for s in first["summaries"]}
    for variant, dataset in (("reasonmed", "ReasonMed"), ("responsemed", "ResponseMed")):
        with engine.connect() as c:
            stored = c.execute(
                text("""select path_id, clinical_accuracy, logical_reasoning, factual_correctness,
                completeness, overall, justification, status, judge_model, raw_output from dataset_quality_scores
                where variant = :v and sample_seed = 7 and path_id = any(:p)"""),
                {"v": variant, "p": first["sample"]},
            ).all()
        assert len(stored) == 12
        overall = []
        for s in stored:
            row = rows[dataset][s.path_id]
            question, options, answer = with_questions[row["question_id"]]
            want = judge_scores(
                model=judge_model, question=question, response=row["output"], options=options, answer=answer
            )
            got = {
                "clinical_accuracy": s.clinical_accuracy,
                "logical_reasoning": s.logical_reasoning,
                "factual_correctness": s.factual_correctness,
                "completeness": s.completeness,
                "overall": s.overall,
            }
            assert got == want, (variant, s.path_id)
            assert s.status == "ok" and s.justification and s.judge_model == judge_model and s.raw_output
            overall.append(want["overall"])
        summary = by_variant[variant]
        assert summary["scored"] == 12 and summary["unparseable"] == 0
        assert summary["overall"]["mean"] == pytest.approx(statistics.fmean(overall))
        assert summary["overall"]["ci95_low"] <= summary["overall"]["mean"] <= summary["overall"]["ci95_high"]

    # Same terms again: nothing asked, same figures. Larger sample: only the 4 new rows per variant.
    assert after_first == 24
    assert after_again == after_first and again["summaries"] == first["summaries"]
    assert after_larger - after_again == 2 * 4
    assert larger["counts"]["reasonmed"] == {
        "sampled": 16,
        "already_stored": 12,
        "asked": 4,
        "no_text": 0,
        "saved": 4,
    }


def test_cli_score_compares_two_versions_and_names_a_missing_one(exported, tmp_path: Path) -> None:
    from reasonmed.cli import app

    url, version, _ = exported
    use_database(url)
    engine = make_engine(url)
    second = export_dataset(
        engine,
        ExportOptions(out=str(tmp_path / "v2"), formats=["jsonl"], allow_simulated=True),
        contamination=no_contamination,
    )
    with SimServer(base_latency_ms=0, per_token_ms=0) as sim:
        cfg = write_sim_config(tmp_path / "pipeline.yaml", sim.base_url)
        res = CliRunner().invoke(
            app,
            [
                "score",
                "--compare",
                str(version),
                str(second.version),
                "--sample",
                "6",
                "--variant",
                "cotmed",
                "--config",
                str(cfg),
            ],
        )
        missing = CliRunner().invoke(app, ["score", "--dataset", "999", "--config", str(cfg)])
        both = CliRunner().invoke(app, ["score", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "cotmed" in res.output and f"version {second.version} minus version {version}" in res.output
    # The two versions hold the same rows, so the same seed rates the same paths with the same scores.
    assert "0.000" in res.output
    assert missing.exit_code == 2 and "dataset version 999 does not exist" in missing.output
    assert both.exit_code == 2 and "--dataset VERSION or --compare" in both.output


def test_paper_judge_mode_sees_no_answer_and_gives_one_score(
    exported, prefect_harness, tmp_path: Path
) -> None:
    """--judge-mode paper: the judge gets question + response (no key), answers one 1-10 score at
    temperature 0.7; rows and summaries say which mode rated them, and the rubric's rows are untouched."""
    from reasonmed.cli import app
    from reasonmed.prompts import get_template

    url, version, rows = exported
    use_database(url)
    engine = make_engine(url)
    paper = get_template("judge", "paper")
    assert "$answer" not in paper.text and "Correct answer" not in paper.text
    with SimServer(base_latency_ms=0, per_token_ms=0) as sim:
        cfg = write_sim_config(tmp_path / "pipeline.yaml", sim.base_url)
        judge_model = load_pipeline_config(cfg).endpoints["sim-qwen"].model
        res = _score(version, cfg, sample=8, variants=["reasonmed"], seed=11, judge_mode="paper")
        out = CliRunner().invoke(
            app,
            [
                "score",
                "--dataset",
                str(version),
                "--sample",
                "8",
                "--seed",
                "11",
                "--judge-mode",
                "paper",
                "--config",
                str(cfg),
            ],
        )
        bad = CliRunner().invoke(
            app, ["score", "--dataset", str(version), "--judge-mode", "vibes", "--config", str(cfg)]
        )
    assert out.exit_code == 0, out.output
    assert "(paper mode)" in out.output
    assert bad.exit_code == 2 and "--judge-mode" in bad.output
    assert res["judge_mode"] == "paper" and res["rows"][0]["judge_mode"] == "paper"
    summary = res["summaries"][0]
    assert summary["judge_mode"] == "paper" and summary["scored"] == 8
    assert all(v is None for v in summary["criteria"].values())  # no criteria in the paper's mode
    with engine.connect() as c:
        stored = c.execute(
            text("""select path_id, judge_mode, prompt_sha256, clinical_accuracy, overall, status
            from dataset_quality_scores where sample_seed = 11 and variant = 'reasonmed'""")
        ).all()
        params = c.execute(
            text("""select parameters from pipeline_runs where kind = 'score'
            order by id desc limit 1""")
        ).scalar_one()
    assert (
        len(stored) == 8
        and {s.judge_mode for s in stored} == {"paper"}
        and {s.prompt_sha256 for s in stored} == {paper.sha256}
    )
    assert (params if isinstance(params, dict) else json.loads(params))["judge_mode"] == "paper"
    with engine.connect() as c:
        with_questions = {
            qid: (q, dict((lab, t) for lab, t in opts))
            for qid, q, opts in c.execute(text("select id, question, options from questions")).all()
        }
    for s in stored:
        row = rows["ReasonMed"][s.path_id]
        question, options = with_questions[row["question_id"]]
        want = judge_scores(
            model=judge_model, question=question, response=row["output"], options=options, answer=None
        )
        assert s.status == "ok" and s.clinical_accuracy is None and s.overall == want["overall"]
