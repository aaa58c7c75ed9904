"""When a Prefect task may retry: a lost database connection, never an LLM failure, a bug or bad data.

LLM request failures are retried by the HTTP client and unusable output by the agents' re-asks; a
stage that still failed costs its question one attempt of its budget (``reasonmed/pipeline/failures.py``
has the whole table). Retrying such a stage here as well would multiply the requests one question can
cause, so ``StageIncomplete`` is not retried by Prefect.
"""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import exponential_backoff
from sqlalchemy.exc import InterfaceError, OperationalError

from reasonmed.evaluation.runner import EvalIncomplete
from reasonmed.evaluation.scoring import ScoreIncomplete

TRANSIENT: tuple[type[BaseException], ...] = (
    EvalIncomplete,
    ScoreIncomplete,  # evaluation and scoring: items retried by their own flows' tasks
    OperationalError,
    InterfaceError,  # a lost, restarting or locked database
)


def retry_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry what another attempt can fix; anything else fails at once, with its traceback."""
    return isinstance(state.data, TRANSIENT)


def task_options(retries: int) -> dict[str, Any]:
    """The options every per-item task shares: transient-only retries with backoff and jitter, and no
    Prefect result persistence or caching (the database is the store; each task reads what is missing)."""
    return {
        "retries": retries,
        "retry_condition_fn": retry_transient,
        "retry_delay_seconds": exponential_backoff(backoff_factor=2),
        "retry_jitter_factor": 0.5,
        "persist_result": False,
        "cache_policy": NO_CACHE,
    }
