"""Where a stored output comes from: the project's run and Prefect's flow and task run.

One type for every writer (the stages, the evaluation, the scoring), made once per task run by the task
(``tasks/context.py``) and recorded with each row, so an audit can follow a row to the run that wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Provenance:
    run_id: int | None = None
    prefect_flow_run_id: str | None = None
    prefect_task_run_id: str | None = None
