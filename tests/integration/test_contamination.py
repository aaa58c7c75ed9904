"""The contamination guard: benchmark test items are flagged at ingest, and training questions that
copy one (exactly, or reworded with one word changed) are caught; genuinely different ones are not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select, text, update

from reasonmed.contamination import (
    DEFAULT_THRESHOLD,
    exact_key,
    find_contaminated,
    jaccard,
    match_text,
    scan,
    scan_database,
    shingles,
)
from reasonmed.db.eval_repo import QuestionText, audit_contamination
from reasonmed.db.models import ContaminationCheck, ContaminationMatch, Question
from reasonmed.ingest.service import ingest_file, load_id_list
from tests.conftest import PUBMEDQA_FILE, PUBMEDQA_TEST_IDS

YES_NO = [("yes", "yes"), ("no", "no"), ("maybe", "maybe")]
VIGNETTE = (
    "A 45-year-old man presents to the emergency department with crushing substernal chest pain radiating to "
    "the left arm for 40 minutes. He is diaphoretic. His blood pressure is 150/90 mm Hg and pulse is 104/min. "
    "An electrocardiogram shows ST elevation in leads II, III and aVF. Which of the following arteries is most "
    "likely occluded?"
)
VIGNETTE_OPTIONS = [
    ("A", "Left anterior descending"),
    ("B", "Left circumflex"),
    ("C", "Right coronary"),
    ("D", "Left main"),
    ("E", "Posterior descending"),
]


def _one_word_changed(question: str, replacement: str = "notably") -> str:
    """Reworded punctuation and case plus one word replaced: the copy the guard must still catch."""
    words = question.rstrip("?").split()
    words[len(words) // 2] = replacement
    return " ".join(words).upper().replace(",", " ,") + " !"


# --------------------------------------------------------------------------- pure functions


def test_normalisation_ignores_case_punctuation_and_option_order() -> None:
    assert match_text("Is  ÄSPIRIN (ASA) effective?!") == match_text("is äspirin asa effective")
    shuffled = [VIGNETTE_OPTIONS[i] for i in (3, 0, 4, 1, 2)]
    assert exact_key(VIGNETTE, VIGNETTE_OPTIONS) == exact_key(VIGNETTE.upper().replace(".", ""), shuffled)
    assert exact_key(VIGNETTE, VIGNETTE_OPTIONS) != exact_key(VIGNETTE, VIGNETTE_OPTIONS[:4])


def test_jaccard_of_shingles() -> None:
    a = shingles("one two three four", [], ngram=3)  # {one two three, two three four}
    b = shingles("one two three five", [], ngram=3)  # {one two three, two three five}
    assert len(a) == 2 and jaccard(a, b) == pytest.approx(1 / 3)
    assert jaccard(a, a) == 1.0 and jaccard(a, frozenset()) == 0.0
    assert len(shingles("two words", [], ngram=3)) == 1  # shorter than n: one shingle, not none


def test_scan_catches_a_reworded_vignette_and_respects_the_threshold() -> None:
    test = [QuestionText(1, "medqa", "test-7", VIGNETTE, VIGNETTE_OPTIONS)]
    copy = QuestionText(10, "medqa", "train-1", _one_word_changed(VIGNETTE), VIGNETTE_OPTIONS)
    other = QuestionText(
        11,
        "medqa",
        "train-2",
        "Which vitamin deficiency causes scurvy in sailors?",
        [("A", "Vitamin C"), ("B", "Vitamin D"), ("C", "Niacin"), ("D", "Thiamine")],
    )
    [m] = scan(test, [copy, other])
    assert (m.question_id, m.test_question_id, m.kind) == (10, 1, "near")
    assert m.jaccard == pytest.approx(
        jaccard(shingles(copy.question, copy.options), shingles(VIGNETTE, VIGNETTE_OPTIONS)), abs=1e-4
    )
    assert 0.8 < m.jaccard < 1.0
    assert m.description == f"near-duplicate of benchmark test item medqa:test-7 (jaccard {m.jaccard:.2f})"
    assert scan(test, [copy], threshold=0.99) == []


# --------------------------------------------------------------------------- over the database


def _plant(tmp_path: Path, test_question: str) -> Path:
    """A PubMedQA-format training file: a near-duplicate and an exact copy of one test question, and an
    unrelated question. No CONTEXTS, so their content hashes differ from the test item's."""
    records = {
        "planted-near": {"QUESTION": _one_word_changed(test_question), "final_decision": "yes"},
        "planted-exact": {"QUESTION": test_question.lower().rstrip("?"), "final_decision": "no"},
        "planted-unrelated": {
            "QUESTION": "Does daily aspirin prevent migraine attacks in adolescents?",
            "final_decision": "maybe",
        },
    }
    path = tmp_path / "planted.json"
    path.write_text(json.dumps(records))
    return path


def test_pubmedqa_test_split_is_flagged_and_planted_copies_are_caught(engine: Engine, tmp_path: Path) -> None:
    summary = ingest_file(
        engine, PUBMEDQA_FILE, "pubmedqa", benchmark_test_ids=load_id_list(PUBMEDQA_TEST_IDS)
    )
    assert (summary.inserted, summary.benchmark_test) == (1000, 500)
    with engine.connect() as c:
        flagged = c.execute(select(func.count()).where(Question.is_benchmark_test.is_(True))).scalar_one()
        assert flagged == 500
        # a test question long enough that one changed word is a small part of it
        test_id, source_id, question = c.execute(
            select(Question.id, Question.source_id, Question.question)
            .where(Question.is_benchmark_test.is_(True), func.length(Question.question) > 90)
            .order_by(Question.id)
        ).first()

    # the 500 real training questions are genuinely different from the 500 test questions
    assert find_contaminated(engine) == {}

    assert ingest_file(engine, _plant(tmp_path, question), "pubmedqa").inserted == 3
    with engine.connect() as c:
        ids = dict(
            c.execute(
                select(Question.source_id, Question.id).where(Question.source_id.like("planted-%"))
            ).all()
        )
    found = find_contaminated(engine)
    assert set(found) == {ids["planted-near"], ids["planted-exact"]}
    assert found[ids["planted-exact"]] == f"exact copy of benchmark test item pubmedqa:{source_id}"
    near = found[ids["planted-near"]]
    assert near.startswith(f"near-duplicate of benchmark test item pubmedqa:{source_id} (jaccard 0.")
    assert float(near.rsplit(" ", 1)[1].rstrip(")")) >= DEFAULT_THRESHOLD

    # persisted, once per pair even after a second scan, and readable through the audit view
    assert find_contaminated(engine) == found
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(ContaminationMatch)).scalar_one() == 2
        view = c.execute(
            text("select question_id, test_question_id, kind from audit_contamination order by kind")
        ).all()
    assert [tuple(r) for r in view] == [
        (ids["planted-exact"], test_id, "exact"),
        (ids["planted-near"], test_id, "near"),
    ]
    audit = audit_contamination(engine)
    assert {r["source_id"] for r in audit} == {"planted-near", "planted-exact"}
    assert all(r["test_source_id"] == source_id and r["has_accepted_paths"] is False for r in audit)

    assert find_contaminated(engine, only_accepted=True, persist=False) == {}  # nothing planted was built


def test_a_scan_checks_only_the_questions_no_scan_judged_under_the_same_test_items(
    engine: Engine, tmp_path: Path
) -> None:
    ingest_file(engine, PUBMEDQA_FILE, "pubmedqa", benchmark_test_ids=load_id_list(PUBMEDQA_TEST_IDS))
    first = scan_database(engine)
    assert (first.rechecked, first.flagged, len(first.checked or ())) == (500, {}, 500)
    with engine.connect() as c:
        question = c.execute(
            select(Question.question)
            .where(Question.is_benchmark_test.is_(True), func.length(Question.question) > 90)
            .order_by(Question.id)
            .limit(1)
        ).scalar_one()

    ingest_file(engine, _plant(tmp_path, question), "pubmedqa")
    second = scan_database(engine)  # only the three new questions are compared with the test items
    assert (second.rechecked, len(second.checked or ())) == (3, 503)
    assert len(second.flagged) == 2
    third = scan_database(engine)  # nothing new: every verdict, flagged ones included, stands
    assert (third.rechecked, third.flagged, third.checked) == (0, second.flagged, second.checked)

    # a question edited in place into a copy is judged again, by its new text
    with engine.begin() as c:
        c.execute(
            update(Question)
            .where(Question.source_id == "planted-unrelated")
            .values(question=question.upper())
        )
    edited = scan_database(engine)
    assert edited.rechecked == 1 and len(edited.flagged) == 3
    with engine.begin() as c:
        c.execute(
            update(Question)
            .where(Question.source_id == "planted-unrelated")
            .values(question="Does daily aspirin prevent migraine attacks in adolescents?")
        )
    assert (scan_database(engine).rechecked, scan_database(engine).flagged) == (1, second.flagged)

    # the same verdicts as a scan from nothing; one that does not persist leaves nothing behind
    with engine.begin() as c:
        c.execute(delete(ContaminationCheck))
    fresh = scan_database(engine, persist=False)
    assert (fresh.rechecked, fresh.flagged) == (503, second.flagged)
    assert scan_database(engine).rechecked == 503

    # other settings, or another test set, make every stored verdict stale
    assert scan_database(engine, threshold=0.5, persist=False).rechecked == 503
    with engine.begin() as c:
        c.execute(
            update(Question).where(Question.source_id == "planted-unrelated").values(is_benchmark_test=True)
        )
    after = scan_database(engine)
    assert (after.rechecked, after.flagged) == (502, second.flagged)
    with engine.connect() as c:
        per_stamp = c.execute(
            select(func.count()).select_from(ContaminationCheck).group_by(ContaminationCheck.fingerprint)
        ).scalars()
    # one verdict per question, replaced when re-checked: the new test item keeps its stale one, unused
    assert sorted(per_stamp) == [1, 502]


# --------------------------------------------------------------------------- end to end: build + export


@pytest.mark.postgres
@pytest.mark.slow
def test_build_and_export_of_the_whole_pqal_file_hold_no_test_item(
    pg_url: str, prefect_harness, tmp_path: Path
) -> None:
    """The issue's acceptance: the whole PQA-L file built and exported yields zero samples from its 500
    test ids, and planted copies of a test question (exact, and reworded with one word changed) are
    built like any training item but excluded by the export's guard, reported in manifest and view."""
    import pandas as pd

    from reasonmed.db.engine import get_engine
    from reasonmed.export.assemble import DATASETS
    from reasonmed.export.service import ExportOptions, export_dataset
    from reasonmed.sim.launcher import SimServer
    from tests.fixtures_pipeline import run_build, use_database, write_sim_config

    use_database(pg_url)
    engine = get_engine(pg_url)
    test_source_ids = load_id_list(PUBMEDQA_TEST_IDS)
    assert len(test_source_ids) == 500
    ingest_file(engine, PUBMEDQA_FILE, "pubmedqa", benchmark_test_ids=test_source_ids)
    with engine.connect() as c:
        _, source_id, question = c.execute(
            select(Question.id, Question.source_id, Question.question)
            .where(Question.is_benchmark_test.is_(True), func.length(Question.question) > 90)
            .order_by(Question.id)
        ).first()
    assert ingest_file(engine, _plant(tmp_path, question), "pubmedqa").inserted == 3
    with SimServer(questions_db=pg_url, base_latency_ms=0, per_token_ms=0, default_accuracy=0.9) as sim:
        cfg = write_sim_config(tmp_path / "pipeline.yaml", sim.base_url)
        result = run_build(config=str(cfg), shard_size=256)
    assert (result["done"], result["failed"]) == (503, 0)  # every training question, planted ones included

    out = export_dataset(
        engine, ExportOptions(out=str(tmp_path / "out"), formats=["parquet", "jsonl"], allow_simulated=True)
    )
    with engine.connect() as c:
        planted = dict(
            c.execute(
                select(Question.source_id, Question.id).where(Question.source_id.like("planted-%"))
            ).all()
        )
        in_samples = set(
            c.execute(
                text("""select q.source_id from dataset_samples d join questions q on q.id = d.question_id
            where q.is_benchmark_test""")
            ).scalars()
        )
        view = c.execute(
            text(
                "select source_id, kind, has_accepted_paths, in_dataset from audit_contamination order by kind"
            )
        ).all()
    copies = {planted["planted-exact"], planted["planted-near"]}
    assert in_samples == set()
    exported_ids: set[str] = set()
    for name in DATASETS:
        frame = pd.read_parquet(Path(out.location) / name / "data")
        lines = (Path(out.location) / name / f"{name}.jsonl").read_text().splitlines()
        assert len(frame) == len(lines) == out.counts[name] > 400
        ids = set(frame["source_id"]) | {json.loads(line)["source_id"] for line in lines}
        assert not ids & test_source_ids, name
        assert not set(frame["question_id"]) & copies, name
        exported_ids |= ids
    assert "planted-unrelated" in exported_ids  # the guard excludes copies, not every planted question
    report = out.manifest["contamination"]
    assert report["checked"] and set(report["question_ids"]) == copies and report["count"] == 2
    assert report["rows_excluded"] >= 2
    assert [(s, k, bool(a), bool(d)) for s, k, a, d in view] == [
        ("planted-exact", "exact", True, False),
        ("planted-near", "near", True, False),
    ]
