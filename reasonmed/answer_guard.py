"""The answer guard: a path is accepted only when its own final answer is the answer key.

The verifier judges the reasoning and can call a path Correct whose conclusion names another option
(or none at all). Such a path is a *verifier disagreement*: it counts as not correct for tiers and
acceptance, whatever its verdict, and the audits list it (view ``audit_verifier_disagreements``).
"""

from __future__ import annotations

from typing import Literal

Disagreement = Literal["other option", "no final answer"]


def passes(verdict_outcome: str | None, extracted_answer: str | None, answer_key: str) -> bool:
    """Judged Correct by the verifier and concluding with the keyed option."""
    return verdict_outcome == "correct" and extracted_answer == answer_key


def disagreement(
    verdict_outcome: str | None, extracted_answer: str | None, answer_key: str
) -> Disagreement | None:
    """Why a Correct verdict is overruled, or None when the guard agrees with the verdict (or it is not Correct)."""
    if verdict_outcome != "correct" or extracted_answer == answer_key:
        return None
    return "no final answer" if extracted_answer is None else "other option"
