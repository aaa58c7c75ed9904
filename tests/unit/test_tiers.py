"""Tier routing and the ranker's top-k choice."""

from __future__ import annotations

import pytest

from reasonmed.tiers import RankCandidate, Tier, assign_tier, select_top

PAPER = {"easy_min_correct": 5, "medium_min_correct": 2}


@pytest.mark.parametrize(
    ("n_correct", "expected"),
    [
        (0, Tier.DIFFICULT),
        (1, Tier.DIFFICULT),
        (2, Tier.MEDIUM),
        (3, Tier.MEDIUM),
        (4, Tier.MEDIUM),
        (5, Tier.EASY),
        (6, Tier.EASY),
        (7, Tier.EASY),
        (8, Tier.EASY),
        (9, Tier.EASY),
    ],
)
def test_paper_default_boundaries(n_correct: int, expected: Tier) -> None:
    assert assign_tier(n_correct, **PAPER) is expected


@pytest.mark.parametrize(
    ("n_correct", "expected"),
    [
        (0, Tier.DIFFICULT),
        (2, Tier.DIFFICULT),
        (3, Tier.MEDIUM),
        (6, Tier.MEDIUM),
        (7, Tier.EASY),
        (9, Tier.EASY),
    ],
)
def test_custom_thresholds(n_correct: int, expected: Tier) -> None:
    assert assign_tier(n_correct, easy_min_correct=7, medium_min_correct=3) is expected


def test_equal_thresholds_leave_medium_empty() -> None:
    tiers = {assign_tier(n, easy_min_correct=3, medium_min_correct=3) for n in range(10)}
    assert tiers == {Tier.EASY, Tier.DIFFICULT}


def test_zero_medium_threshold_leaves_difficult_empty() -> None:
    assert assign_tier(0, easy_min_correct=5, medium_min_correct=0) is Tier.MEDIUM


def test_tier_values_are_plain_strings() -> None:
    assert [t.value for t in Tier] == ["easy", "medium", "difficult"]
    assert Tier("medium") is Tier.MEDIUM
    assert f"{Tier.EASY}" == "easy"


@pytest.mark.parametrize(
    ("n_correct", "easy", "medium", "message"),
    [
        (-1, 5, 2, "n_correct"),
        (3, -1, 2, "thresholds"),
        (3, 5, -2, "thresholds"),
        (3, 2, 5, "must not exceed"),
    ],
)
def test_assign_tier_rejects_invalid_arguments(n_correct: int, easy: int, medium: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        assign_tier(n_correct, easy_min_correct=easy, medium_min_correct=medium)


def _cands(*scores: int | None) -> list[RankCandidate]:
    return [RankCandidate(path_id=100 + i, generation_order=i, score=s) for i, s in enumerate(scores)]


def test_select_top_orders_by_score() -> None:
    top = select_top(_cands(3, 5, 4, 1), 2)
    assert [c.score for c in top] == [5, 4]
    assert [c.path_id for c in top] == [101, 102]


def test_select_top_ties_keep_generation_order() -> None:
    cands = [
        RankCandidate(path_id=1, generation_order=7, score=4),
        RankCandidate(path_id=2, generation_order=2, score=4),
        RankCandidate(path_id=3, generation_order=5, score=4),
    ]
    assert [c.path_id for c in select_top(cands, 2)] == [2, 3]
    assert [c.path_id for c in select_top(list(reversed(cands)), 3)] == [2, 3, 1]


def test_select_top_none_ranks_below_zero() -> None:
    cands = [
        RankCandidate(path_id=1, generation_order=0, score=None),
        RankCandidate(path_id=2, generation_order=1, score=0),
        RankCandidate(path_id=3, generation_order=2, score=None),
    ]
    assert [c.path_id for c in select_top(cands, 3)] == [2, 1, 3]
    assert select_top(cands, 1)[0].score == 0


def test_select_top_all_unscored_falls_back_to_generation_order() -> None:
    cands = [RankCandidate(path_id=i, generation_order=10 - i, score=None) for i in range(4)]
    assert [c.path_id for c in select_top(cands, 2)] == [3, 2]


def test_select_top_returns_at_most_k_and_does_not_mutate() -> None:
    cands = _cands(2, 5)
    snapshot = list(cands)
    assert len(select_top(cands, 5)) == 2
    assert select_top([], 2) == []
    assert cands == snapshot


def test_select_top_is_deterministic_for_duplicate_orders() -> None:
    cands = [
        RankCandidate(path_id=9, generation_order=0, score=3),
        RankCandidate(path_id=4, generation_order=0, score=3),
    ]
    assert [c.path_id for c in select_top(cands, 1)] == [4]
    assert [c.path_id for c in select_top(cands[::-1], 1)] == [4]


@pytest.mark.parametrize("k", [0, -1])
def test_select_top_rejects_k_below_one(k: int) -> None:
    with pytest.raises(ValueError, match="k must be >= 1"):
        select_top(_cands(1), k)


def test_each_role_names_its_prompt_stage_and_origin() -> None:
    """Written out by hand: the nouns, verbs and origins the stored rows and prompt files use."""
    from reasonmed.roles import Origin, Role, Stage

    table = {
        Role.GENERATOR: ("generate", Stage.GENERATE, "generated"),
        Role.VERIFIER: ("verify", Stage.VERIFY, None),
        Role.RANKER: ("rank", Stage.RESOLVE, None),
        Role.REFINER: ("refine", Stage.RESOLVE, "refined"),
        Role.REGENERATOR: ("regenerate", Stage.RESOLVE, "regenerated"),
        Role.SUMMARIZER: ("summarize", Stage.SUMMARIZE, None),
    }
    assert list(table) == list(Role)  # pipeline order
    for role, (prompt, stage, origin) in table.items():
        assert (role.prompt, role.stage, role.origin) == (prompt, stage, origin), role
        assert role.judges == (origin is None and role is not Role.GENERATOR)
    assert [Role.REFINER.writes, Role.GENERATOR.writes] == [Origin.REFINED, Origin.GENERATED]
    with pytest.raises(ValueError, match="writes no paths"):
        _ = Role.RANKER.writes
