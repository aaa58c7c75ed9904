"""Every SQL statement of Stage 5: the contamination guard, benchmark evaluation and dataset scoring.

Writes are keyed by natural unique keys (question + test item; model + prompt version + question;
version + variant + seed + judge + prompt version + path) with ON CONFLICT, so a rerun or a retried
task never stores a second copy, and a rerun of an evaluation asks the model only for what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Engine, and_, func, select, text

from reasonmed.db.engine import transaction
from reasonmed.db.models import (
    ContaminationCheck,
    ContaminationMatch,
    DatasetQualityScore,
    DatasetSample,
    DatasetVersion,
    EvalPrediction,
    Question,
    ReasoningPath,
    Summary,
)
from reasonmed.db.upsert import insert_ignore, upsert

IN_CHUNK = 1000  # ids per IN (...) list: far below SQLite's bound-parameter limit


def now() -> datetime:
    return datetime.now(UTC)


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for i in range(0, len(ids), IN_CHUNK):
        yield list(ids[i : i + IN_CHUNK])


# --------------------------------------------------------------------------- contamination


class QuestionText(NamedTuple):
    """What the contamination guard compares: a question's identity, stem and options."""

    id: int
    source: str
    source_id: str
    question: str
    options: list[tuple[str, str]]


def _question_text(row: Any) -> QuestionText:
    return QuestionText(
        row.id, row.source, row.source_id, row.question, [(str(a), str(b)) for a, b in row.options]
    )


def load_benchmark_test_items(engine: Engine) -> list[QuestionText]:
    """Every benchmark test item (a few thousand): the guard indexes all of them in memory."""
    stmt = (
        select(Question.id, Question.source, Question.source_id, Question.question, Question.options)
        .where(Question.is_benchmark_test.is_(True))
        .order_by(Question.id)
    )
    with engine.connect() as c:
        return [_question_text(r) for r in c.execute(stmt)]


def iter_training_items(
    engine: Engine, *, only_accepted: bool = False, batch: int = 5000
) -> Iterator[QuestionText]:
    """Non-test questions in id order, streamed in keyset pages so 200k rows never sit in memory."""
    last = 0
    while True:
        stmt = (
            select(Question.id, Question.source, Question.source_id, Question.question, Question.options)
            .where(Question.is_benchmark_test.is_(False), Question.id > last)
            .order_by(Question.id)
            .limit(batch)
        )
        if only_accepted:
            stmt = stmt.where(
                text("EXISTS (SELECT 1 FROM accepted_paths a WHERE a.question_id = questions.id)")
            )
        with engine.connect() as c:
            rows = [_question_text(r) for r in c.execute(stmt)]
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1].id


_MATCH_UPDATE = ["kind", "jaccard", "threshold", "ngram", "description", "detected_at"]


def save_contamination_matches(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> None:
    """Upsert by (question, test item): the row always says how the latest scan saw the pair."""
    if not rows:
        return
    with transaction(engine) as s:
        upsert(s, ContaminationMatch.__table__, rows, ["question_id", "test_question_id"], _MATCH_UPDATE)


class StoredVerdict(NamedTuple):
    """The guard's verdict on one question: the digest of the text it judged (``question_sha256``) and
    why the question must not be exported (None: clean)."""

    question_sha256: str
    description: str | None


def contamination_verdicts(engine: Engine, fingerprint: str) -> dict[int, StoredVerdict]:
    """question_id -> its verdict, for each question checked under ``fingerprint``."""
    with engine.connect() as c:
        rows = c.execute(
            select(
                ContaminationCheck.question_id,
                ContaminationCheck.question_sha256,
                ContaminationCheck.description,
            ).where(ContaminationCheck.fingerprint == fingerprint)
        )
        return {qid: StoredVerdict(sha, description) for qid, sha, description in rows}


def save_contamination_verdicts(
    engine: Engine, fingerprint: str, verdicts: Mapping[int, StoredVerdict], checked_at: datetime
) -> None:
    """Upsert by question: a verdict under an older fingerprint or text is replaced, never kept beside."""
    rows = [
        {
            "question_id": q,
            "fingerprint": fingerprint,
            "question_sha256": v.question_sha256,
            "description": v.description,
            "checked_at": checked_at,
        }
        for q, v in verdicts.items()
    ]
    if rows:
        with transaction(engine) as s:
            upsert(
                s,
                ContaminationCheck.__table__,
                rows,
                ["question_id"],
                ["fingerprint", "question_sha256", "description", "checked_at"],
            )


def audit_contamination(engine: Engine) -> list[dict[str, Any]]:
    """The ``audit_contamination`` view: every flagged question, its test twin and whether it was used."""
    with engine.connect() as c:
        rows = c.execute(
            text("SELECT * FROM audit_contamination ORDER BY question_id, test_question_id")
        ).mappings()
        out = [dict(r) for r in rows]
    for r in out:  # SQLite returns EXISTS as 0/1
        r["has_accepted_paths"], r["in_dataset"] = bool(r["has_accepted_paths"]), bool(r["in_dataset"])
    return out


# --------------------------------------------------------------------------- evaluation


class EvalQuestion(NamedTuple):
    id: int
    content_hash: str
    source: str
    question: str
    context: str | None
    options: list[tuple[str, str]]
    answer: str
    subset: str | None


def load_eval_questions(
    engine: Engine, *, source: str, subsets: Sequence[str] | None = None, limit: int | None = None
) -> list[EvalQuestion]:
    """Benchmark test items of one source in id order (so ``limit`` always picks the same items).

    ``subsets`` keeps only questions whose ``metadata.subset`` is one of them (MMLU's medical subsets).
    """
    subset_col = Question.meta["subset"].as_string()
    stmt = (
        select(
            Question.id,
            Question.content_hash,
            Question.source,
            Question.question,
            Question.context,
            Question.options,
            Question.answer,
            subset_col.label("subset"),
        )
        .where(Question.is_benchmark_test.is_(True), Question.source == source)
        .order_by(Question.id)
    )
    if subsets is not None:
        stmt = stmt.where(subset_col.in_(list(subsets)))
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as c:
        return [
            EvalQuestion(
                r.id,
                r.content_hash,
                r.source,
                r.question,
                r.context,
                [(str(a), str(b)) for a, b in r.options],
                r.answer,
                r.subset,
            )
            for r in c.execute(stmt)
        ]


def stored_prediction_ids(
    engine: Engine, *, model: str, prompt_sha256: str, question_ids: Sequence[int]
) -> set[int]:
    """Questions this model already answered with this prompt version: a rerun skips them."""
    found: set[int] = set()
    with engine.connect() as c:
        for chunk in _chunks(list(question_ids)):
            found.update(
                c.execute(
                    select(EvalPrediction.question_id).where(
                        EvalPrediction.model == model,
                        EvalPrediction.prompt_sha256 == prompt_sha256,
                        EvalPrediction.question_id.in_(chunk),
                    )
                ).scalars()
            )
    return found


def save_predictions(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert predictions; one already stored (a concurrent or repeated run) is kept, not replaced."""
    if not rows:
        return 0
    with transaction(engine) as s:
        return insert_ignore(s, EvalPrediction.__table__, rows, ["model", "prompt_sha256", "question_id"])


class PredictionOutcome(NamedTuple):
    question_id: int
    subset: str | None
    correct: bool
    answered: bool


def prediction_outcomes(
    engine: Engine, *, model: str, prompt_sha256: str, question_ids: Sequence[int]
) -> list[PredictionOutcome]:
    """The stored verdicts for exactly these questions: what accuracy is computed from."""
    out: list[PredictionOutcome] = []
    with engine.connect() as c:
        for chunk in _chunks(list(question_ids)):
            out.extend(
                PredictionOutcome(r.question_id, r.subset, bool(r.correct), r.extracted_answer is not None)
                for r in c.execute(
                    select(
                        EvalPrediction.question_id,
                        EvalPrediction.subset,
                        EvalPrediction.correct,
                        EvalPrediction.extracted_answer,
                    ).where(
                        EvalPrediction.model == model,
                        EvalPrediction.prompt_sha256 == prompt_sha256,
                        EvalPrediction.question_id.in_(chunk),
                    )
                )
            )
    return out


def load_predictions(engine: Engine, *, model: str, prompt_sha256: str | None = None) -> list[dict[str, Any]]:
    """Stored predictions of one model (for audits and tests), in question order."""
    stmt = select(EvalPrediction).where(EvalPrediction.model == model).order_by(EvalPrediction.question_id)
    if prompt_sha256 is not None:
        stmt = stmt.where(EvalPrediction.prompt_sha256 == prompt_sha256)
    with engine.connect() as c:
        return [dict(r) for r in c.execute(stmt).mappings()]


# --------------------------------------------------------------------------- dataset quality scores


class VersionRef(NamedTuple):
    id: int
    version: int
    n_samples: int


def find_dataset_version(engine: Engine, version: int) -> VersionRef | None:
    with engine.connect() as c:
        row = c.execute(
            select(DatasetVersion.id, DatasetVersion.version, DatasetVersion.n_samples).where(
                DatasetVersion.version == version
            )
        ).one_or_none()
    return None if row is None else VersionRef(row.id, row.version, row.n_samples)


def dataset_sample_keys(engine: Engine, dataset_version_id: int) -> list[tuple[int, int]]:
    """(dataset_sample id, path id) of every row of a version: the population a sample is drawn from."""
    with engine.connect() as c:
        return [
            (r.id, r.path_id)
            for r in c.execute(
                select(DatasetSample.id, DatasetSample.path_id)
                .where(DatasetSample.dataset_version_id == dataset_version_id)
                .order_by(DatasetSample.id)
            )
        ]


class SampleRow(NamedTuple):
    """One dataset row as the judge sees it: the question, the chain of thought and its summary."""

    dataset_sample_id: int
    question_id: int
    path_id: int
    question: str
    context: str | None
    options: list[tuple[str, str]]
    answer: str
    cot: str
    summary: str | None


def load_sample_rows(engine: Engine, dataset_sample_ids: Sequence[int]) -> list[SampleRow]:
    """The text of the given dataset rows (chain of thought, and its summary when the row has one)."""
    out: list[SampleRow] = []
    stmt_base = (
        select(
            DatasetSample.id,
            DatasetSample.question_id,
            DatasetSample.path_id,
            Question.question,
            Question.context,
            Question.options,
            Question.answer,
            ReasoningPath.clean_text,
            Summary.text.label("summary"),
        )
        .join(Question, Question.id == DatasetSample.question_id)
        .join(ReasoningPath, ReasoningPath.id == DatasetSample.path_id)
        .outerjoin(Summary, Summary.id == DatasetSample.summary_id)
    )
    with engine.connect() as c:
        for chunk in _chunks(list(dataset_sample_ids)):
            for r in c.execute(stmt_base.where(DatasetSample.id.in_(chunk))):
                out.append(
                    SampleRow(
                        r.id,
                        r.question_id,
                        r.path_id,
                        r.question,
                        r.context,
                        [(str(a), str(b)) for a, b in r.options],
                        r.answer,
                        r.clean_text,
                        r.summary,
                    )
                )
    order = {sid: i for i, sid in enumerate(dataset_sample_ids)}
    return sorted(out, key=lambda r: order[r.dataset_sample_id])


def stored_score_paths(
    engine: Engine,
    *,
    dataset_version_id: int,
    variant: str,
    sample_seed: int,
    judge_model: str,
    prompt_sha256: str,
) -> set[int]:
    """Paths of this scoring (version, variant, seed, judge, prompt) already rated: a rerun skips them."""
    with engine.connect() as c:
        return set(
            c.execute(
                select(DatasetQualityScore.path_id).where(
                    DatasetQualityScore.dataset_version_id == dataset_version_id,
                    DatasetQualityScore.variant == variant,
                    DatasetQualityScore.sample_seed == sample_seed,
                    DatasetQualityScore.judge_model == judge_model,
                    DatasetQualityScore.prompt_sha256 == prompt_sha256,
                )
            ).scalars()
        )


_SCORE_KEY = ["dataset_version_id", "variant", "sample_seed", "judge_model", "prompt_sha256", "path_id"]


def save_scores(engine: Engine, rows: Sequence[Mapping[str, Any]]) -> int:
    if not rows:
        return 0
    with transaction(engine) as s:
        return insert_ignore(s, DatasetQualityScore.__table__, rows, _SCORE_KEY)


def load_scores(
    engine: Engine,
    *,
    dataset_version_id: int,
    variant: str,
    sample_seed: int,
    judge_model: str,
    prompt_sha256: str,
    path_ids: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Stored ratings of one scoring, optionally only for the paths of one sample, in path order."""
    cond = and_(
        DatasetQualityScore.dataset_version_id == dataset_version_id,
        DatasetQualityScore.variant == variant,
        DatasetQualityScore.sample_seed == sample_seed,
        DatasetQualityScore.judge_model == judge_model,
        DatasetQualityScore.prompt_sha256 == prompt_sha256,
    )
    stmt = select(DatasetQualityScore).where(cond).order_by(DatasetQualityScore.path_id)
    with engine.connect() as c:
        rows = [dict(r) for r in c.execute(stmt).mappings()]
    if path_ids is not None:
        keep = set(path_ids)
        rows = [r for r in rows if r["path_id"] in keep]
    return rows


def score_counts(engine: Engine, dataset_version: int) -> list[dict[str, Any]]:
    """How many rows of a version are rated, per (variant, seed, judge, prompt): what can be compared."""
    t = DatasetQualityScore
    stmt = (
        select(t.variant, t.sample_seed, t.judge_model, t.prompt_sha256, func.count().label("n"))
        .where(t.dataset_version == dataset_version)
        .group_by(t.variant, t.sample_seed, t.judge_model, t.prompt_sha256)
        .order_by(t.variant, t.sample_seed)
    )
    with engine.connect() as c:
        return [dict(r) for r in c.execute(stmt).mappings()]


__all__ = [
    "EvalQuestion",
    "PredictionOutcome",
    "QuestionText",
    "SampleRow",
    "VersionRef",
    "audit_contamination",
    "dataset_sample_keys",
    "find_dataset_version",
    "iter_training_items",
    "load_benchmark_test_items",
    "load_eval_questions",
    "load_predictions",
    "load_sample_rows",
    "load_scores",
    "prediction_outcomes",
    "save_contamination_matches",
    "save_predictions",
    "save_scores",
    "score_counts",
    "stored_prediction_ids",
    "stored_score_paths",
]
