"""Evaluation flow over the simulation server: accuracy equals what the simulator's configured accuracy
implies on a fixed set of benchmark test items, every prediction is stored, and a rerun asks nothing again."""

from __future__ import annotations

import asyncio
import csv
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text
from typer.testing import CliRunner

from reasonmed.db.engine import get_engine
from reasonmed.evaluation.runner import eval_seed
from reasonmed.evaluation.stats import wilson_interval
from reasonmed.ingest.service import ingest_file
from reasonmed.sim.behaviour import choose_label
from reasonmed.sim.launcher import SimServer
from tests.fixtures_pipeline import ingest_pubmedqa, use_database, write_sim_config

CANDIDATE = "sim/ReasonMed-7B"
CANDIDATE_ACCURACY = 0.7
PUBMEDQA_LIMIT = 120

MMLU_ROWS = {
    "anatomy_test.csv": [
        ("Which bone forms the lateral malleolus?", "Tibia", "Fibula", "Talus", "Calcaneus", "B"),
        ("Which nerve supplies the deltoid muscle?", "Radial", "Axillary", "Median", "Ulnar", "B"),
        (
            "The thoracic duct drains into which vein?",
            "Left subclavian",
            "Right jugular",
            "Azygos",
            "Portal",
            "A",
        ),
        (
            "Which artery supplies the SA node in most people?",
            "Left circumflex",
            "Right coronary",
            "LAD",
            "Marginal",
            "B",
        ),
        ("The foramen ovale transmits which nerve?", "Maxillary", "Mandibular", "Facial", "Optic", "B"),
        (
            "Which muscle abducts the vocal cords?",
            "Cricothyroid",
            "Posterior cricoarytenoid",
            "Vocalis",
            "Thyroarytenoid",
            "B",
        ),
    ],
    "college_medicine_test.csv": [
        ("Which hormone raises blood glucose?", "Insulin", "Glucagon", "Somatostatin", "Amylin", "B"),
        (
            "What is the main buffer of extracellular fluid?",
            "Phosphate",
            "Protein",
            "Bicarbonate",
            "Ammonia",
            "C",
        ),
        (
            "Which vitamin deficiency causes scurvy?",
            "Vitamin A",
            "Vitamin B12",
            "Vitamin C",
            "Vitamin D",
            "C",
        ),
        (
            "Which cells produce surfactant?",
            "Type I pneumocytes",
            "Type II pneumocytes",
            "Clara cells",
            "Macrophages",
            "B",
        ),
        ("Where is erythropoietin mainly produced?", "Liver", "Kidney", "Bone marrow", "Spleen", "B"),
    ],
    # Not a medical subset: ingested as test items but never part of mmlu-med.
    "high_school_physics_test.csv": [
        ("What is the SI unit of force?", "Joule", "Newton", "Watt", "Pascal", "B"),
    ],
}


def _write_mmlu(folder: Path) -> list[Path]:
    paths = []
    for name, rows in MMLU_ROWS.items():
        path = folder / name
        with path.open("w", newline="") as f:
            csv.writer(f).writerows(rows)
        paths.append(path)
    return paths


def _eval_config(tmp_path: Path, sim_url: str) -> Path:
    path = write_sim_config(tmp_path / "pipeline.yaml", sim_url)
    data = yaml.safe_load(path.read_text())
    data["endpoints"]["candidate"] = {**data["endpoints"]["sim-qwen"], "model": CANDIDATE}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _expected(
    engine, *, source: str, subsets: set[str] | None, limit: int | None, seed: int
) -> dict[int, tuple[str | None, bool]]:
    """question id -> (subset, correct), computed from the simulator's own decision function."""
    sql = "select id, content_hash, question, options, answer, metadata from questions where is_benchmark_test and source = :s order by id"
    with engine.connect() as c:
        rows = c.execute(text(sql), {"s": source}).all()
    out: dict[int, tuple[str | None, bool]] = {}
    for qid, content_hash, question, options, answer, meta in rows:
        meta = json.loads(meta) if isinstance(meta, str) else (meta or {})
        subset = meta.get("subset")
        if subsets is not None and subset not in subsets:
            continue
        label = choose_label(
            model=CANDIDATE,
            temperature=0.0,
            seed=eval_seed(seed, content_hash),
            question=question,
            options=[lab for lab, _ in options],
            correct=answer,
            accuracy=CANDIDATE_ACCURACY,
            salt="evaluate",
        )
        out[qid] = (subset, label == answer)
        if limit is not None and len(out) == limit:
            break
    return out


@pytest.fixture
def eval_db(pg_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    use_database(pg_url)
    ingest_pubmedqa(pg_url)
    engine = get_engine(pg_url)
    for path in _write_mmlu(tmp_path):
        ingest_file(engine, path, "mmlu")
    yield pg_url


def test_accuracy_is_what_the_simulator_implies_and_rerun_asks_nothing(
    eval_db: str, prefect_harness, tmp_path: Path
) -> None:
    from reasonmed.config import load_pipeline_config
    from reasonmed.flows.evaluate import evaluate_model

    engine = get_engine(eval_db)
    with SimServer(
        questions_db=eval_db, base_latency_ms=1, per_token_ms=0, accuracy={CANDIDATE: CANDIDATE_ACCURACY}
    ) as sim:
        cfg_path = _eval_config(tmp_path, sim.base_url)
        seed = load_pipeline_config(cfg_path).seed
        out_csv = tmp_path / "acc.csv"
        first = asyncio.run(
            evaluate_model(
                model_endpoint="candidate",
                benchmarks=["pubmedqa", "mmlu-med"],
                limit=PUBMEDQA_LIMIT,
                config=str(cfg_path),
                out=str(out_csv),
            )
        )
        asked_first = sim.metrics()['requests_by_role_total{role="evaluate"}']
        second = asyncio.run(
            evaluate_model(
                model_endpoint="candidate",
                benchmarks=["pubmedqa", "mmlu-med"],
                limit=PUBMEDQA_LIMIT,
                config=str(cfg_path),
            )
        )
        asked_second = sim.metrics()['requests_by_role_total{role="evaluate"}']

    pubmed = _expected(engine, source="pubmedqa", subsets=None, limit=PUBMEDQA_LIMIT, seed=seed)
    mmlu = _expected(
        engine, source="mmlu", subsets={"anatomy", "college_medicine"}, limit=PUBMEDQA_LIMIT, seed=seed
    )
    assert len(pubmed) == PUBMEDQA_LIMIT and len(mmlu) == 11
    rows = {(r["benchmark"], r["subset"]): r for r in first["rows"]}
    checks = {
        ("pubmedqa", "all"): list(pubmed.values()),
        ("mmlu-med", "all"): list(mmlu.values()),
        ("mmlu-med", "anatomy"): [v for v in mmlu.values() if v[0] == "anatomy"],
        ("mmlu-med", "college_medicine"): [v for v in mmlu.values() if v[0] == "college_medicine"],
    }
    for key, items in checks.items():
        n, k = len(items), sum(ok for _, ok in items)
        r = rows[key]
        assert (r["n"], r["correct"]) == (n, k), key
        assert r["accuracy"] == pytest.approx(k / n)
        low, high = wilson_interval(k, n)
        assert (r["ci_low"], r["ci_high"]) == (pytest.approx(low), pytest.approx(high))
        assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
    # 120 items at 0.7: the accuracy is in the neighbourhood the configured rate implies.
    assert 0.55 < rows[("pubmedqa", "all")]["accuracy"] < 0.85

    # Every prediction is stored with its provenance; correctness recomputes from the stored columns.
    with engine.connect() as c:
        stored = c.execute(
            text("""select question_id, model, benchmark, subset, prompt_sha256, raw_output,
            extracted_answer, gold_answer, correct from eval_predictions""")
        ).all()
    assert len(stored) == asked_first == PUBMEDQA_LIMIT + 11
    assert {s.question_id for s in stored} == set(pubmed) | set(mmlu)
    for s in stored:
        assert s.model == CANDIDATE and s.prompt_sha256 == first["prompt_sha256"] and s.raw_output
        assert s.correct == (s.extracted_answer == s.gold_answer)
        assert s.correct == {**pubmed, **mmlu}[s.question_id][1]
    assert Counter(s.benchmark for s in stored) == {"pubmedqa": PUBMEDQA_LIMIT, "mmlu-med": 11}

    # The rerun asked the model nothing and reports the same figures from the stored rows.
    assert asked_second == asked_first
    assert (
        second["counts"]["pubmedqa"]["asked"] == 0
        and second["counts"]["pubmedqa"]["already_stored"] == PUBMEDQA_LIMIT
    )
    assert second["rows"] == first["rows"]
    with out_csv.open() as f:
        csv_rows = list(csv.DictReader(f))
    assert {(r["benchmark"], r["subset"]) for r in csv_rows} == set(rows)

    # The paper-vs-model reference table is filled with this model's measured figures.
    pub = rows[("pubmedqa", "all")]
    cell = f"{100 * pub['accuracy']:.2f}% [{100 * pub['ci_low']:.1f}, {100 * pub['ci_high']:.1f}] (n={PUBMEDQA_LIMIT})"
    reference = (tmp_path / "acc.reference.md").read_text()
    assert reference == first["reference"]
    pub_line = next(line for line in reference.splitlines() if line.startswith("| pubmedqa |"))
    assert pub_line.endswith(f"| {cell} |") and "+4.60% over LLaMA3.1-70B" in pub_line
    assert "| medqa | not given | not run |" in reference
    assert "| mmlu-med | anatomy |" in reference and "| mmlu-med | college_medicine |" in reference

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["eval-reference-sim-reasonmed-7b", "eval-sim-reasonmed-7b"])
            )
        )
    assert {a.key for a in arts} == {"eval-reference-sim-reasonmed-7b", "eval-sim-reasonmed-7b"}
    assert any(cell in str(a.data) for a in arts if a.key == "eval-reference-sim-reasonmed-7b")


def test_training_items_are_never_evaluated(eval_db: str, prefect_harness, tmp_path: Path) -> None:
    """Only items flagged as benchmark test at ingest are evaluated: never PubMedQA's 500 training items."""
    from reasonmed.flows.evaluate import evaluate_model

    engine = get_engine(eval_db)
    with SimServer(questions_db=eval_db, base_latency_ms=0, per_token_ms=0) as sim:
        cfg_path = _eval_config(tmp_path, sim.base_url)
        asyncio.run(evaluate_model(model_endpoint="candidate", benchmarks=["pubmedqa"], config=str(cfg_path)))
    with engine.connect() as c:
        n, leaked = c.execute(
            text("""select count(*), sum(case when q.is_benchmark_test then 0 else 1 end)
            from eval_predictions e join questions q on q.id = e.question_id""")
        ).one()
    assert (n, leaked) == (500, 0)


def test_cli_eval_prints_the_table_and_rejects_an_unknown_endpoint(eval_db: str, tmp_path: Path) -> None:
    from reasonmed.cli import app

    with SimServer(
        questions_db=eval_db, base_latency_ms=0, per_token_ms=0, accuracy={CANDIDATE: CANDIDATE_ACCURACY}
    ) as sim:
        cfg_path = _eval_config(tmp_path, sim.base_url)
        res = CliRunner().invoke(
            app,
            [
                "eval",
                "--model-endpoint",
                "candidate",
                "--benchmarks",
                "mmlu-med",
                "--config",
                str(cfg_path),
                "--out",
                str(tmp_path / "mmlu.csv"),
            ],
        )
        bad = CliRunner().invoke(app, ["eval", "--model-endpoint", "nope", "--config", str(cfg_path)])
        bad_bench = CliRunner().invoke(
            app,
            [
                "eval",
                "--model-endpoint",
                "candidate",
                "--benchmarks",
                "medqa,usmle",
                "--config",
                str(cfg_path),
            ],
        )
    assert res.exit_code == 0, res.output
    assert "mmlu-med" in res.output and "anatomy" in res.output and "paper vs this model" in res.output
    assert CANDIDATE in res.output  # the model column of the reference table
    assert (tmp_path / "mmlu.csv").exists() and (tmp_path / "mmlu.reference.md").exists()
    assert bad.exit_code == 2 and "unknown endpoint 'nope'" in bad.output
    assert bad_bench.exit_code == 2 and "usmle" in bad_bench.output
