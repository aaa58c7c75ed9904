"""Evaluator: a served model answers a benchmark test item zero-shot with chain of thought.

The prompt never carries the correct answer. A missing or unparseable final answer is not asked
again: on a benchmark that is the model's answer (scored wrong), and re-asking would flatter it.
"""

from __future__ import annotations

from functools import partial

from reasonmed.agents.base import CallOutcome, QuestionView, Sampling, ask
from reasonmed.llm.types import ChatBackend
from reasonmed.parsing import extract_answer
from reasonmed.prompts import PromptTemplate, get_template


def evaluate_fields(q: QuestionView) -> dict[str, str]:
    """The question's prompt fields without the answer, so it cannot leak into the evaluation prompt."""
    return {k: v for k, v in q.prompt_fields().items() if k != "answer"}


async def answer_question(
    backend: ChatBackend,
    q: QuestionView,
    *,
    sampling: Sampling,
    seed: int,
    template: PromptTemplate | None = None,
) -> CallOutcome:
    """``template``: the evaluate prompt or a variant of it (a schema-constrained one)."""
    return await ask(
        backend,
        template or get_template("evaluate"),
        evaluate_fields(q),
        role="evaluator",
        sampling=sampling,
        seed=seed,
        check=partial(extract_answer, options=q.options),
        reasks=0,
        affinity=q.content_hash,
    )
