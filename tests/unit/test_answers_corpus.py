"""``extract_answer`` against real LLMs' answers to medical exam questions, labelled by hand.

``tests/fixtures/real_answers/answers.jsonl`` holds answers of GPT-4/4o, GPT-3.5, InstructGPT, Claude 3.5,
Cohere, DeepSeek-R1, QwQ, o1/o3-mini, Llama-2/3, Qwen, Mistral, Gemma, Phi and Flan-T5 from public evaluation
repositories (source, commit and licence per record; ``PROVENANCE.md``), each labelled by a person with the
option it finally commits to, or none. The pipeline reads a path as ``extract_answer(clean_reasoning(raw))``;
the goal (issue 23): at least 97% agreement, and never an option where the label is another or none (a wrong
answer is worse than no answer: the answer guard would accept a path for a conclusion it does not reach).
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from reasonmed.parsing import clean_reasoning, extract_answer

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "real_answers" / "answers.jsonl"
MIN_AGREEMENT = 0.97


@cache
def records() -> tuple[dict[str, Any], ...]:
    with CORPUS.open(encoding="utf-8") as fh:
        return tuple(json.loads(line) for line in fh if line.strip())


def read(record: dict[str, Any]) -> str | None:
    return extract_answer(clean_reasoning(record["output"]), record["options"])


def test_the_corpus_is_large_varied_and_sourced() -> None:
    recs = records()
    assert len(recs) >= 300
    assert len({r["family"] for r in recs}) >= 6
    assert {"deepseek-r1", "qwq", "gpt-4", "claude", "llama-3-70b", "qwen2.5"} <= {r["family"] for r in recs}
    assert sum("</think>" in r["output"] for r in recs) >= 30  # reasoning models' blocks
    assert len({r["id"] for r in recs}) == len(recs)
    for r in recs:
        source = r["source"]
        assert source["repo"] and source["path"] and source["licence"], r["id"]
        assert r["label"] is None or r["label"] in r["options"], r["id"]
        assert r["note"], r["id"]
    assert sum(r["label"] is None for r in recs) >= 30  # outputs that commit to nothing are there to refuse


@pytest.mark.parametrize("record", records(), ids=lambda r: r["id"])
def test_never_an_option_the_answer_does_not_commit_to(record: dict[str, Any]) -> None:
    got = read(record)
    assert got is None or got == record["label"], f"{record['note']} (read {got})"


def test_agreement_with_the_hand_labels() -> None:
    recs = records()
    outcome = Counter("agree" if read(r) == r["label"] else "miss" for r in recs)
    assert outcome["agree"] / len(recs) >= MIN_AGREEMENT, outcome
