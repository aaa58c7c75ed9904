"""Quality ranker: scores a Correct path 0-5 so the best ones are kept (ties keep generation order)."""

from __future__ import annotations

from reasonmed.agents.base import CallOutcome, QuestionView, Sampling, ask
from reasonmed.llm.types import ChatBackend
from reasonmed.parsing import ParsedScore, parse_score
from reasonmed.prompts import PromptTemplate, get_template


async def score_path(
    backend: ChatBackend,
    q: QuestionView,
    path_text: str,
    *,
    sampling: Sampling,
    seed: int,
    attempts: int,
    template: PromptTemplate | None = None,
) -> tuple[CallOutcome, ParsedScore | None]:
    """``None`` score with a successful call means the ranker never produced a parseable score."""
    call = await ask(
        backend,
        template or get_template("rank"),
        q.prompt_fields() | {"path": path_text},
        role="ranker",
        sampling=sampling,
        seed=seed,
        check=parse_score,
        reasks=attempts - 1,
    )
    if call.error is not None or not call.accepted[0]:
        return call, None
    return call, parse_score(call.completions[0].text)
