"""Judge: rates one dataset row 1-10 on clinical accuracy, logical reasoning, factual correctness and
completeness (the paper's score evaluator), asked again when its JSON does not parse."""

from __future__ import annotations

from reasonmed.agents.base import CallOutcome, QuestionView, Sampling, ask
from reasonmed.evaluation.judge_output import JudgeScores, parse_judge
from reasonmed.llm.types import ChatBackend
from reasonmed.prompts import PromptTemplate, get_template


async def judge_response(
    backend: ChatBackend, q: QuestionView, response: str, *, sampling: Sampling, seed: int, attempts: int, template: PromptTemplate | None = None) -> tuple[CallOutcome, JudgeScores | None]:
    """``None`` scores with a successful call means the judge never produced parseable ratings."""
    call = await ask(
        backend, template or get_template("judge"), q.prompt_fields() | {"path": response}, role="judge",
        sampling=sampling, seed=seed, check=parse_judge, reasks=attempts - 1,
    )
    if call.error is not None or not call.accepted[0]:
        return call, None
    return call, parse_judge(call.completions[0].text)
