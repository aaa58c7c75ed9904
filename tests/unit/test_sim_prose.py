"""The simulator's quoted text never reads as an answer statement.

A refined path quotes the reviewer's points; when the refiner's reply is cut before its own conclusion
(the ``noanswer`` fault) the parser must find no answer in it, so the pipeline asks again instead of
keeping a path whose "answer" is the reviewer's sentence. CI once caught exactly that: a quoted
"the correct option is no" became the answer of a path that stated none. It holds in every style.
"""

from __future__ import annotations

import random

import pytest

from reasonmed.parsing import extract_answer
from reasonmed.sim import prose, styles
from tests.unit.test_parsing import ANTICOAG, EXTRACT_CASES, PQA

_STATEMENTS = [case for case in EXTRACT_CASES if case.values[2] is not None] + [
    pytest.param("It is possible to conclude that yes", PQA, "yes", id="conclude-that"),
    pytest.param("We concluded that C.", ANTICOAG, "C", id="concluded-that"),
    pytest.param("Option B is the most likely choice.", ANTICOAG, "B", id="reversed-choice"),
    pytest.param("The best response would be D.", ANTICOAG, "D", id="best-response"),
]


@pytest.mark.parametrize(("text", "options", "expected"), _STATEMENTS)
def test_a_defused_answer_statement_states_no_answer(
    text: str, options: dict[str, str], expected: str
) -> None:
    assert extract_answer(text, options) == expected  # the statement is one before defusing
    quoted = f'- Addressing: "{prose.defuse(text)}"; this step is corrected below.\nMore is needed.'
    assert extract_answer(quoted, options) is None, quoted


# The first seeds here; the rest of the 200 in tests/integration/test_sim_prose_sweep.py, so `pytest tests/unit`
# stays fast and the whole suite still sweeps every seed.
UNIT_SEEDS = range(10)
ALL_SEEDS = range(200)


@pytest.mark.parametrize("style", styles.STYLES)
@pytest.mark.parametrize("options", [PQA, ANTICOAG], ids=["yes-no-maybe", "lettered"])
def test_a_refined_path_without_its_conclusion_states_no_answer(
    options: dict[str, str], style: styles.Style
) -> None:
    check_refined_paths(options, style, UNIT_SEEDS)


def check_refined_paths(options: dict[str, str], style: styles.Style, seeds: range) -> None:
    """For each seed: a refined or regenerated path cut before its conclusion states no answer in any
    reading, and the whole path states its answer."""
    labels = list(options)
    for seed in seeds:
        rng = random.Random(seed)
        answer, reached = rng.choice(labels), rng.choice([*labels, None])
        reasons = [
            prose.verdict_reason(
                correct_verdict=flag,
                chosen=reached,
                answer=answer,
                options=options,
                flipped=flipped,
                rng=rng,
            )
            for flag in (True, False)
            for flipped in (True, False)
        ]
        for mode in ("refine", "regenerate"):
            cut = _path(options, answer, seed, mode, reasons, style, with_answer=False)
            whole = _path(options, answer, seed, mode, reasons, style, with_answer=True)
            assert extract_answer(cut, options) is None, cut
            assert styles.read_answer(cut, options) is None, cut
            assert styles.read_answer(whole, options) == answer
            if style == "plain":
                assert extract_answer(whole, options) == answer


def _path(
    options: dict[str, str],
    answer: str,
    seed: int,
    mode: str,
    reasons: list[str],
    style: styles.Style,
    *,
    with_answer: bool,
) -> str:
    rng = random.Random(seed)
    core = prose.steps(
        question="Which option fits?", options=options, chosen=answer, rng=rng, mode=mode, errors=reasons
    )
    return styles.write_path(
        core,
        chosen=answer if with_answer else None,
        options=options,
        style=style,
        r1=seed % 2 == 0,
        answer_line=True,
        rng=rng,
    )
