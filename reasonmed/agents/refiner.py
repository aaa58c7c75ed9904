"""Error refiner (medium tier): rewrites a sound path so it explicitly avoids the errors the verifier
found in this question's failed attempts (the traps), keeping the sound steps."""

from __future__ import annotations

from functools import partial

from reasonmed.agents.base import CallOutcome, QuestionView, Sampling, ask
from reasonmed.llm.types import ChatBackend
from reasonmed.parsing import extract_answer
from reasonmed.prompts import PromptTemplate, format_errors, get_template


async def refine_path(
    backend: ChatBackend,
    q: QuestionView,
    path_text: str,
    error_reasons: list[str],
    *,
    sampling: Sampling,
    seed: int,
    reasks: int,
    template: PromptTemplate | None = None,
) -> CallOutcome:
    fields = q.prompt_fields() | {"path": path_text, "errors": format_errors(error_reasons)}
    return await ask(
        backend,
        template or get_template("refine"),
        fields,
        role="refiner",
        sampling=sampling,
        seed=seed,
        check=partial(extract_answer, options=q.options),
        reasks=reasks,
    )
