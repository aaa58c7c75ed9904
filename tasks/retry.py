"""When a Prefect task may retry: failures another attempt can fix, never a programming or data error."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from sqlalchemy.exc import InterfaceError, OperationalError

from reasonmed.evaluation.runner import EvalIncomplete
from reasonmed.evaluation.scoring import ScoreIncomplete
from reasonmed.pipeline.stages import StageIncomplete

TRANSIENT: tuple[type[BaseException], ...] = (
    StageIncomplete, EvalIncomplete, ScoreIncomplete,  # LLM requests that failed after the client's own retries
    OperationalError, InterfaceError,  # a lost, restarting or locked database
    TimeoutError, ConnectionError,
)


def retry_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry what another attempt can fix; anything else fails at once, with its traceback."""
    return isinstance(state.data, TRANSIENT)
