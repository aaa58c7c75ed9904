"""Text from the database, a question file or a model prints as data (``reasonmed.cli.safe_text``).

A real SQLite database holds questions, options, source ids, paths, verdict reasons, summaries, rejection
reasons and failures written with Rich markup (``[/INST]``, ``[/bold]``), escape sequences, BEL and a
right-to-left override; ``reasonmed show``, ``reasonmed audit`` and ``reasonmed ingest`` run on it as a
user runs them (a subprocess). Each must end normally, print the brackets as they are, and let no ESC,
BEL or U+202E reach the terminal. Without the escaping each of these tests fails: Rich reads the
brackets as closing tags (MarkupError) or passes the escape sequences through.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from reasonmed.db.engine import make_engine
from reasonmed.db.models import (
    AcceptedPath,
    PipelineRun,
    Question,
    QuestionFailure,
    QuestionOutcome,
    ReasoningPath,
    Summary,
    Verdict,
)

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ESC, BEL, RLO = "\x1b", "\x07", "\u202e"
FORBIDDEN = (ESC, BEL, RLO)
# What a model or a file can put in any text: markup, a colour, a window title, a bell, a reversal.
HOSTILE = f"[/INST] [/bold] {ESC}[31mred{ESC}[0m {ESC}]0;pwned{BEL} ring{BEL} {RLO}txt.exe"


def _cli(tmp_path: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REASONMED_", "PREFECT_API"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"),
        REASONMED_DATABASE_URL=url,
        COLUMNS="250",  # wide enough that no table cell folds the bracket text apart
        PYTHONIOENCODING="utf-8",
    )
    return subprocess.run(
        [sys.executable, "-m", "reasonmed", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )


def assert_printed_as_data(out: subprocess.CompletedProcess[str], code: int, *literals: str) -> None:
    """Exit ``code``, no traceback, every literal on the terminal as written, nothing a terminal acts on."""
    everything = out.stdout + out.stderr
    assert out.returncode == code, everything[-3000:]
    assert "Traceback" not in everything and "MarkupError" not in everything, everything[-3000:]
    for literal in literals:
        assert literal in everything, (literal, everything[-3000:])
    for char in FORBIDDEN:
        assert char not in out.stdout and char not in out.stderr, (char, everything[-3000:])


@pytest.fixture
def hostile_db(sqlite_url: str) -> str:
    """Question 1 accepted (two paths, one kept and summarised), 2 rejected, 3 set aside: every text
    the terminal views print carries ``HOSTILE``."""
    engine = make_engine(sqlite_url)
    with Session(engine) as s, s.begin():
        s.add(PipelineRun(id=1, kind="build", status="completed", parameters={}, stats={}, started_at=T0))
        s.flush()
        for qid in (1, 2, 3):
            s.add(
                Question(
                    id=qid,
                    content_hash=f"h{qid}",
                    source="medqa",
                    source_id=f"[/INST]{ESC}[2J{RLO}m{qid}",
                    split="train",
                    is_benchmark_test=False,
                    question=f"{HOSTILE} which β-blocker at 5 µg?",
                    context=HOSTILE,
                    options=[["A", f"[/bold] β-blocker {ESC}[1m{BEL}"], ["B", f"[/INST] other {RLO}"]],
                    answer="A",
                    meta={},
                    created_at=T0,
                )
            )
        s.flush()
        for pid, model, outcome in ((1, f"[/INST]{ESC}[31mgen", "correct"), (2, f"[/bold]{BEL}gen", "error")):
            s.add(
                ReasoningPath(
                    id=pid,
                    question_id=1,
                    path_key=f"k{pid}",
                    origin="generated",
                    role="generator",
                    run_id=1,
                    endpoint="e",
                    model=model,
                    temperature=0.7,
                    prompt_sha256="x",
                    raw_text=HOSTILE,
                    clean_text=HOSTILE,
                    extracted_answer="A" if outcome == "correct" else "B",
                    created_at=T0,
                )
            )
        s.flush()
        for pid, outcome, read_as in ((1, "correct", "A"), (2, "error", "B")):
            s.add(
                Verdict(
                    id=pid,
                    path_id=pid,
                    question_id=1,
                    verifier_model="V",
                    prompt_sha256="x",
                    outcome=outcome,
                    reason=f"verifier: {HOSTILE}",
                    created_at=T0,
                    extracted_answer=read_as,  # as the pipeline writes a verdict: the guard's reading with it
                    guard_answer=read_as,
                )
            )
        s.flush()
        s.add_all(
            [
                AcceptedPath(question_id=1, path_id=1, verdict_id=1, rank=0, run_id=1, created_at=T0),
                Summary(
                    path_id=1,
                    question_id=1,
                    run_id=1,
                    summarizer_model="S",
                    prompt_sha256="x",
                    text=f"summary: {HOSTILE}",
                    created_at=T0,
                ),
                QuestionOutcome(
                    question_id=1,
                    run_id=1,
                    tier="easy",
                    n_paths=2,
                    n_correct=1,
                    status="accepted",
                    n_accepted=1,
                    updated_at=T0,
                ),
                QuestionOutcome(
                    question_id=2,
                    run_id=1,
                    tier="difficult",
                    n_paths=0,
                    n_correct=0,
                    status="rejected",
                    rejection_reason=f"[/INST] rejected {ESC}[5m{BEL}{RLO}",
                    n_accepted=0,
                    updated_at=T0,
                ),
                QuestionFailure(
                    question_id=3,
                    stage="verify",
                    failures=3,
                    permanent=True,
                    last_error_kind="client_error",
                    last_error=f"HTTP 400: {HOSTILE}",
                    last_run_id=1,
                    first_failed_at=T0,
                    last_failed_at=T0,
                    set_aside_at=T0,
                ),
            ]
        )
    engine.dispose()
    return sqlite_url


@pytest.mark.parametrize("question_id", [1, 2, 3])
def test_show_prints_stored_text_as_data(tmp_path: Path, hostile_db: str, question_id: int) -> None:
    out = _cli(tmp_path, hostile_db, "show", str(question_id))
    assert_printed_as_data(
        out, 0, "[/INST]", "[/bold]", "β-blocker", f"question {question_id}: medqa [/INST]"
    )
    if question_id == 1:  # the paths table: model, verdict reason; the summary
        assert "[/INST]gen" in out.stdout and "verifier: [/INST] [/bold] red" in out.stdout
        assert "summary: [/INST] [/bold] red" in out.stdout
    elif question_id == 2:
        assert "-> rejected ([/INST] rejected )" in out.stdout
    else:
        assert "HTTP 400: [/INST] [/bold] red" in out.stdout


def test_show_json_keeps_the_text_and_escapes_the_controls(tmp_path: Path, hostile_db: str) -> None:
    out = _cli(tmp_path, hostile_db, "show", "1", "--json")
    assert_printed_as_data(out, 0, "[/INST]", "β-blocker")
    story = json.loads(out.stdout)  # the data itself, every character of it
    assert story["question"].startswith(HOSTILE) and story["options"][1] == ["B", f"[/INST] other {RLO}"]
    assert story["paths"][0]["verdict_reason"] == f"verifier: {HOSTILE}"


def test_audit_tables_print_stored_text_as_data(tmp_path: Path, hostile_db: str) -> None:
    out = _cli(tmp_path, hostile_db, "audit")
    # audit_rejected_questions (source id, reason), audit_set_aside (last error), verifier accuracy (model)
    assert_printed_as_data(
        out, 0, "[/INST]m2", "[/INST] rejected", "HTTP 400: [/INST] [/bold] red", "[/bold]gen"
    )
    view = _cli(tmp_path, hostile_db, "audit", "--view", "audit_rejected_paths")
    assert_printed_as_data(view, 0, "verifier: [/INST] [/bold]")  # error_analysis (many columns: it folds)


MEDQA = {
    "question": "A β-blocker at 5 µg/kg/min: which effect?",
    "answer": "Bradycardia",
    "options": {"A": "Tachycardia", "B": "Bradycardia", "C": "Mydriasis", "D": "Bronchodilation"},
    "answer_idx": "B",
}


def _write_jsonl(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_ingest_prints_file_names_and_reasons_as_data(tmp_path: Path, sqlite_url: str) -> None:
    # A file name holds no "/", so no closing tag: its opening tag would be swallowed as a style instead.
    good = {
        **MEDQA,
        "question": f"{HOSTILE} {MEDQA['question']}",
        "options": {**MEDQA["options"], "D": HOSTILE},
    }
    # An option label the record gives a boolean: its error row's reason quotes the label unquoted.
    bad = {
        **MEDQA,
        "question": "another question",
        "options": {**MEDQA["options"], f"[/bold]{ESC}[31m{RLO}": True},
    }
    path = _write_jsonl(tmp_path / f"q [bold red]{ESC}[31m{BEL}{RLO}.jsonl", [good, MEDQA, bad])
    out = _cli(tmp_path, sqlite_url, "ingest", str(path), "--format", "medqa")
    assert_printed_as_data(out, 0, "q [bold red].jsonl", "option [/bold] is a boolean, not text")
    assert "ingest summary" in out.stdout


def test_ingest_errors_print_file_names_as_data(tmp_path: Path, sqlite_url: str) -> None:
    # Every record rejected: the one-line mistake (reasonmed.cli.errors) names the file.
    rejected = _write_jsonl(tmp_path / f"all [bold red]{ESC}[31m{RLO}.jsonl", [{"question": "no options"}])
    out = _cli(tmp_path, sqlite_url, "ingest", str(rejected), "--format", "medqa")
    assert_printed_as_data(out, 1, "error: all [bold red].jsonl: all 1 records were rejected")
    # Not a PubMedQA file at all: the file-level error line gives its path, here with a closing tag in it.
    folder = tmp_path / "in ["
    folder.mkdir()
    wrong = folder / f"INST] pub{BEL}{RLO}.json"
    wrong.write_text(json.dumps([MEDQA]), encoding="utf-8")  # a list, not PubMedQA's one object
    out = _cli(tmp_path, sqlite_url, "ingest", str(wrong), "--format", "pubmedqa")
    assert_printed_as_data(out, 1, "in [/INST] pub.json", "expected one JSON object")
