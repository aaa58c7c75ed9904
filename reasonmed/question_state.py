"""What is stored for a question under the current stage keys, as the stages reason with it.

Plain records in their own module, below both: ``reasonmed/db`` reads them (``db/state_repo.py``) and the
pipeline decides on them, without either importing the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from reasonmed.question_view import QuestionView
from reasonmed.stage_records import PathRecord, ScoreRecord, SummaryRecord, VerdictRecord

FINISHED = ("accepted", "rejected")  # the outcome statuses a question is done with


@dataclass(frozen=True)
class PathRow:
    """A stored reasoning path, as the stages read it."""

    id: int
    path_key: str
    origin: str
    parent_path_id: int | None
    endpoint: str
    model: str
    temperature: float
    sample_index: int
    generation_order: int
    clean_text: str
    extracted_answer: str | None
    prompt_sha256: str = ""  # the exact variant its call sent


@dataclass(frozen=True, slots=True)
class StoredVerdict:
    """A path's verdict under the current verifier key."""

    id: int
    outcome: str  # correct | error | unparseable
    reason: str | None
    verifier_answer: str | None = None  # the option the verifier says the path concludes with
    answer_guard: str = "extracted"  # the guard mode the verdict was judged under (decisions and views agree)


@dataclass(frozen=True, slots=True)
class AcceptedRef:
    """An accepted path and the verdict it was accepted on."""

    path_id: int
    verdict_id: int


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """Where a question stands (``question_outcomes``)."""

    status: str  # resolved | accepted | rejected
    tier: str | None
    n_paths: int
    n_correct: int
    n_accepted: int
    rejection_reason: str | None
    run_id: int | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass
class QuestionState:
    """Everything stored for one question, so each stage can do exactly what is missing."""

    paths: list[PathRow] = field(default_factory=list)
    verdicts: dict[int, StoredVerdict] = field(default_factory=dict)  # by path id
    scores: dict[int, int | None] = field(default_factory=dict)  # path id -> score (None: did not parse)
    accepted: list[AcceptedRef] = field(default_factory=list)  # in rank order
    summaries: set[int] = field(default_factory=set)  # path ids with a summary
    outcome: OutcomeRow | None = None
    # A write found rows already stored that this state does not hold (another worker's, under an expired
    # claim): read the state again before relying on it.
    reread: bool = False

    @property
    def finished(self) -> bool:
        return self.outcome is not None and self.outcome.finished

    # What each stage write adds, so a state carried between stages stays what
    # ``db/state_repo.load_questions`` would read.

    def add_paths(self, records: Sequence[PathRecord], new_ids: Mapping[str, int]) -> None:
        for r in records:
            pid = new_ids.get(r.path_key)
            if pid is None:
                self.reread = True
                continue
            self.paths.append(
                PathRow(
                    pid,
                    r.path_key,
                    r.origin,
                    r.parent_path_id,
                    r.endpoint,
                    r.model,
                    r.temperature,
                    r.sample_index,
                    r.generation_order,
                    r.clean_text,
                    r.extracted_answer,
                    r.prompt_sha256,
                )
            )

    def add_verdicts(self, records: Sequence[VerdictRecord], new_ids: Mapping[int, int]) -> None:
        for r in records:
            vid = new_ids.get(r.path_id)
            if vid is None:
                self.reread = True
            else:
                self.verdicts[r.path_id] = StoredVerdict(
                    vid, r.outcome, r.reason, r.verifier_answer, r.answer_guard
                )

    def add_scores(self, records: Sequence[ScoreRecord], new: set[int]) -> None:
        for r in records:
            if r.path_id in new:
                self.scores[r.path_id] = r.score
            else:
                self.reread = True

    def decide(self, outcome: OutcomeRow, accepted: Sequence[AcceptedRef], dropped: set[int]) -> None:
        """A resolution written: ``dropped`` are kept paths whose summary was found unusable before."""
        self.outcome = outcome
        self.accepted = [a for a in accepted if a.path_id not in dropped]

    def add_summaries(
        self, records: Sequence[SummaryRecord], new: set[int], dropped: Mapping[int, str], complete: bool
    ) -> None:
        for r in records:
            if r.path_id in new:
                self.summaries.add(r.path_id)
            else:
                self.reread = True
        self.accepted = [a for a in self.accepted if a.path_id not in dropped]
        if complete and self.outcome is not None:
            self.outcome = replace(self.outcome, status="accepted", n_accepted=len(self.accepted))

    def by_origin(self, origin: str) -> list[PathRow]:
        return sorted((p for p in self.paths if p.origin == origin), key=lambda p: (p.generation_order, p.id))

    def path(self, path_id: int) -> PathRow:
        return next(p for p in self.paths if p.id == path_id)


class JudgeKey(NamedTuple):
    """Which stored verdicts, scores or summaries are current: those of this model and prompt."""

    model: str
    prompt_sha256: str


class WriterKey(NamedTuple):
    """Which refined or regenerated paths count: this model's, with the template or one of its re-ask variants."""

    model: str
    prompt_shas: tuple[str, ...]


@dataclass(frozen=True)
class StageKeys:
    """The current key of each judged and each writing stage."""

    verifier: JudgeKey
    ranker: JudgeKey
    summarizer: JudgeKey
    refiner: WriterKey = WriterKey("", ())
    regenerator: WriterKey = WriterKey("", ())

    def writes(self, origin: str) -> WriterKey:
        return self.refiner if origin == "refined" else self.regenerator


@dataclass(slots=True)
class LoadedQuestion:
    """A question's row and everything stored for it under the run's keys (``state`` is replaced when
    it is read again)."""

    question: QuestionView
    state: QuestionState
