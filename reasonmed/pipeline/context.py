"""What every stage is handed: the run's engine, pipeline file and backends, and the question's stored state
carried from one stage to the next (``Carried``), with the stage keys that say which stored judgments are
current."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import ParamSpec, Protocol, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from reasonmed.config import PipelineConfig
from reasonmed.db import state_repo
from reasonmed.db.write_behind import WriteBehind, commit_one
from reasonmed.llm.types import ChatBackend
from reasonmed.prompts import PromptTemplate
from reasonmed.question_state import JudgeKey, LoadedQuestion, QuestionState, StageKeys, WriterKey

P = ParamSpec("P")
T = TypeVar("T")


def stage_keys(cfg: PipelineConfig) -> StageKeys:
    a = cfg.agents
    model = lambda ep: cfg.endpoints[ep].model  # noqa: E731
    return StageKeys(
        verifier=JudgeKey(model(a.verifier.endpoint), cfg.prompt("verify").sha256),
        ranker=JudgeKey(model(a.ranker.endpoint), cfg.prompt("rank").sha256),
        summarizer=JudgeKey(model(a.summarizer.endpoint), cfg.prompt("summarize").sha256),
        refiner=WriterKey(model(a.refiner.endpoint), _family(cfg.prompt("refine"))),
        regenerator=WriterKey(model(a.regenerator.endpoint), _family(cfg.prompt("regenerate"))),
    )


def _family(t: PromptTemplate) -> tuple[str, ...]:
    return (t.sha256, t.reask("truncated").sha256, t.reask("unparseable").sha256)


class BackendSource(Protocol):
    """Anything that hands out a backend per endpoint name (the LLM registry)."""

    def get(self, name: str) -> ChatBackend: ...


@dataclass
class Carried:
    """A question's row and stored state, read once and carried from stage to stage.

    Each stage reads what is stored to do only what is missing. Reading it per stage cost seven statements
    and a pooled connection (with its ping) every time; instead it is read with the rest of the shard
    (``StageContext.preload``) or by the question's first stage, and each stage's write updates it in memory
    (``QuestionState.add_*``). It is dropped, and read again by the next stage, whenever a stage fails or a
    write finds rows this state does not hold.
    """

    loaded: LoadedQuestion | None = None


@dataclass
class StageContext:
    engine: Engine
    cfg: PipelineConfig
    backends: BackendSource
    run_id: int | None = None
    writer: WriteBehind | None = None  # stage writes of many questions per transaction (the build's)

    def model_of(self, endpoint: str) -> str:
        return self.cfg.endpoints[endpoint].model

    @property
    def verifier_model(self) -> str:
        return self.model_of(self.cfg.agents.verifier.endpoint)

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Database work runs in a worker thread so the event loop keeps every endpoint busy."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    @property
    def keys(self) -> StageKeys:
        """(model, prompt sha) per judged stage: which stored verdicts, scores and summaries are current."""
        return stage_keys(self.cfg)

    async def preload(self, question_ids: Sequence[int]) -> dict[int, Carried]:
        """The states of a shard's questions, read in one go, for their stages to carry."""
        loaded = await self.db(
            state_repo.load_questions, self.engine, question_ids, self.keys, simulated=self.cfg.simulated
        )
        return {qid: Carried(loaded.get(qid)) for qid in question_ids}

    @contextlib.asynccontextmanager
    async def question(self, question_id: int, carried: Carried | None) -> AsyncIterator[LoadedQuestion]:
        """The question and its state for one stage: the carried one, or read now. Handed on to the next
        stage only if this one ends without an exception and its writes left nothing unknown."""
        carried = carried if carried is not None else Carried()
        loaded = carried.loaded
        if loaded is None or loaded.state.reread:
            loaded = (
                await self.db(
                    state_repo.load_questions,
                    self.engine,
                    [question_id],
                    self.keys,
                    simulated=self.cfg.simulated,
                )
            )[question_id]
        carried.loaded = None
        yield loaded
        carried.loaded = loaded

    async def fresh(self, loaded: LoadedQuestion) -> QuestionState:
        """The state after this stage's writes: as carried, unless a write found rows it does not hold."""
        if not loaded.state.reread:
            return loaded.state
        fresh = await self.db(
            state_repo.load_questions,
            self.engine,
            [loaded.question.id],
            self.keys,
            simulated=self.cfg.simulated,
        )
        loaded.state = fresh[loaded.question.id].state
        return loaded.state

    async def write(self, question_id: int, write: Callable[[Session], T]) -> T:
        """A stage's write, committed before this returns: batched with other questions' writes when the
        run has a writer (``db/write_behind.py``), else in a transaction of its own."""
        if self.writer is not None:
            return await self.writer.write(question_id, write)
        return await self.db(commit_one, self.engine, write)
