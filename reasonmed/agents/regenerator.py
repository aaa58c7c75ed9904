"""Regenerator (difficult tier): a stronger reasoning model writes a deeper chain of thought from the
question, the answer, one failed attempt and every error reason."""

from __future__ import annotations

from functools import partial

from reasonmed.agents.base import CallOutcome, QuestionView, Sampling, ask
from reasonmed.llm.types import ChatBackend
from reasonmed.parsing import extract_answer
from reasonmed.prompts import PromptTemplate, format_errors, get_template


async def regenerate_path(
    backend: ChatBackend,
    q: QuestionView,
    failed_attempt: str,
    error_reasons: list[str],
    *,
    sampling: Sampling,
    seed: int,
    reasks: int,
    template: PromptTemplate | None = None,
) -> CallOutcome:
    fields = q.prompt_fields() | {"path": failed_attempt, "errors": format_errors(error_reasons)}
    return await ask(
        backend,
        template or get_template("regenerate"),
        fields,
        role="regenerator",
        sampling=sampling,
        seed=seed,
        check=partial(extract_answer, options=q.options),
        reasks=reasks,
    )
