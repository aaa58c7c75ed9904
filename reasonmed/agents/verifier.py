"""Verifier: judges one path against the answer key; its reason is the error analysis later stages use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reasonmed.agents.base import CallOutcome, PathJudge, QuestionView, Sampling
from reasonmed.llm.types import ChatBackend
from reasonmed.parsing import ParsedVerdict, parse_verdict, resolve_option
from reasonmed.prompts import PromptTemplate

UNPARSEABLE_REASON = "unparseable"

_verdict_judge: PathJudge[ParsedVerdict] = PathJudge("verifier", "verify", parse_verdict)


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
    call, parsed = await _verdict_judge(
        backend, q, path_text, sampling=sampling, seed=seed, attempts=attempts, template=template
    )
    if call.error is not None:
        return call, None
    text = call.completions[0].text
    if parsed is None:
        return call, VerdictResult("unparseable", UNPARSEABLE_REASON, text)
    return call, VerdictResult(
        parsed.outcome, parsed.reason, text, resolve_option(parsed.path_answer, q.options)
    )
