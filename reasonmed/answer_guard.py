"""The answer guard: a path is accepted only when its own final answer is the answer key.

The verifier judges the reasoning and can call a path Correct whose conclusion names another option
(or none at all). Such a path is a *verifier disagreement*: it counts as not correct for tiers and
acceptance, whatever its verdict, and the audits list it (view ``audit_verifier_disagreements``).

Two readers say which option a path concludes with: the rules of ``parsing.extract_answer`` and the
verifier itself (the ``path_answer`` of its JSON). The pipeline file's ``answer_guard`` picks whose reading
the guard compares with the key:

- ``extracted``: the rules alone (a path whose conclusion the rules cannot read is not accepted);
- ``verifier``: the verifier's reading alone;
- ``both``: the rules, and the verifier's reading where the rules find none;
- ``off``: no guard, the verifier's verdict alone decides (the paper's released behaviour).
"""

from __future__ import annotations

from typing import Literal, get_args

GuardMode = Literal["extracted", "verifier", "both", "off"]
GUARD_MODES: tuple[GuardMode, ...] = get_args(GuardMode)
Disagreement = Literal["other option", "no final answer"]


def guard_mode(value: str) -> GuardMode:
    """A stored mode as the type the rules take (a row written by another version is refused loudly)."""
    for mode in GUARD_MODES:
        if mode == value:
            return mode
    raise ValueError(f"unknown answer_guard mode {value!r} (choose from {', '.join(GUARD_MODES)})")


def guard_answer(mode: GuardMode, extracted: str | None, verifier: str | None) -> str | None:
    """The reading of the path's conclusion that ``mode`` compares with the key (None under ``off``)."""
    if mode == "extracted":
        return extracted
    if mode == "verifier":
        return verifier
    if mode == "both":
        return extracted if extracted is not None else verifier
    if mode == "off":
        return None
    raise ValueError(f"unknown answer_guard mode {mode!r} (choose from {', '.join(GUARD_MODES)})")


def passes(
    mode: GuardMode,
    verdict_outcome: str | None,
    extracted: str | None,
    verifier: str | None,
    answer_key: str,
) -> bool:
    """Judged Correct and, unless the guard is off, concluding with the keyed option."""
    if verdict_outcome != "correct":
        return False
    return mode == "off" or guard_answer(mode, extracted, verifier) == answer_key


def disagreement(
    mode: GuardMode,
    verdict_outcome: str | None,
    extracted: str | None,
    verifier: str | None,
    answer_key: str,
) -> Disagreement | None:
    """Why a Correct verdict is overruled, or None when the guard agrees with the verdict (or it is not Correct)."""
    if verdict_outcome != "correct" or passes(mode, verdict_outcome, extracted, verifier, answer_key):
        return None
    return "no final answer" if guard_answer(mode, extracted, verifier) is None else "other option"
