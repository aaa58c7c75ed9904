"""Stage 3's rules in one place: the tier of a question, the answer guard that says which paths count
as correct, and the choices each tier makes among judged paths. Pure functions: no model call, no database.

``stages.resolve`` asks the models and calls these to decide; the test oracle (``tests/sim_expectations.py``)
calls the same functions with the simulator's implied judgments. The thresholds themselves are the pipeline
file's ``tiers`` (``easy_min_correct``, ``medium_min_correct``, ``keep_top``; the paper: easy 5+, medium 2-4
of 9).

**Tiers.** A question's tier is the number of its generated paths that pass the answer guard: easy (the
ranker keeps the best), medium (the refiner rewrites the best with the failed attempts' error analyses),
difficult (the refiner and a stronger regenerator start from its lone Correct path or best failed attempt).

**The answer guard.** The answer guard: a path is accepted only when its own final answer is the answer key.

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

**Routing.** A path is "ok" when it passed the answer guard (judged Correct and concluding with the keyed
option); the caller supplies that judgment as ``ok``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol, TypeVar, get_args

__all__ = [
    "GUARD_MODES",
    "Disagreement",
    "GuardMode",
    "Judged",
    "RankCandidate",
    "Tier",
    "assign_tier",
    "difficult_keep",
    "difficult_rejection",
    "difficult_source",
    "disagreement",
    "guard_answer",
    "guard_mode",
    "medium_keep",
    "passes",
    "ranked",
    "select_top",
]

# ---------------------------------------------------------------------------------------------- tiers


class Tier(StrEnum):
    EASY = "easy"
    MEDIUM = "medium"
    DIFFICULT = "difficult"


def assign_tier(n_correct: int, *, easy_min_correct: int, medium_min_correct: int) -> Tier:
    """Tier a question by how many of its paths the verifier judged Correct.

    Thresholds are parameters because the paper's figures (easy 5+, medium 2-4 of 9) are uncertain.
    ``medium_min_correct == easy_min_correct`` is allowed and leaves the medium tier empty.
    """
    if n_correct < 0:
        raise ValueError(f"n_correct must be >= 0, got {n_correct}")
    if easy_min_correct < 0 or medium_min_correct < 0:
        raise ValueError(
            "tier thresholds must be >= 0, got "
            f"easy_min_correct={easy_min_correct}, medium_min_correct={medium_min_correct}"
        )
    if medium_min_correct > easy_min_correct:
        raise ValueError(
            f"medium_min_correct ({medium_min_correct}) must not exceed easy_min_correct ({easy_min_correct})"
        )
    if n_correct >= easy_min_correct:
        return Tier.EASY
    if n_correct >= medium_min_correct:
        return Tier.MEDIUM
    return Tier.DIFFICULT


@dataclass(frozen=True)
class RankCandidate:
    path_id: int
    generation_order: int  # model order, then temperature order, then sample index
    score: int | None  # None = the ranker's output did not parse


def _rank_key(candidate: RankCandidate) -> tuple[int, int, int, int]:
    # Unscored paths sort after every scored one (below 0); path_id only breaks exact duplicates.
    unscored = candidate.score is None
    score = 0 if candidate.score is None else candidate.score
    return (int(unscored), -score, candidate.generation_order, candidate.path_id)


def select_top(candidates: Sequence[RankCandidate], k: int) -> list[RankCandidate]:
    """Best ``k`` paths: highest score first, ties in generation order, so reruns pick the same paths."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return sorted(candidates, key=_rank_key)[:k]


# ------------------------------------------------------------------------------------- answer guard

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


# ------------------------------------------------------------------------------------------ routing


class Judged(Protocol):
    """What the rules read of a path."""

    @property
    def id(self) -> int: ...

    @property
    def generation_order(self) -> int: ...

    @property
    def extracted_answer(self) -> str | None: ...


P = TypeVar("P", bound=Judged)


def ranked(paths: Sequence[P], scores: Mapping[int, int | None], k: int) -> list[P]:
    """The ranker's best ``k`` of ``paths`` (unscored last, ties in generation order)."""
    by_id = {p.id: p for p in paths}
    cands = [RankCandidate(p.id, p.generation_order, scores.get(p.id)) for p in paths]
    return [by_id[c.path_id] for c in select_top(cands, k)]


def medium_keep(
    best: Sequence[P], refined: Mapping[int, P], ok: Callable[[P], bool], keep_top: int
) -> list[P]:
    """Medium tier: each refined path that passes replaces its parent; one that fails (or is missing) falls
    back to the parent, which was already judged Correct, so no sound path is lost."""
    kept = []
    for parent in best:
        child = refined.get(parent.id)
        kept.append(child if child is not None and ok(child) else parent)
    return kept[:keep_top]


def difficult_source(generated: Sequence[P], ok: Callable[[P], bool]) -> P:
    """Difficult tier: the path the refiner corrects and the regenerator writes from.

    Both start from the question's lone Correct path when it has one, as the released ``diff_opti.py`` does
    for its regenerator; else from a failed attempt: the first that reached an answer, else the first.
    """
    failed = [p for p in generated if not ok(p)]
    attempt = next(
        (p for p in failed if p.extracted_answer is not None), failed[0] if failed else generated[0]
    )
    return next((p for p in generated if ok(p)), attempt)


def difficult_keep(
    refined: Sequence[P],
    base: P,
    regenerated: Sequence[P],
    ok: Callable[[P], bool],
    keep_top: int,
) -> list[P]:
    """Difficult tier: the refined paths that pass (else ``base`` itself if it was Correct), then the
    regenerated paths that pass."""
    first = [p for p in refined if ok(p)] or ([base] if ok(base) else [])
    return (first + [p for p in regenerated if ok(p)])[:keep_top]


def difficult_rejection(n_regenerated: int) -> str:
    return (
        f"difficult tier: neither the refined path nor any of the {n_regenerated} regenerated paths "
        "was verified correct"
    )
