"""One flow run's context: settings, pipeline config, database engine, run row and LLM clients.

Every flow opens one (``async with RunContext(config) as run:``, or ``with`` in the synchronous flows)
and passes it, or what it holds, explicitly to what needs it. Entering checks the database schema;
``start`` records the run's row; leaving records the outcome whatever happened: an exception marks
the run failed (unless the flow already said how it ended) and is re-raised, the LLM clients are
closed and their usage joins the run's stats, and the row is finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from functools import cached_property
from types import TracebackType
from typing import Any

from reasonmed.config import PipelineConfig, Settings, get_settings, load_pipeline_config
from reasonmed.db import runs_repo
from reasonmed.db.engine import get_engine
from reasonmed.db.migrate import require_current
from reasonmed.llm.registry import LLMRegistry
from reasonmed.llm.shared_caps import CapLeases
from reasonmed.pipeline import workers
from reasonmed.prompts import PromptTemplate
from reasonmed.tasks.context import flow_run_id
from reasonmed.tasks.secrets import load_prefect_secret


class RunContext:
    """What a flow run holds from start to finish (one per flow run, never shared between runs)."""

    def __init__(self, config: str | None = None, *, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.config_path = config or self.settings.pipeline_config
        self.engine = get_engine(self.settings.database_url)
        self.flow_run_id = flow_run_id()
        self.run_id: int | None = None
        self.status = "completed"
        self.error: str | None = None
        self.stats: dict[str, Any] = {}
        self._registry: LLMRegistry | None = None

    @cached_property
    def cfg(self) -> PipelineConfig:
        """The pipeline config (read when first asked for: the export and report flows never need it)."""
        return load_pipeline_config(self.config_path)

    @property
    def registry(self) -> LLMRegistry:
        """The run's LLM clients, made on first use and closed when the run ends."""
        if self._registry is None:
            leases = (
                CapLeases(self.engine, holder=workers.cap_holder(), is_dead=workers.provably_dead)
                if self.settings.share_caps
                else None
            )
            self._registry = LLMRegistry(
                self.cfg, secret_loader=load_prefect_secret, engine=self.engine, cap_leases=leases
            )
        return self._registry

    async def start(
        self, kind: str, parameters: dict[str, Any], templates: Iterable[PromptTemplate] = ()
    ) -> int:
        """Record the run's row (and the prompt templates it uses); from here its end is recorded too."""
        self.run_id = await asyncio.to_thread(
            runs_repo.create_run,
            self.engine,
            kind=kind,
            config_hash=self.cfg.config_hash,
            config_snapshot=self.cfg.snapshot(),
            parameters=parameters,
            prefect_flow_run_id=self.flow_run_id,
        )
        templates = list(templates)
        if templates:
            await asyncio.to_thread(runs_repo.ensure_prompt_templates, self.engine, templates)
        return self.run_id

    def adopt(self, run_id: int) -> None:
        """A run row made elsewhere (the nightly lock makes its own); its end is recorded here."""
        self.run_id = run_id

    def end(self, status: str, error: str | None = None) -> None:
        """How the run ended, when that is not "completed" (an exception says "failed" by itself)."""
        self.status, self.error = status, error

    def _exited(self, exc: BaseException | None) -> None:
        if exc is not None and self.status == "completed":
            self.end("failed", f"{type(exc).__name__}: {exc}")

    def _finish(self) -> None:
        if self.run_id is not None:
            runs_repo.finish_run(
                self.engine, self.run_id, status=self.status, stats=self.stats, error=self.error
            )

    async def __aenter__(self) -> RunContext:
        await asyncio.to_thread(require_current, self.engine, self.settings.database_url)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exited(exc)
        if self._registry is not None:
            await self._registry.aclose()
            self.stats["usage"] = [r.as_dict() for r in self._registry.usage]
        await asyncio.to_thread(self._finish)

    def __enter__(self) -> RunContext:
        require_current(self.engine, self.settings.database_url)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exited(exc)  # the synchronous flows use no LLM client
        self._finish()
