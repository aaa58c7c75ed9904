"""The tier rules (reasonmed/tiers.py) on hand-made judged paths: no model, no database."""

from __future__ import annotations

from dataclasses import dataclass

from reasonmed import tiers as tier_rules


@dataclass(frozen=True)
class P:
    id: int
    generation_order: int
    extracted_answer: str | None = "A"
    ok: bool = False


def ok(p: P) -> bool:
    return p.ok


def test_ranked_takes_the_best_scores_then_generation_order_and_unscored_last() -> None:
    paths = [P(1, 0), P(2, 1), P(3, 2), P(4, 3)]
    scores = {1: 3, 2: 5, 3: None, 4: 5}
    assert [p.id for p in tier_rules.ranked(paths, scores, 3)] == [2, 4, 1]
    assert [p.id for p in tier_rules.ranked(paths, {}, 2)] == [1, 2]


def test_medium_keeps_a_passing_refinement_and_falls_back_to_its_parent_otherwise() -> None:
    a, b, c = P(1, 0, ok=True), P(2, 1, ok=True), P(3, 2, ok=True)
    refined = {1: P(11, 1000, ok=True), 2: P(12, 1001, ok=False)}  # c was never refined
    assert [p.id for p in tier_rules.medium_keep([a, b, c], refined, ok, 3)] == [11, 2, 3]
    assert [p.id for p in tier_rules.medium_keep([a, b, c], refined, ok, 2)] == [11, 2]


def test_difficult_starts_from_the_lone_correct_path_else_the_first_answered_failure() -> None:
    """Refiner and regenerator both start from the Correct path when there is one (released diff_opti.py)."""
    unanswered, wrong, right = P(1, 0, extracted_answer=None), P(2, 1, "B"), P(3, 2, ok=True)
    assert tier_rules.difficult_source([unanswered, wrong, right], ok) is right
    # No Correct path: the first failure that reached an answer; none reached one: the first failure.
    assert tier_rules.difficult_source([unanswered, wrong], ok) is wrong
    assert tier_rules.difficult_source([unanswered, P(4, 1, extracted_answer=None)], ok) is unanswered


def test_difficult_keeps_the_passing_refinement_or_a_correct_base_then_passing_regenerations() -> None:
    base_ok, base_bad = P(1, 0, ok=True), P(2, 1)
    good_ref, bad_ref = P(10, 1000, ok=True), P(11, 1000)
    regen = [P(20, 1000, ok=True), P(21, 1001), P(22, 1002, ok=True)]
    assert [p.id for p in tier_rules.difficult_keep([good_ref], base_ok, regen, ok, 2)] == [10, 20]
    assert [p.id for p in tier_rules.difficult_keep([bad_ref], base_ok, regen, ok, 5)] == [1, 20, 22]
    assert [p.id for p in tier_rules.difficult_keep([bad_ref], base_bad, regen, ok, 5)] == [20, 22]
    assert tier_rules.difficult_keep([bad_ref], base_bad, [P(21, 1001)], ok, 5) == []
