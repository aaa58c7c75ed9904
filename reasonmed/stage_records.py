"""The rows a stage hands the database to store: one per LLM call, path, verdict, score and summary.

Plain records in their own module, below both, so the pipeline builds them and ``reasonmed/db`` writes
them (``db/stage_writes.py``) without either importing the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One logical LLM request (``llm_calls``): a retry of the same ``call_key`` completes the same row."""

    call_key: str
    question_id: int
    run_id: int | None
    role: str
    endpoint: str
    model: str
    temperature: float
    top_p: float
    max_tokens: int
    seed: int | None
    n: int
    prompt_sha256: str
    request_id: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    finish_reason: str | None
    status: str  # ok | error
    error_kind: str | None
    error: str | None
    attempts: int
    prefect_flow_run_id: str | None
    prefect_task_run_id: str | None
    created_at: datetime
    batch_id: int | None = None  # the batch that answered it (endpoints with mode batch)
    cached_prompt_tokens: int | None = None  # of prompt_tokens, what the server's prefix cache held


@dataclass(frozen=True, slots=True)
class PathRecord:
    """A reasoning path to store (``reasoning_paths``), linked to the call that wrote it by ``call_key``."""

    question_id: int
    path_key: str
    origin: str  # generated | refined | regenerated
    role: str
    parent_path_id: int | None
    call_key: str
    run_id: int | None
    endpoint: str
    model: str
    temperature: float
    sample_index: int
    generation_order: int
    prompt_sha256: str
    raw_text: str
    clean_text: str
    extracted_answer: str | None
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float
    created_at: datetime


@dataclass(frozen=True, slots=True)
class VerdictRecord:
    path_id: int
    question_id: int
    call_key: str
    run_id: int | None
    verifier_model: str
    prompt_sha256: str
    outcome: str
    reason: str | None
    raw_output: str | None
    parse_attempts: int
    created_at: datetime
    # Both readings of the option the path concludes with, and the guard they were judged under
    # (reasonmed/tiers.py): the rules', the verifier's, the mode, and the reading the mode compares.
    extracted_answer: str | None = None
    verifier_answer: str | None = None
    answer_guard: str = "extracted"
    guard_answer: str | None = None


@dataclass(frozen=True, slots=True)
class ScoreRecord:
    path_id: int
    question_id: int
    call_key: str
    run_id: int | None
    ranker_model: str
    prompt_sha256: str
    score: int | None  # None: the ranker's output did not parse
    justification: str | None
    raw_output: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SummaryRecord:
    path_id: int
    question_id: int
    call_key: str
    run_id: int | None
    summarizer_model: str
    prompt_sha256: str
    text: str
    created_at: datetime
