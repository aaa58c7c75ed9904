"""What a task is handed, and the Prefect run ids it records as provenance.

A flow hands its tasks the run's context (engine, config, LLM clients with their per-endpoint caps)
as an argument: one object per run, shared by every task of the run, so they share its connection
pools and semaphores. Prefect walks every task argument before each task run (to find futures and
states among them: ``collect_task_run_inputs_sync`` and the input resolution of ``task_engine``),
visiting every field of dataclasses and pydantic models; a stage context holds the whole pipeline
config, and walking it cost 7 ms per task run (measured on the default config). ``Handle`` is a leaf
to that walk: not a dataclass, model or collection, so the walk stops at it. Prefect's own ``quote``
does the same at each call site but is not the type the task declares.
"""

from __future__ import annotations

from typing import Generic, TypeVar, final

from prefect.context import FlowRunContext, TaskRunContext

from reasonmed.provenance import Provenance

T = TypeVar("T")


@final
class Handle(Generic[T]):
    """A frozen reference to one run's context, passed to tasks and child flows as it is."""

    __slots__ = ("value",)
    value: T

    def __init__(self, value: T) -> None:
        object.__setattr__(self, "value", value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen")

    def __repr__(self) -> str:  # what a child flow run's parameters show in the UI
        return f"Handle({type(self.value).__name__})"


def flow_run_id() -> str | None:
    """The current Prefect flow run's id, if any (None outside a flow run)."""
    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else None


def provenance(run_id: int | None = None) -> Provenance:
    """The run, and Prefect's flow and task run ids, recorded with each stored output."""
    task_ctx = TaskRunContext.get()
    return Provenance(
        run_id=run_id,
        prefect_flow_run_id=flow_run_id(),
        prefect_task_run_id=str(task_ctx.task_run.id) if task_ctx else None,
    )
