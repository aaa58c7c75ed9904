"""Summarizer: condenses an accepted path into the concise answer of the ReasonMed/ResponseMed rows."""

from __future__ import annotations

from reasonmed.agents.base import CallOutcome, QuestionView, Sampling, ask
from reasonmed.llm.types import ChatBackend
from reasonmed.parsing import parse_summary
from reasonmed.prompts import PromptTemplate, get_template


async def summarize_path(
    backend: ChatBackend,
    q: QuestionView,
    path_text: str,
    *,
    sampling: Sampling,
    seed: int,
    reasks: int,
    template: PromptTemplate | None = None,
) -> CallOutcome:
    return await ask(
        backend,
        template or get_template("summarize"),
        q.prompt_fields() | {"path": path_text},
        role="summarizer",
        sampling=sampling,
        seed=seed,
        check=parse_summary,
        reasks=reasks,
    )
