"""Generator: a medical expert's chain of thought ending in a final answer (paper: 9 per question)."""

from __future__ import annotations

from functools import partial

from reasonmed.agents.base import CallOutcome, QuestionView, Sampling, ask
from reasonmed.llm.types import ChatBackend
from reasonmed.parsing import extract_answer
from reasonmed.prompts import PromptTemplate, get_template


async def generate_paths(
    backend: ChatBackend,
    q: QuestionView,
    *,
    sampling: Sampling,
    seed: int,
    n: int,
    reasks: int,
    template: PromptTemplate | None = None,
) -> CallOutcome:
    """``n`` paths at one temperature in one request (one prefill); choice i uses seed + i."""
    return await ask(
        backend,
        template or get_template("generate"),
        q.prompt_fields(),
        role="generator",
        sampling=sampling,
        seed=seed,
        n=n,
        check=partial(extract_answer, options=q.options),
        reasks=reasks,
        affinity=q.content_hash,
    )
