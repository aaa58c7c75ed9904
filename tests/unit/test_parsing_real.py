"""Parsers against real model output: SmolLM2-135M-Instruct on llama.cpp, recorded by ``bench/real_engine.py``.

Every record in ``tests/fixtures/real_outputs/<role>.jsonl`` carries an ``expected`` parse that a person
wrote after reading the output (``note`` says why where the text is tricky); the parser must agree with it.
The expectation is never adjusted to the parser: a disagreement is a parser bug (or a misreading to argue
about in review). Pure parsing, no engine: the recording itself is ``bench/real_engine.py --record``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from reasonmed.parsing import extract_answer, parse_score, parse_summary, parse_verdict

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "real_outputs"
ROLES = ("generator", "verifier", "ranker", "summarizer")
MIN_RECORDS_PER_ROLE = 60
NO_REASON = "(no reason given)"  # what parse_verdict puts in when an error verdict has no reason
PROVENANCE = ("model", "prompt_sha256", "sampling", "structured", "question", "output")


@cache
def records(role: str) -> tuple[dict[str, Any], ...]:
    with (CORPUS / f"{role}.jsonl").open(encoding="utf-8") as fh:
        return tuple(json.loads(line) for line in fh if line.strip())


def parsed(role: str, record: dict[str, Any]) -> Any:
    """The parser's reading in the shape of the hand-written ``expected`` field of that role.

    generator: the option label or None; verifier: ``{"verdict": "correct"|"error", "reason": bool}`` or
    None (``reason``: the verdict carries a reason of its own); ranker: the 0-5 score or None;
    summarizer: whether a usable summary is left once the scaffolding is gone.
    """
    text = record["output"]
    if role == "generator":
        return extract_answer(text, record["question"]["options"])
    if role == "verifier":
        verdict = parse_verdict(text)
        if verdict is None:
            return None
        return {"verdict": verdict.outcome, "reason": bool(verdict.reason) and verdict.reason != NO_REASON}
    if role == "ranker":
        score = parse_score(text)
        return None if score is None else score.score
    if role == "summarizer":
        return parse_summary(text) is not None
    raise ValueError(f"unknown role {role!r}")


CASES = [
    pytest.param(role, record, id=f"{role}-{index:03d}")
    for role in ROLES
    for index, record in enumerate(records(role), 1)
]


@pytest.mark.parametrize(("role", "record"), CASES)
def test_parser_matches_hand_review(role: str, record: dict[str, Any]) -> None:
    assert "expected" in record, "every recorded output needs a hand-reviewed expectation"
    assert parsed(role, record) == record["expected"], record.get("note", "")


@pytest.mark.parametrize("role", ROLES)
def test_corpus_is_large_enough_and_carries_provenance(role: str) -> None:
    recs = records(role)
    assert len(recs) >= MIN_RECORDS_PER_ROLE
    for rec in recs:
        missing = [key for key in PROVENANCE if key not in rec]
        assert not missing, f"{role} record {rec.get('sampling')} lacks {missing}"
        assert rec["role"] == role
        assert len(rec["prompt_sha256"]) == 64
        assert {"temperature", "top_p", "max_tokens", "seed"} <= rec["sampling"].keys()
        assert rec["question"]["options"] and rec["question"]["answer"] in rec["question"]["options"]


@pytest.mark.parametrize("role", ["verifier", "ranker"])
def test_corpus_holds_free_and_structured_outputs_of_the_same_paths(role: str) -> None:
    by_mode: dict[bool, set[int]] = {True: set(), False: set()}
    for rec in records(role):
        by_mode[rec["structured"]].add(rec["sampling"]["seed"])
    assert by_mode[True] and by_mode[True] == by_mode[False]


def test_expectations_have_the_role_shape() -> None:
    for rec in records("generator"):
        assert rec["expected"] is None or rec["expected"] in rec["question"]["options"]
    for rec in records("verifier"):
        exp = rec["expected"]
        assert exp is None or (exp["verdict"] in {"correct", "error"} and isinstance(exp["reason"], bool))
    for rec in records("ranker"):
        assert rec["expected"] is None or (type(rec["expected"]) is int and 0 <= rec["expected"] <= 5)
    for rec in records("summarizer"):
        assert isinstance(rec["expected"], bool)
