"""Judge: rates one dataset row 1-10 on clinical accuracy, logical reasoning, factual correctness and
completeness (the paper's score evaluator), asked again when its JSON does not parse."""

from __future__ import annotations

from collections.abc import Callable

from reasonmed.agents.base import CallOutcome, QuestionView, Sampling, ask_parsed
from reasonmed.evaluation.judge_output import JudgeScores, parse_judge
from reasonmed.llm.types import ChatBackend
from reasonmed.prompts import PromptTemplate, get_template


async def judge_response(
    backend: ChatBackend,
    q: QuestionView,
    response: str,
    *,
    sampling: Sampling,
    seed: int,
    attempts: int,
    template: PromptTemplate | None = None,
    parse: Callable[[str], JudgeScores | None] = parse_judge,
) -> tuple[CallOutcome, JudgeScores | None]:
    """``None`` scores with a successful call means the judge never produced parseable ratings.
    ``template``/``parse`` choose the judge mode (``evaluation/judge_modes.py``); default: the rubric."""
    t = template or get_template("judge")
    fields = {k: v for k, v in (q.prompt_fields() | {"path": response}).items() if k in t.placeholders()}
    return await ask_parsed(
        backend,
        t,
        fields,
        role="judge",
        sampling=sampling,
        seed=seed,
        attempts=attempts,
        parse=parse,
        affinity=q.content_hash,
    )
