"""Verifier: judges one path against the answer key; its reason is the error analysis later stages use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reasonmed.agents.base import CallOutcome, QuestionView, Sampling, ask
from reasonmed.llm.types import ChatBackend
from reasonmed.parsing import parse_verdict, resolve_option
from reasonmed.prompts import PromptTemplate, get_template

UNPARSEABLE_REASON = "unparseable"


@dataclass(frozen=True)
class VerdictResult:
    outcome: Literal["correct", "error", "unparseable"]
    reason: str
    raw_output: str | None
    # The option the verifier says the path itself concludes with (None: it named none, or no reading).
    verifier_answer: str | None = None


async def verify_path(
    backend: ChatBackend,
    q: QuestionView,
    path_text: str,
    *,
    sampling: Sampling,
    seed: int,
    attempts: int,
    template: PromptTemplate | None = None,
) -> tuple[CallOutcome, VerdictResult | None]:
    """Returns the call and its verdict; an output that never parses is a verdict too ("unparseable",
    which counts as not Correct). ``None`` only when the endpoint itself failed."""
    fields = q.prompt_fields() | {"path": path_text}
    call = await ask(
        backend,
        template or get_template("verify"),
        fields,
        role="verifier",
        sampling=sampling,
        seed=seed,
        check=parse_verdict,
        reasks=attempts - 1,
    )
    if call.error is not None:
        return call, None
    text = call.completions[0].text
    parsed = parse_verdict(text) if call.accepted[0] else None
    if parsed is None:
        return call, VerdictResult("unparseable", UNPARSEABLE_REASON, text)
    return call, VerdictResult(
        parsed.outcome, parsed.reason, text, resolve_option(parsed.path_answer, q.options)
    )
