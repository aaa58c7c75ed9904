"""The fast forms of the answer-statement search find exactly what the case-insensitive patterns find."""

from __future__ import annotations

import random

import pytest

from reasonmed.parsing import (
    _REVERSED_HINT,
    _REVERSED_STATEMENT,
    _STATEMENT_PATTERNS,
    _STRICT_FROM,
    _WEAK_FROM,
    _statement_spans,
)

PIECES = [
    "Final answer: C",
    "final  ANSWER is (b)",
    "The answer is D",
    "the answer, 3) maybe",
    "reanswer: x",
    "prefinal answer: A",
    "_answer: B",
    "the most likely answer would be: c",
    "incorrect answer is B",
    "The correct option is A.",
    "we conclude that yes",
    "Concluded that no",
    "<ANSWER>B</answer>",
    "Answer to the given question is: maybe",
    "Option C is the correct answer",
    "B is definitely the best choice",
    "Vitamin D is the correct answer",
    "İstanbul",  # lower() makes it longer: the slow path
    "ß ẞ Ω",
    "\n",
    " ",
    "**Answer:** A",
    "answer__:",
    "the most likely diagnosis is: E) COPD",
    "The best next step would be doxycycline",
    "This leaves us with b) x",
    "I'll go with C",
    "we would choose B",
    "the answer to whether it works is: (B) no",
    "relevant in all except Birth asphyxia",
    "So B is the answer",
    "Answer choice B is correct",
    "the closest answer choice is B) 16",
]


def _slow(text: str) -> list[tuple[int, int, bool, bool]]:
    return sorted(
        (m.start(), m.end(), i >= _STRICT_FROM, i >= _WEAK_FROM)
        for i, p in enumerate(_STATEMENT_PATTERNS)
        for m in p.finditer(text)
    )


@pytest.mark.parametrize("seed", range(300))
def test_fast_statement_search_matches_the_patterns(seed: int) -> None:
    rng = random.Random(seed)
    text = "".join(
        rng.choice(PIECES) + rng.choice(["", " ", ". ", "\n", "x"]) for _ in range(rng.randint(1, 12))
    )
    assert sorted(_statement_spans(text)) == _slow(text)


@pytest.mark.parametrize("piece", PIECES)
def test_reversed_statement_only_where_its_hint_is(piece: str) -> None:
    for text in (piece, f"Thus. {piece}.", f"**{piece}**"):
        if _REVERSED_STATEMENT.search(text):
            assert _REVERSED_HINT.search(text)
