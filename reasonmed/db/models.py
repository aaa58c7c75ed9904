"""The schema: every question, call, path, verdict, score, summary and outcome, with provenance.

One set of typed models serves Postgres (production, JSONB) and SQLite (embedded default).
Natural unique keys on every table make writes idempotent: a retried task that inserts the same
logical row hits the constraint and is skipped (``ON CONFLICT DO NOTHING``), never duplicated.
The schema is created only by Alembic migrations (``migrations/``), never ``create_all``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from reasonmed.simulated import SIM_MODEL_LIKE

# BIGINT identity on Postgres; INTEGER PRIMARY KEY (rowid alias, autoincrementing) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    __table__: ClassVar[Table]  # every model here maps one Table (SQLAlchemy types it as any FromClause)
    type_annotation_map = {dict[str, Any]: Json, list[Any]: Json}


Timestamp = DateTime(timezone=True)


class IngestFile(Base):
    """One ingested file, identified by the sha256 of its bytes: the same file twice is a no-op."""

    __tablename__ = "ingest_files"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    path: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))
    split: Mapped[str] = mapped_column(String(32))
    # The options it was read with (JSON: source, mapping, bases): other options read it again.
    read_options: Mapped[str | None] = mapped_column(Text)
    n_read: Mapped[int] = mapped_column(Integer, default=0)
    n_inserted: Mapped[int] = mapped_column(Integer, default=0)
    n_duplicates: Mapped[int] = mapped_column(Integer, default=0)
    n_rejected: Mapped[int] = mapped_column(Integer, default=0)
    # Records whose (source, id) another question with other content already held: kept, and counted.
    n_id_conflicts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | done | failed
    error: Mapped[str | None] = mapped_column(Text)  # why the file ended 'failed'
    started_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Question(Base):
    __tablename__ = "questions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(32), index=True)
    source_id: Mapped[str] = mapped_column(String(200))
    split: Mapped[str] = mapped_column(String(32), default="train")
    is_benchmark_test: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    question: Mapped[str] = mapped_column(Text)
    context: Mapped[str | None] = mapped_column(Text)
    options: Mapped[list[Any]] = mapped_column(
        Json
    )  # [[label, text], ...]: a list, since JSONB reorders object keys
    answer: Mapped[str] = mapped_column(String(32))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", Json, default=dict)
    ingest_file_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_files.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # Claim lease: lets several workers share one pending set without processing a question twice.
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claim_expires_at: Mapped[datetime | None] = mapped_column(Timestamp)
    # 'real' | 'simulated' | NULL: who finished it (accepted or rejected). Kept by triggers on
    # question_outcomes (migration 0011), never written by the code; the claim reads ix_questions_pending.
    finished_by: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        Index("ix_questions_source_source_id", "source", "source_id"),
        Index(
            "ix_questions_pending",
            "id",
            postgresql_where=text(
                "is_benchmark_test IS false AND (finished_by IS NULL OR finished_by = 'simulated')"
            ),
            sqlite_where=text(
                "is_benchmark_test IS 0 AND (finished_by IS NULL OR finished_by = 'simulated')"
            ),
        ),
    )


class IngestError(Base):
    __tablename__ = "ingest_errors"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ingest_file_id: Mapped[int] = mapped_column(ForeignKey("ingest_files.id", ondelete="CASCADE"))
    file_path: Mapped[str] = mapped_column(Text)
    record_ref: Mapped[str] = mapped_column(String(200))  # "line 17" / "record 12345678"
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)  # first few hundred characters of the bad record
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    __table_args__ = (UniqueConstraint("ingest_file_id", "record_ref"),)


class PipelineRun(Base):
    __tablename__ = "pipeline_runs"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # build | ingest | export | nightly | eval | score
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | completed | failed
    config_hash: Mapped[str | None] = mapped_column(String(64))
    config_snapshot: Mapped[dict[str, Any] | None] = mapped_column(Json)
    parameters: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    stats: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    prefect_flow_run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    host: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    heartbeat_at: Mapped[datetime | None] = mapped_column(Timestamp)


class EndpointPrice(Base):
    """The prices a run's pipeline file gave an endpoint ($ per million tokens): the audit's cost column."""

    __tablename__ = "endpoint_prices"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="CASCADE"))
    endpoint: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    price_input_per_mtok: Mapped[float | None] = mapped_column(Float)
    price_output_per_mtok: Mapped[float | None] = mapped_column(Float)
    # The share of those prices a batch request costs (mode batch; migration 0014); NULL: interactive only.
    batch_price_factor: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (UniqueConstraint("run_id", "endpoint"),)


class PromptTemplateRow(Base):
    __tablename__ = "prompt_templates"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # 'template' (as configured) or the re-ask variant actually sent ('reask-truncated', 'reask-unparseable').
    variant: Mapped[str] = mapped_column(String(32), default="template", server_default="template")


class LLMCall(Base):
    """Every request the pipeline made to a model, with its provenance; one row per logical request.

    ``call_key`` names the logical request (e.g. ``q42/gen/qwen/0.7/0``); retries of the same request
    update ``attempts`` on the same row instead of adding rows.
    """

    __tablename__ = "llm_calls"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_key: Mapped[str] = mapped_column(String(300), unique=True)
    question_id: Mapped[int | None] = mapped_column(
        ForeignKey("questions.id", ondelete="CASCADE"), index=True
    )
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("pipeline_runs.id", ondelete="SET NULL"), index=True
    )
    role: Mapped[str] = mapped_column(
        String(32)
    )  # generator | verifier | ranker | refiner | regenerator | summarizer | ...
    endpoint: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    temperature: Mapped[float] = mapped_column(Float)
    top_p: Mapped[float | None] = mapped_column(Float)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    n: Mapped[int] = mapped_column(Integer, default=1)
    prompt_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    request_id: Mapped[str | None] = mapped_column(String(200))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="ok")  # ok | error
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    prefect_flow_run_id: Mapped[str | None] = mapped_column(String(64))
    prefect_task_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, index=True)
    # Of prompt_tokens, what the server's prefix cache held, where it reports it (migration 0016).
    cached_prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    # The batch that answered the call's last request (endpoints with mode batch; migration 0014).
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("llm_batches.id", ondelete="SET NULL"), index=True
    )

    __table_args__ = (Index("ix_llm_calls_role_model", "role", "model"),)


class ReasoningPath(Base):
    """A chain of thought: generated, refined from a parent, or regenerated for a difficult question."""

    __tablename__ = "reasoning_paths"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"))
    path_key: Mapped[str] = mapped_column(
        String(200)
    )  # gen/<endpoint>/<temp>/<i> | ref/<parent path_key> | regen/<i>
    origin: Mapped[str] = mapped_column(String(16))  # generated | refined | regenerated
    role: Mapped[str] = mapped_column(String(32))
    parent_path_id: Mapped[int | None] = mapped_column(ForeignKey("reasoning_paths.id", ondelete="SET NULL"))
    llm_call_id: Mapped[int | None] = mapped_column(ForeignKey("llm_calls.id", ondelete="SET NULL"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="SET NULL"))
    endpoint: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200), index=True)
    temperature: Mapped[float] = mapped_column(Float)
    sample_index: Mapped[int] = mapped_column(Integer, default=0)
    generation_order: Mapped[int] = mapped_column(Integer, default=0)  # model order, then temperature order
    prompt_sha256: Mapped[str] = mapped_column(String(64))
    raw_text: Mapped[str] = mapped_column(Text)
    clean_text: Mapped[str] = mapped_column(Text)
    extracted_answer: Mapped[str | None] = mapped_column(String(32))
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    __table_args__ = (
        UniqueConstraint("question_id", "path_key"),
        Index("ix_reasoning_paths_question_origin", "question_id", "origin"),
        # audit_refinement_success (migration 0011): only the refined and regenerated paths.
        Index(
            "ix_reasoning_paths_rewritten",
            "role",
            "model",
            "id",
            postgresql_where=text("origin IN ('refined', 'regenerated')"),
            sqlite_where=text("origin IN ('refined', 'regenerated')"),
        ),
        CheckConstraint("origin IN ('generated', 'refined', 'regenerated')", name="origin"),
    )


class Verdict(Base):
    __tablename__ = "verdicts"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    path_id: Mapped[int] = mapped_column(ForeignKey("reasoning_paths.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    llm_call_id: Mapped[int | None] = mapped_column(ForeignKey("llm_calls.id", ondelete="SET NULL"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="SET NULL"))
    verifier_model: Mapped[str] = mapped_column(String(200))
    # The configured template's sha: with the model, the stage key (a changed prompt writes a new row).
    prompt_sha256: Mapped[str] = mapped_column(String(64))
    # Set when a row under another key replaced this one as the current result; kept for audit.
    superseded_at: Mapped[datetime | None] = mapped_column(Timestamp)
    outcome: Mapped[str] = mapped_column(String(16))  # correct | error | unparseable
    reason: Mapped[str | None] = mapped_column(Text)  # the verifier's error analysis
    raw_output: Mapped[str | None] = mapped_column(Text)
    parse_attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # Who read which option the path concludes with (migration 0013): the rules (parsing.extract_answer),
    # the verifier (its JSON's path_answer), the answer_guard mode in force, and the reading it compared.
    extracted_answer: Mapped[str | None] = mapped_column(String(32))
    verifier_answer: Mapped[str | None] = mapped_column(String(32))
    answer_guard: Mapped[str] = mapped_column(String(16), default="extracted", server_default="extracted")
    guard_answer: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        UniqueConstraint("path_id", "verifier_model", "prompt_sha256"),
        Index("ix_verdicts_outcome", "outcome"),
        Index("ix_verdicts_verifier_model_outcome", "verifier_model", "outcome"),
        # A path's current verdict from the index alone (migration 0011).
        Index(
            "ix_verdicts_current_path",
            "path_id",
            postgresql_include=["outcome", "verifier_model"],
            postgresql_where=text("superseded_at IS NULL"),
            sqlite_where=text("superseded_at IS NULL"),
        ),
        CheckConstraint("outcome IN ('correct', 'error', 'unparseable')", name="outcome"),
    )


class PathScore(Base):
    __tablename__ = "path_scores"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    path_id: Mapped[int] = mapped_column(ForeignKey("reasoning_paths.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    llm_call_id: Mapped[int | None] = mapped_column(ForeignKey("llm_calls.id", ondelete="SET NULL"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="SET NULL"))
    ranker_model: Mapped[str] = mapped_column(String(200))
    # The configured template's sha: with the model, the stage key (a changed prompt writes a new row).
    prompt_sha256: Mapped[str] = mapped_column(String(64))
    # Set when a row under another key replaced this one as the current result; kept for audit.
    superseded_at: Mapped[datetime | None] = mapped_column(Timestamp)
    score: Mapped[int | None] = mapped_column(Integer)  # 0-5; NULL when the ranker's output did not parse
    justification: Mapped[str | None] = mapped_column(Text)
    raw_output: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    __table_args__ = (UniqueConstraint("path_id", "ranker_model", "prompt_sha256"),)


class AcceptedPath(Base):
    """The paths a question's tier pipeline kept; each becomes one dataset row once summarised."""

    __tablename__ = "accepted_paths"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    path_id: Mapped[int] = mapped_column(ForeignKey("reasoning_paths.id", ondelete="CASCADE"), unique=True)
    verdict_id: Mapped[int] = mapped_column(ForeignKey("verdicts.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    # Set when the path's summary stayed unusable after every re-ask: the path is no longer accepted.
    dropped_reason: Mapped[str | None] = mapped_column(Text)
    # Set when a re-derived resolution (new verdicts, scores or prompts) no longer keeps the path.
    superseded_at: Mapped[datetime | None] = mapped_column(Timestamp)


class Summary(Base):
    __tablename__ = "summaries"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    path_id: Mapped[int] = mapped_column(ForeignKey("reasoning_paths.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    llm_call_id: Mapped[int | None] = mapped_column(ForeignKey("llm_calls.id", ondelete="SET NULL"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="SET NULL"))
    summarizer_model: Mapped[str] = mapped_column(String(200))
    # The configured template's sha: with the model, the stage key (a changed prompt writes a new row).
    prompt_sha256: Mapped[str] = mapped_column(String(64))
    # Set when a row under another key replaced this one as the current result; kept for audit.
    superseded_at: Mapped[datetime | None] = mapped_column(Timestamp)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    __table_args__ = (UniqueConstraint("path_id", "summarizer_model", "prompt_sha256"),)


class QuestionOutcome(Base):
    """Where a question stands: its tier, and whether it was accepted or rejected (and why)."""

    __tablename__ = "question_outcomes"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), unique=True)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("pipeline_runs.id", ondelete="SET NULL"), index=True
    )
    tier: Mapped[str | None] = mapped_column(String(16))  # easy | medium | difficult
    n_paths: Mapped[int] = mapped_column(Integer, default=0)
    n_correct: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), index=True)  # resolved | accepted | rejected
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    n_accepted: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow, onupdate=utcnow)
    # Finished by simulated models (reasonmed/simulated.py): a run with real models redoes the question.
    simulated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        CheckConstraint("status IN ('resolved', 'accepted', 'rejected')", name="status"),
        CheckConstraint("tier IS NULL OR tier IN ('easy', 'medium', 'difficult')", name="tier"),
    )


class QuestionFailure(Base):
    """Failed attempts of one question at one stage, across runs; ``set_aside_at`` once it is given up on.

    A set-aside question is claimed by no run until ``reasonmed retry`` clears ``set_aside_at``.
    ``last_run_id`` keeps a run from claiming a question that already failed in it.
    """

    __tablename__ = "question_failures"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(16))  # generate | verify | resolve | summarize
    failures: Mapped[int] = mapped_column(Integer)
    permanent: Mapped[bool] = mapped_column(Boolean)
    last_error_kind: Mapped[str] = mapped_column(String(32))
    last_error: Mapped[str] = mapped_column(Text)
    last_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("pipeline_runs.id", ondelete="SET NULL"), index=True
    )
    first_failed_at: Mapped[datetime] = mapped_column(Timestamp)
    last_failed_at: Mapped[datetime] = mapped_column(Timestamp)
    set_aside_at: Mapped[datetime | None] = mapped_column(Timestamp, index=True)
    retried_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        UniqueConstraint("question_id", "stage"),
        CheckConstraint("stage IN ('generate', 'verify', 'resolve', 'summarize')", name="stage"),
    )


class LLMBatch(Base):
    """One batch submitted to an endpoint's Batch API (llm/batch.py), from its local submission to the
    collection of its results.

    The row is written before anything is uploaded, with a ``submission_key`` that goes with the batch as
    metadata: a run killed between the upload and the write of ``remote_id`` finds its batch again by that key
    (or, not finding it, gives its requests back to be asked again).
    """

    __tablename__ = "llm_batches"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    submission_key: Mapped[str] = mapped_column(String(64), unique=True)
    remote_id: Mapped[str | None] = mapped_column(String(200), index=True)
    input_file_id: Mapped[str | None] = mapped_column(String(200))
    output_file_id: Mapped[str | None] = mapped_column(String(200))
    error_file_id: Mapped[str | None] = mapped_column(String(200))
    # preparing (not yet created remotely) | the API's statuses (validating ... cancelled) | abandoned
    status: Mapped[str] = mapped_column(String(32), index=True)
    requests: Mapped[int] = mapped_column(Integer)
    input_bytes: Mapped[int] = mapped_column(BigInteger)
    completed: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_usd: Mapped[float | None] = mapped_column(Float)  # at the batch price, once collected
    worker: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("pipeline_runs.id", ondelete="SET NULL"), index=True
    )
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)  # the API reported a final status
    collected_at: Mapped[datetime | None] = mapped_column(Timestamp)  # its results are stored


class BatchRequest(Base):
    """One request sent in a batch, named by ``custom_id`` (a fingerprint of the request's body, so the same
    request asked again, by any run, finds it); ``attempt`` counts re-submissions after a failure.

    A completed request keeps the response body, which the stage that asks for it again reads as an
    interactive call's; a failed one is handed to its question once (``consumed_at``), as a failed request
    would be, and the next ask submits it again under the next attempt.
    """

    __tablename__ = "batch_requests"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    custom_id: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int] = mapped_column(Integer)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("llm_batches.id", ondelete="CASCADE"), index=True)
    endpoint: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))  # submitted | completed | failed
    response: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    consumed_at: Mapped[datetime | None] = mapped_column(Timestamp)

    __table_args__ = (
        UniqueConstraint("custom_id", "attempt"),
        CheckConstraint("status IN ('submitted', 'completed', 'failed')", name="status"),
    )


class QuestionWait(Base):
    """A question whose stage waits on batch results: no run claims it again in the run that saw it wait
    (until that run, having waited for its batches, lets it go on); a later run takes it as any other."""

    __tablename__ = "question_waits"
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(16))
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("pipeline_runs.id", ondelete="SET NULL"), index=True
    )
    since: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="SET NULL"))
    location: Mapped[str] = mapped_column(Text)
    config_hash: Mapped[str | None] = mapped_column(String(64))
    manifest: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    n_samples: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class DatasetSample(Base):
    __tablename__ = "dataset_samples"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    path_id: Mapped[int] = mapped_column(ForeignKey("reasoning_paths.id", ondelete="CASCADE"))
    verdict_id: Mapped[int | None] = mapped_column(ForeignKey("verdicts.id", ondelete="SET NULL"))
    summary_id: Mapped[int | None] = mapped_column(ForeignKey("summaries.id", ondelete="SET NULL"))

    __table_args__ = (UniqueConstraint("dataset_version_id", "path_id"),)


# --------------------------------------------------------------------------- evaluation and contamination


class ContaminationMatch(Base):
    """A training question that copies, or nearly copies, a benchmark test item: it must never be exported.

    One row per (question, test item) pair found by the contamination guard; a new scan updates the
    row, so the table always says how the latest scan saw the pair.
    """

    __tablename__ = "contamination_matches"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"))
    test_question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # exact | near
    jaccard: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    ngram: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    detected_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    __table_args__ = (
        UniqueConstraint("question_id", "test_question_id"),
        CheckConstraint("kind IN ('exact', 'near')", name="kind"),
    )


class ContaminationCheck(Base):
    """The contamination guard's verdict on one training question against one set of test items.

    ``fingerprint`` names the test items and the guard's settings and algorithm (reasonmed.contamination.
    fingerprint) and ``question_sha256`` the question's text as the guard read it: while both are
    unchanged the verdict stands, so a nightly export re-checks only the questions accepted (or edited)
    since. ``description`` is why it must not be exported, or NULL when it copies no test item.
    """

    __tablename__ = "contamination_checks"
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    question_sha256: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class EvalPrediction(Base):
    """One served model's answer to one benchmark test item: the auditable unit of every accuracy figure.

    Unique per (model, prompt version, question), so a rerun asks only for what is missing and two
    models (or two prompt versions) are compared on exactly the stored rows.
    """

    __tablename__ = "eval_predictions"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("pipeline_runs.id", ondelete="SET NULL"), index=True
    )
    endpoint: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(200))
    benchmark: Mapped[str] = mapped_column(String(32))  # medqa | medmcqa | pubmedqa | mmlu-med
    subset: Mapped[str | None] = mapped_column(String(64))  # MMLU subset
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    prompt_sha256: Mapped[str] = mapped_column(String(64))
    temperature: Mapped[float] = mapped_column(Float)
    top_p: Mapped[float | None] = mapped_column(Float)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    raw_output: Mapped[str] = mapped_column(Text)
    extracted_answer: Mapped[str | None] = mapped_column(String(32))
    gold_answer: Mapped[str] = mapped_column(String(32))
    correct: Mapped[bool] = mapped_column(Boolean)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(200))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    prefect_flow_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    __table_args__ = (
        UniqueConstraint("model", "prompt_sha256", "question_id"),
        Index("ix_eval_predictions_model_benchmark", "model", "benchmark"),
    )


class DatasetQualityScore(Base):
    """A judge model's 1-10 ratings of one sampled dataset row, with its justification and raw output.

    Unique per (dataset version, variant, sample seed, judge model, prompt version, path): rerunning the
    same scoring skips rows already rated, and different seeds or judges never overwrite each other.
    Scores are NULL when the judge's output never parsed (status 'unparseable').
    """

    __tablename__ = "dataset_quality_scores"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("pipeline_runs.id", ondelete="SET NULL"), index=True
    )
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id", ondelete="CASCADE"))
    dataset_version: Mapped[int] = mapped_column(Integer)
    variant: Mapped[str] = mapped_column(String(16))  # reasonmed | cotmed | responsemed
    sample_seed: Mapped[int] = mapped_column(BigInteger)
    dataset_sample_id: Mapped[int] = mapped_column(ForeignKey("dataset_samples.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    path_id: Mapped[int] = mapped_column(ForeignKey("reasoning_paths.id", ondelete="CASCADE"))
    judge_endpoint: Mapped[str] = mapped_column(String(100))
    judge_model: Mapped[str] = mapped_column(String(200))
    prompt_sha256: Mapped[str] = mapped_column(String(64))
    judge_mode: Mapped[str] = mapped_column(
        String(16), default="rubric", server_default="rubric"
    )  # rubric | paper
    clinical_accuracy: Mapped[float | None] = mapped_column(Float)
    logical_reasoning: Mapped[float | None] = mapped_column(Float)
    factual_correctness: Mapped[float | None] = mapped_column(Float)
    completeness: Mapped[float | None] = mapped_column(Float)
    overall: Mapped[float | None] = mapped_column(Float)
    justification: Mapped[str | None] = mapped_column(Text)
    raw_output: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # ok | unparseable
    seed: Mapped[int | None] = mapped_column(BigInteger)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)

    __table_args__ = (
        UniqueConstraint(
            "dataset_version_id",
            "variant",
            "sample_seed",
            "judge_model",
            "prompt_sha256",
            "path_id",
            name="uq_dataset_quality_scores_sample_key",
        ),
        Index("ix_dataset_quality_scores_version_variant", "dataset_version", "variant"),
        CheckConstraint("variant IN ('reasonmed', 'cotmed', 'responsemed')", name="variant"),
        CheckConstraint("status IN ('ok', 'unparseable')", name="status"),
    )


def simulated_path() -> Any:
    """The SQL form of reasonmed/simulated.py's rule: a path written by a simulated model (``sim/...``)."""
    return ReasoningPath.model.like(SIM_MODEL_LIKE)


class SlotLease(Base):
    """One orchestrator's share of a server's cap (migration 0015, ``db/slot_leases.py``): the slots it may
    have in flight there, granted so that all holders' slots add up to at most the cap."""

    __tablename__ = "slot_leases"
    server: Mapped[str] = mapped_column(
        String(400), primary_key=True
    )  # endpoint name and URL, no credentials
    holder: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid:token of the orchestrator
    cap: Mapped[int] = mapped_column(Integer)  # what the holder's pipeline file gives the server
    slots: Mapped[int] = mapped_column(Integer)
    in_use: Mapped[int] = mapped_column(Integer)
    renewed_at: Mapped[datetime] = mapped_column(Timestamp)


class AuditRollup(Base):
    """When a rolled-up audit view was last recomputed (migration 0017, ``db/audit_rollups.py``): on Postgres
    audit_token_usage and audit_verifier_accuracy count the rows committed before ``refreshed_at`` and no
    later ones. Empty on SQLite, whose views are live."""

    __tablename__ = "audit_rollups"
    view_name: Mapped[str] = mapped_column(String(64), primary_key=True)  # the audit view it serves
    refreshed_at: Mapped[datetime] = mapped_column(Timestamp)
    refresh_s: Mapped[float] = mapped_column(Float)  # how long that refresh took
    row_count: Mapped[int] = mapped_column(BigInteger)  # the view's rows after it
