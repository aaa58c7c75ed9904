"""A failed attempt of a question at a stage, and the rule that gives up on the question.

The table of who retries what is in ``pipeline/failures.py``, which turns exceptions into these; this small
module sits below both the pipeline and ``reasonmed/db`` (which records attempts and applies the rule in
the same transaction), so the database layer imports nothing of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FailureClass = Literal["transient", "permanent", "endpoint", "waiting"]


@dataclass(frozen=True, slots=True)
class StageFailure:
    """One failed attempt of one question at one stage, as the database records it."""

    stage: str
    cls: FailureClass
    kind: str  # an LLM error kind, "unusable_output", "database" or the exception's class name
    message: str

    @property
    def counts(self) -> bool:
        """Whether it spends the question's attempt budget (an endpoint's outage is not the question's, and
        waiting on a batch is no failure at all)."""
        return self.cls not in ("endpoint", "waiting")


def sets_aside(failure: StageFailure, failures_so_far: int, budget: int) -> bool:
    """Whether the question is given up on after this failure (``failures_so_far`` includes it)."""
    return failure.counts and (failure.cls == "permanent" or failures_so_far >= budget)
