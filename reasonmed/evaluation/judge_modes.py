"""The two ways ``reasonmed score`` can judge a dataset row, so every stored rating says which it was.

- ``rubric`` (the project's): the judge sees question, options and the keyed answer and rates four criteria
  and an overall score 1-10, at temperature 0.
- ``paper`` (the released ``score_evaluator.py``): the judge sees the question with its options and the
  response, not the answer, and gives one holistic 1-10 score with a justification, at temperature 0.7,
  top_p 0.95. Any judge endpoint can play it (the paper used a GPT-class model).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from reasonmed.evaluation.judge_output import JudgeScores, parse_judge, parse_paper_judge
from reasonmed.prompts import PromptTemplate, get_template

JudgeMode = Literal["rubric", "paper"]
JUDGE_MODES: tuple[JudgeMode, ...] = ("rubric", "paper")


@dataclass(frozen=True)
class JudgeSpec:
    mode: JudgeMode
    template: PromptTemplate
    temperature: float
    top_p: float
    parse: Callable[[str], JudgeScores | None]


def judge_spec(mode: str) -> JudgeSpec:
    if mode == "rubric":
        return JudgeSpec("rubric", get_template("judge", "reasonmed"), 0.0, 1.0, parse_judge)
    if mode == "paper":
        return JudgeSpec("paper", get_template("judge", "paper"), 0.7, 0.95, parse_paper_judge)
    raise ValueError(f"judge mode must be one of {', '.join(JUDGE_MODES)} (got {mode!r})")
