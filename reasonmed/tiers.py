"""Difficulty tiers and the quality ranker's deterministic top-k choice (spec, stage 3)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["RankCandidate", "Tier", "assign_tier", "select_top"]


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
