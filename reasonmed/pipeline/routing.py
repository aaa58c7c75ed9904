"""The tier rules of stage 3 as pure choices over judged paths, with no model call and no database.

``stages.resolve`` asks the models and calls these to decide; the test oracle (``tests/sim_expectations.py``)
calls the same functions with the simulator's implied judgments, so the rules live in one place.
A path is "ok" when it passed the answer guard (judged Correct and concluding with the keyed option);
the caller supplies that judgment as ``ok``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from reasonmed.tiers import RankCandidate, select_top


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
