"""Question ingestion: every public format, every bad-row kind, idempotence, test-item marking, CLI, flow."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from reasonmed.db.models import IngestError, IngestFile
from reasonmed.db.models import Question as QRow
from reasonmed.ingest.loaders import FileFormatError, detect_cop_base, load, reason_kind
from reasonmed.ingest.service import ingest_file, load_id_list
from tests.conftest import PUBMEDQA_FILE, PUBMEDQA_TEST_IDS

# --------------------------------------------------------------------------- helpers


def write_jsonl(path: Path, records: list[dict[str, Any] | str | bytes]) -> Path:
    """Records may be dicts (dumped), or str/bytes written verbatim (to plant bad lines)."""
    with path.open("wb") as f:
        for r in records:
            if isinstance(r, dict):
                f.write(json.dumps(r).encode() + b"\n")
            else:
                f.write((r.encode() if isinstance(r, str) else r) + b"\n")
    return path


def rows(engine: Engine, *where: Any) -> list[QRow]:
    with Session(engine) as s:
        return list(s.scalars(select(QRow).where(*where).order_by(QRow.id)))


def count(engine: Engine, *where: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(QRow).where(*where)).scalar_one()


def errors(engine: Engine) -> list[IngestError]:
    with Session(engine) as s:
        return list(s.scalars(select(IngestError).order_by(IngestError.id)))


MEDQA_4 = {
    "question": "A 23-year-old woman presents with fever, dysuria and flank pain. Which organism is most likely?",
    "answer": "Escherichia coli",
    "options": {
        "A": "Staphylococcus saprophyticus",
        "B": "Escherichia coli",
        "C": "Proteus mirabilis",
        "D": "Klebsiella",
    },
    "meta_info": "step1",
    "answer_idx": "B",
}
MEDQA_5 = {
    "question": "A 60-year-old man has crushing chest pain for 2 hours and ST elevation in II, III and aVF. "
    "Which artery is most likely occluded?",
    "answer": "Right coronary artery",
    "options": {
        "A": "Left anterior descending artery",
        "B": "Left circumflex artery",
        "C": "Right coronary artery",
        "D": "Left main coronary artery",
        "E": "Posterior descending artery",
    },
    "meta_info": "step2&3",
    "answer_idx": "C",
    "metamap_phrases": ["60 year old man", "crushing chest pain"],
}


def medmcqa_records(base: int) -> list[dict[str, Any]]:
    """Four MedMCQA questions whose correct options are A, B, C, D, with cop in the given base."""
    out = []
    for i, (q, opts) in enumerate(
        [
            (
                "Drug of choice for absence seizures is",
                ["Ethosuximide", "Phenytoin", "Carbamazepine", "Phenobarbital"],
            ),
            (
                "Most common site of carcinoid tumour in the gut is",
                ["Rectum", "Appendix", "Stomach", "Colon"],
            ),
            ("Vitamin deficiency causing pellagra is", ["Thiamine", "Riboflavin", "Niacin", "Pyridoxine"]),
            (
                "Nerve injured in fracture of the surgical neck of humerus is",
                ["Radial", "Median", "Ulnar", "Axillary"],
            ),
        ]
    ):
        out.append(
            {
                "id": f"e9ad821a-c438-4965-9f77-760819dfa15{i}",
                "question": q,
                "opa": opts[0],
                "opb": opts[1],
                "opc": opts[2],
                "opd": opts[3],
                "cop": i + base,
                "choice_type": "single",
                "exp": f"Explanation {i}: see standard texts.",
                "subject_name": "Pharmacology" if i == 0 else "Pathology",
                "topic_name": None,
            }
        )
    return out


# --------------------------------------------------------------------------- PubMedQA (the real file)


def test_pubmedqa_real_file_with_test_ids(engine: Engine) -> None:
    ids = load_id_list(PUBMEDQA_TEST_IDS)
    assert len(ids) == 500
    s = ingest_file(engine, PUBMEDQA_FILE, "pubmedqa", benchmark_test_ids=ids)
    assert (s.read, s.inserted, s.duplicates, s.rejected) == (1000, 1000, 0, 0)
    assert s.benchmark_test == 500 and not s.already_ingested
    assert count(engine) == 1000
    assert count(engine, QRow.is_benchmark_test.is_(True)) == 500
    assert count(engine, QRow.is_benchmark_test.is_(True), QRow.split == "test") == 500
    assert count(engine, QRow.source_id.in_(ids), QRow.is_benchmark_test.is_(False)) == 0
    (q,) = rows(engine, QRow.source_id == "21645374")
    assert q.question.startswith("Do mitochondria play a role in remodelling lace plant leaves")
    assert q.options == [["yes", "yes"], ["no", "no"], ["maybe", "maybe"]]
    assert q.answer == "yes" and q.source == "pubmedqa"
    assert (
        q.context is not None
        and q.context.startswith("BACKGROUND: Programmed cell death")
        and "\nRESULTS: " in q.context
    )
    assert q.meta["YEAR"] == "2011" and "LONG_ANSWER" in q.meta and "Mitochondria" in q.meta["MESHES"]
    with engine.connect() as conn:
        f = conn.execute(select(IngestFile)).one()
    assert f.status == "done" and f.n_read == 1000 and f.n_inserted == 1000 and f.error is None


def test_pubmedqa_later_marking_flags_existing_rows(engine: Engine) -> None:
    first = ingest_file(engine, PUBMEDQA_FILE, "pubmedqa")
    assert first.inserted == 1000 and count(engine, QRow.is_benchmark_test.is_(True)) == 0
    again = ingest_file(engine, PUBMEDQA_FILE, "pubmedqa", benchmark_test_ids=load_id_list(PUBMEDQA_TEST_IDS))
    assert again.already_ingested and again.inserted == 0
    assert again.newly_marked == 500
    assert count(engine, QRow.is_benchmark_test.is_(True), QRow.split == "test") == 500
    assert count(engine) == 1000


def test_pubmedqa_bad_records(tmp_path: Path, engine: Engine) -> None:
    good = {
        "QUESTION": "Is aspirin protective?",
        "CONTEXTS": ["Aspirin was given."],
        "LABELS": ["METHODS"],
        "final_decision": "yes",
        "LONG_ANSWER": "It helps.",
        "YEAR": "2001",
    }
    body = (
        b'{"111": '
        + json.dumps(good).encode()
        + b', "222": '
        + json.dumps({**good, "QUESTION": "Café?", "final_decision": "perhaps"}, ensure_ascii=False).encode()
        + b', "333": '
        + json.dumps({**good, "QUESTION": "Is it BAD?"}).encode().replace(b"BAD", b"\xff")
        + b', "444": '
        + json.dumps({k: v for k, v in good.items() if k != "final_decision"} | {"QUESTION": "X?"}).encode()
        + b"}"
    )
    path = tmp_path / "pqal_bad.json"
    path.write_bytes(body)
    s = ingest_file(engine, path, "pubmedqa")
    assert (s.read, s.inserted, s.rejected) == (4, 1, 3)
    reasons = {e.record_ref: e.reason for e in errors(engine)}
    assert reasons == {
        "record 222": "answer 'perhaps' is not among the options (yes, no, maybe)",
        "record 333": "record is not valid UTF-8",
        "record 444": "no answer",
    }
    (q,) = rows(engine)
    assert q.context == "METHODS: Aspirin was given."


def test_pubmedqa_rejects_a_file_that_is_not_one_object(tmp_path: Path, engine: Engine) -> None:
    path = write_jsonl(tmp_path / "x.jsonl", [MEDQA_4])
    path.write_text("[" + path.read_text() + "]")
    with pytest.raises(FileFormatError, match="expected one JSON object"):
        ingest_file(engine, path, "pubmedqa")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(IngestFile)).scalar_one() == 0


# --------------------------------------------------------------------------- MedQA


def test_medqa_four_and_five_options(tmp_path: Path, engine: Engine) -> None:
    path = write_jsonl(
        tmp_path / "US_train.jsonl", [MEDQA_4, MEDQA_5, {**MEDQA_4, "id": "q-77", "question": "Other?"}]
    )
    s = ingest_file(engine, path, "medqa")
    assert (s.read, s.inserted, s.rejected) == (3, 3, 0)
    q4, q5, q_id = rows(engine)
    assert [lab for lab, _ in q4.options] == ["A", "B", "C", "D"] and q4.answer == "B"
    assert [lab for lab, _ in q5.options] == ["A", "B", "C", "D", "E"] and q5.answer == "C"
    assert q5.options[2] == ["C", "Right coronary artery"]
    assert q4.source_id == "line-1" and q5.source_id == "line-2" and q_id.source_id == "q-77"
    assert q5.meta == {"meta_info": "step2&3", "metamap_phrases": ["60 year old man", "crushing chest pain"]}
    assert q4.split == "train" and not q4.is_benchmark_test


def test_medqa_answer_from_text_when_no_answer_idx(tmp_path: Path) -> None:
    rec = {k: v for k, v in MEDQA_4.items() if k != "answer_idx"}
    path = write_jsonl(tmp_path / "a.jsonl", [rec, {**MEDQA_4, "answer": "Proteus mirabilis"}])
    ok, mismatch = list(load(path, "medqa"))
    assert ok.question is not None and ok.question.answer == "B"
    assert (
        mismatch.error
        == "answer_idx 'B' and answer text 'Proteus mirabilis' disagree (the text names option C)"
    )


# --------------------------------------------------------------------------- MedMCQA


def test_medmcqa_one_based_and_zero_based_release(tmp_path: Path, engine: Engine) -> None:
    one = write_jsonl(tmp_path / "train.json", medmcqa_records(1))
    zero = write_jsonl(tmp_path / "train_rerelease.json", medmcqa_records(0))
    assert detect_cop_base(one) == (1, None) and detect_cop_base(zero) == (0, None)
    answers_one = [r.question.answer for r in load(one, "medmcqa") if r.question]
    answers_zero = [r.question.answer for r in load(zero, "medmcqa") if r.question]
    assert answers_one == answers_zero == ["A", "B", "C", "D"]

    s1 = ingest_file(engine, one, "medmcqa")
    assert (s1.inserted, s1.rejected) == (4, 0) and not s1.warnings
    q = rows(engine)[2]
    assert q.answer == "C" and q.options[2] == ["C", "Niacin"]
    assert q.source_id == "e9ad821a-c438-4965-9f77-760819dfa152"
    assert q.meta == {
        "exp": "Explanation 2: see standard texts.",
        "subject_name": "Pathology",
        "topic_name": None,
        "choice_type": "single",
    }
    s0 = ingest_file(engine, zero, "medmcqa")
    assert (s0.read, s0.inserted, s0.duplicates) == (4, 0, 4)


def test_medmcqa_cop_base_ambiguity(tmp_path: Path, engine: Engine) -> None:
    both = write_jsonl(tmp_path / "mixed.json", medmcqa_records(0) + medmcqa_records(1)[3:])
    with pytest.raises(FileFormatError, match="--cop-base"):
        ingest_file(engine, both, "medmcqa")
    s = ingest_file(engine, both, "medmcqa", cop_base=1)  # the user decides: cop 0 is then out of range
    assert s.inserted == 4 and s.rejected == 1
    assert errors(engine)[0].reason == "cop out of range (got 0, expected 1-4)"

    neither = write_jsonl(tmp_path / "neither.json", medmcqa_records(1)[1:3])
    s2 = ingest_file(engine, neither, "medmcqa")
    assert s2.inserted == 2 and "assumed 1-based" in s2.warnings[0]
    # cop read 1-based here, 0/1-based before: the same ids now hold other answers, which is reported
    assert s2.id_conflicts == 2 and "reuse an id held by a question with other content" in s2.warnings[1]


# --------------------------------------------------------------------------- MMLU


def test_mmlu_subset_and_split_from_file_name(tmp_path: Path, engine: Engine) -> None:
    dev = tmp_path / "clinical_knowledge_dev.csv"
    with dev.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "The energy for all forms of muscle contraction is provided by:",
                "ATP.",
                "ADP.",
                "phosphocreatine.",
                "oxidative phosphorylation.",
                "A",
            ]
        )
        w.writerow(
            [
                "What is the first sign of shock?\nChoose one.",
                "Tachycardia",
                "Hypotension",
                "Confusion",
                "Oliguria",
                "A",
            ]
        )
        w.writerow(["Too few columns", "x", "y", "B"])
    s = ingest_file(engine, dev, "mmlu")
    assert (s.read, s.inserted, s.rejected) == (3, 2, 1)
    a, b = rows(engine)
    assert a.meta == {"subset": "clinical_knowledge"} and a.split == "dev"
    assert a.source_id == "clinical_knowledge-dev-1" and b.source_id == "clinical_knowledge-dev-2"
    assert b.question == "What is the first sign of shock?\nChoose one."  # stored as given
    assert (
        errors(engine)[0].reason
        == "wrong number of columns (expected 6: question, A, B, C, D, answer; got 4)"
    )

    test = tmp_path / "anatomy_test.csv"
    test.write_text('"Which bone is in the forearm?",Femur,Radius,Tibia,Fibula,B\n')
    ingest_file(engine, test, "mmlu")
    (t,) = rows(engine, QRow.source_id == "anatomy-test-1")
    assert t.is_benchmark_test and t.split == "test" and t.answer == "B"


# --------------------------------------------------------------------------- generic formats


def test_generic_jsonl_csv_parquet_with_mapping(tmp_path: Path, engine: Engine) -> None:
    jl = write_jsonl(
        tmp_path / "custom.jsonl",
        [
            {
                "qid": "j1",
                "stem": "Which vitamin is fat soluble?",
                "choices": {"A": "Vitamin C", "B": "Vitamin K"},
                "gold": "Vitamin K",
                "note": "kept",
            }
        ],
    )
    s = ingest_file(
        engine, jl, "jsonl", mapping={"id": "qid", "question": "stem", "options": "choices", "answer": "gold"}
    )
    assert s.inserted == 1
    (q,) = rows(engine, QRow.source_id == "j1")
    assert q.answer == "B" and q.source == "custom" and q.meta == {"format": "jsonl", "note": "kept"}

    cp = tmp_path / "custom.csv"
    with cp.open("w", newline="", encoding="utf-8-sig") as f:  # with a BOM, as spreadsheets write it
        w = csv.writer(f)
        w.writerow(["id", "text", "passage", "o1", "o2", "o3", "key"])
        w.writerow(
            [
                "c1",
                "Hypokalaemia causes which ECG change?",
                "An ECG was taken.",
                "U waves",
                "Peaked T",
                "Wide QRS",
                "a",
            ]
        )
    mapping = {
        "question": "text",
        "context": "passage",
        "option:A": "o1",
        "option:B": "o2",
        "option:C": "o3",
        "answer": "key",
    }
    assert ingest_file(engine, cp, "csv", mapping=mapping).inserted == 1
    (q,) = rows(engine, QRow.source_id == "c1")
    assert q.options == [["A", "U waves"], ["B", "Peaked T"], ["C", "Wide QRS"]] and q.answer == "A"
    assert q.context == "An ECG was taken."

    pp = tmp_path / "custom.parquet"
    table = pa.table(
        {
            "id": ["p1", "p2"],
            "question": ["Which is a loop diuretic?", "Which is an ACE inhibitor?"],
            "options": [["Furosemide", "Spironolactone", "Amiloride"], ["Losartan", "Enalapril", "Atenolol"]],
            "answer": [0, 1],
        }
    )
    pq.write_table(table, pp, row_group_size=1)
    s = ingest_file(engine, pp, "parquet", answer_index_base=0)
    assert (s.read, s.inserted) == (2, 2)
    p1, p2 = rows(engine, QRow.source_id.in_(["p1", "p2"]))
    assert (p1.answer, p2.answer) == ("A", "B") and p2.options[1] == ["B", "Enalapril"]


def test_generic_index_answers_need_an_explicit_base(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "i.jsonl", [{"question": "Q?", "options": ["x", "y"], "answer": 1}])
    (rec,) = load(path, "jsonl")
    assert (
        rec.error == "answer '1' is not among the options (A, B; pass an answer index base if it is an index)"
    )
    (rec,) = load(path, "jsonl", answer_index_base=1)
    assert rec.question is not None and rec.question.answer == "A"
    numeric = write_jsonl(
        tmp_path / "n.jsonl", [{"question": "Normal arterial pH?", "options": [7.0, 7.4], "answer": "7.4"}]
    )
    (rec,) = load(numeric, "jsonl")
    assert (
        rec.question is not None
        and rec.question.options == {"A": "7.0", "B": "7.4"}
        and rec.question.answer == "B"
    )


def test_generic_missing_column(tmp_path: Path, engine: Engine) -> None:
    cp = tmp_path / "nocol.csv"
    cp.write_text('question,options\nQ?,"[1,2]"\n')
    with pytest.raises(FileFormatError, match="'answer' not in the file"):
        ingest_file(engine, cp, "csv")
    jl = write_jsonl(
        tmp_path / "nokey.jsonl",
        [
            {"question": "Q?", "options": ["a", "b"]},
            {"question": "Q2?", "options": ["a", "b"], "answer": "b"},
        ],
    )
    s = ingest_file(engine, jl, "jsonl")
    assert (s.inserted, s.rejected) == (1, 1)
    assert errors(engine)[0].reason == "missing required column 'answer'"


# --------------------------------------------------------------------------- bad rows


def test_every_bad_row_kind_is_recorded_and_good_rows_land(tmp_path: Path, engine: Engine) -> None:
    no_answer = {k: v for k, v in MEDQA_4.items() if k not in ("answer_idx", "answer")}
    not_among = {**MEDQA_4, "answer_idx": "E", "answer": None}
    one_option = {**MEDQA_4, "options": {"A": "Only one"}, "answer_idx": "A", "answer": "Only one"}
    empty_text = {**MEDQA_4, "question": "   \n "}
    nul_text = {**MEDQA_4, "question": "Contains a \u0000 NUL?"}
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            MEDQA_4,  # line 1
            no_answer,  # 2
            not_among,  # 3
            one_option,  # 4
            empty_text,  # 5
            '{"question": "truncated", "options": {"A": ',  # 6
            b'{"question": "caf\xe9 au lait spots", "options": {"A": "x", "B": "y"}, "answer_idx": "A"}',  # 7
            "",  # blank: skipped, not an error
            "[1, 2, 3]",  # 9
            nul_text,  # 10
            MEDQA_5,  # 11
            b'{"question": "raw \x00 byte"}',  # 12: the stored raw text must be storable too
        ],
    )
    s = ingest_file(engine, path, "medqa")
    assert (s.read, s.inserted, s.rejected) == (11, 2, 9)
    assert [q.source_id for q in rows(engine)] == ["line-1", "line-11"]
    errs = errors(engine)
    got = {e.record_ref: e.reason for e in errs}
    assert got == {
        "line 2": "no answer",
        "line 3": "answer 'E' is not among the options (A, B, C, D)",
        "line 4": "fewer than 2 options (1)",
        "line 5": "empty question text",
        "line 6": "line is not valid JSON (Expecting value at column 44)",
        "line 7": "line is not valid UTF-8 (byte 0xe9 at position 17)",
        "line 9": "line is a JSON list, not an object",
        "line 10": "text contains a NUL character, which PostgreSQL cannot store",
        "line 12": "line is not valid JSON (Invalid control character at column 19)",
    }
    assert all(e.file_path == str(path) for e in errs)
    raw7 = next(e.raw for e in errs if e.record_ref == "line 7")
    assert raw7 is not None and raw7.startswith('{"question": "caf\ufffd au lait')
    assert s.rejected_by_reason["answer is not among the options"] == 1
    assert sum(s.rejected_by_reason.values()) == 9
    raw12 = next(e.raw for e in errs if e.record_ref == "line 12")
    assert raw12 == '{"question": "raw \ufffd byte"}'

    again = ingest_file(engine, path, "medqa")  # unchanged file: a no-op, errors not doubled
    assert again.already_ingested and again.inserted == 0 and len(errors(engine)) == 9


def test_reason_kind_groups_reasons() -> None:
    assert (
        reason_kind("answer 'E' is not among the options (A, B, C, D)") == "answer is not among the options"
    )
    assert reason_kind("line is not valid UTF-8 (byte 0xff at position 3)") == "line is not valid UTF-8"
    assert reason_kind("no answer") == "no answer"


# --------------------------------------------------------------------------- idempotence, duplicates, resume


def test_reingest_is_a_noop_and_other_file_counts_duplicates(tmp_path: Path, engine: Engine) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [MEDQA_4, MEDQA_5])
    first = ingest_file(engine, path, "medqa")
    assert first.inserted == 2 and not first.already_ingested
    second = ingest_file(engine, path, "medqa")
    assert second.already_ingested and (second.read, second.inserted) == (0, 0)
    assert count(engine) == 2
    # The same questions, differently spaced and with an id, in another file: duplicates by content.
    respaced = {**MEDQA_5, "question": "  " + MEDQA_5["question"].replace(" ", "  ") + " ", "id": "x9"}
    other = write_jsonl(tmp_path / "b.jsonl", [respaced, MEDQA_4, {**MEDQA_4, "question": "A new one?"}])
    third = ingest_file(engine, other, "medqa")
    assert (third.read, third.inserted, third.duplicates) == (3, 1, 2)
    assert count(engine) == 3
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(IngestFile)).scalar_one() == 2


def test_reingest_with_other_read_options_reads_the_file_again(tmp_path: Path, engine: Engine) -> None:
    """A first ingest with a wrong --map rejects every row; the corrected one must not be skipped."""
    recs = [
        {
            "qid": f"g{i}",
            "stem": f"Which option is number {i}?",
            "choices": {"A": "one", "B": "two"},
            "gold": "B",
            "wrong": "Z",
        }
        for i in range(3)
    ]
    path = write_jsonl(tmp_path / "g.jsonl", recs)
    good_map = {"id": "qid", "question": "stem", "options": "choices", "answer": "gold"}
    wrong = ingest_file(engine, path, "jsonl", mapping={**good_map, "answer": "wrong"})
    assert (wrong.inserted, wrong.rejected, wrong.reread) == (0, 3, False)
    assert len(errors(engine)) == 3
    fixed = ingest_file(engine, path, "jsonl", mapping=good_map)
    assert (
        not fixed.already_ingested
        and fixed.reread
        and (fixed.read, fixed.inserted, fixed.rejected) == (3, 3, 0)
    )
    assert errors(engine) == []  # the stale reasons of the wrong read are gone
    again = ingest_file(
        engine, path, "jsonl", mapping=dict(reversed(list(good_map.items())))
    )  # same map, other order
    assert again.already_ingested and (again.read, again.inserted) == (0, 0)
    assert count(engine) == 3
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(IngestFile)).scalar_one() == 1


def test_killed_ingest_resumes_safely(tmp_path: Path, engine: Engine) -> None:
    recs = [{**MEDQA_4, "question": f"Question number {i}?"} for i in range(10)]
    path = write_jsonl(tmp_path / "big.jsonl", recs)

    def die(done: int, total: int | None) -> None:
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ingest_file(engine, path, "medqa", batch_size=2, progress=die)
    with engine.connect() as conn:
        status, error = conn.execute(select(IngestFile.status, IngestFile.error)).one()
    partial = count(engine)
    # never left 'running': the interruption is the file's recorded outcome until a rerun finishes it
    assert status == "failed" and error.startswith("interrupted after") and "KeyboardInterrupt" in error
    assert 2 <= partial < 10
    s = ingest_file(engine, path, "medqa", batch_size=2)
    assert not s.already_ingested and s.read == 10
    assert s.inserted == 10 - partial and s.duplicates == partial
    assert count(engine) == 10
    with engine.connect() as conn:
        f = conn.execute(select(IngestFile)).one()
    assert f.status == "done" and f.n_read == 10 and f.error is None


def test_test_split_and_later_marking(tmp_path: Path, engine: Engine) -> None:
    path = write_jsonl(tmp_path / "dev.jsonl", [MEDQA_4, MEDQA_5])
    ingest_file(engine, path, "medqa", split="dev")
    assert count(engine, QRow.split == "dev", QRow.is_benchmark_test.is_(False)) == 2
    # The same questions arrive again in a file declared as the test split: the stored rows get flagged.
    test_copy = write_jsonl(tmp_path / "test.jsonl", [MEDQA_5])
    s = ingest_file(engine, test_copy, "medqa", split="test")
    assert s.duplicates == 1 and s.newly_marked == 1
    (q5,) = rows(engine, QRow.answer == "C")
    assert q5.is_benchmark_test and q5.split == "test"
    # Flags only go from false to true: a later training ingest of the same question does not clear it.
    again = write_jsonl(tmp_path / "train2.jsonl", [MEDQA_5, MEDQA_4])
    ingest_file(engine, again, "medqa")
    assert count(engine, QRow.is_benchmark_test.is_(True)) == 1
    # Marking by id on an already-ingested file.
    ids = tmp_path / "ids.txt"
    ids.write_text("# test ids\nline-1\n")
    s2 = ingest_file(engine, path, "medqa", benchmark_test_ids=load_id_list(ids))
    assert s2.already_ingested and s2.newly_marked == 1
    assert count(engine, QRow.is_benchmark_test.is_(True)) == 2


def test_load_id_list_formats(tmp_path: Path) -> None:
    (tmp_path / "o.json").write_text('{"1": "yes", "22": "no"}')
    (tmp_path / "l.json").write_text('[1, 22, "333"]')
    (tmp_path / "t.txt").write_text("1\n\n 22 \n# comment\n")
    assert load_id_list(tmp_path / "o.json") == {"1", "22"}
    assert load_id_list(tmp_path / "l.json") == {"1", "22", "333"}
    assert load_id_list(tmp_path / "t.txt") == {"1", "22"}
    with pytest.raises(FileNotFoundError):
        load_id_list(tmp_path / "missing.json")


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    from reasonmed.config import temporary_settings

    with temporary_settings(database_url="sqlite:///unused.db"):
        yield CliRunner()


def test_cli_prints_summary(tmp_path: Path, db_url: str, cli: CliRunner) -> None:
    from reasonmed.cli import app

    bad = {**MEDQA_4, "answer_idx": "E", "answer": None}
    path = write_jsonl(tmp_path / "cli_medqa.jsonl", [MEDQA_4, MEDQA_5, bad])
    result = cli.invoke(app, ["ingest", str(path), "--source", "medqa", "--database-url", db_url])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "ingest summary" in out and "cli_medqa.jsonl" in out
    line = next(ln for ln in out.splitlines() if "cli_medqa" in ln)
    assert [c.strip() for c in line.split("│")[2:6]] == ["3", "2", "0", "1"]
    assert "answer is not among the options" in out

    again = cli.invoke(app, ["ingest", str(path), "--source", "medqa", "--database-url", db_url])
    assert again.exit_code == 0 and "already ingested" in again.output and "nothing added" in again.output


def test_cli_errors(tmp_path: Path, db_url: str, cli: CliRunner) -> None:
    from reasonmed.cli import app

    path = write_jsonl(tmp_path / "q.jsonl", [MEDQA_4])
    r = cli.invoke(app, ["ingest", str(path), "--source", "medqaa", "--database-url", db_url])
    assert (
        r.exit_code == 2
        and "Invalid value for '--format'" in r.output
        and "'medqaa'" in r.output
        and "'medmcqa'" in r.output
    )
    r = cli.invoke(
        app, ["ingest", str(tmp_path / "nope.jsonl"), "--source", "medqa", "--database-url", db_url]
    )
    assert r.exit_code == 2 and "file not found" in r.output
    r = cli.invoke(
        app, ["ingest", str(path), "--source", "jsonl", "--map", "question", "--database-url", db_url]
    )
    assert r.exit_code == 2 and "expected FIELD=COLUMN" in r.output
    unmigrated = f"sqlite:///{tmp_path / 'empty.db'}"
    r = cli.invoke(app, ["ingest", str(path), "--source", "medqa", "--database-url", unmigrated])
    assert r.exit_code == 2 and "reasonmed db upgrade" in r.output


# --------------------------------------------------------------------------- Prefect flow


def test_flow_ingests_and_publishes_artifact(
    tmp_path: Path, db_url: str, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from reasonmed.config import temporary_settings
    from reasonmed.db.engine import make_engine
    from reasonmed.flows.ingest import ingest

    with temporary_settings(database_url=db_url):
        path = write_jsonl(tmp_path / "flow.jsonl", [MEDQA_4, MEDQA_5])
        ids = tmp_path / "ids.json"
        ids.write_text('["line-2"]')
        summaries = ingest(paths=[str(path)], source="medqa", benchmark_test_ids=str(ids))
    assert [(s.read, s.inserted, s.benchmark_test) for s in summaries] == [(2, 2, 1)]
    engine = make_engine(db_url)
    assert count(engine, QRow.is_benchmark_test.is_(True)) == 1
    engine.dispose()
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ingest-summary"]))
        )
    assert arts and arts[0].type == "table"
    assert "flow.jsonl" in json.dumps(arts[0].data)
