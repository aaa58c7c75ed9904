"""Rewriter: writes a path anew from an earlier one and every error the verifier found in this question's
failed attempts. Two roles ask it, each with its own prompt: the error refiner (medium tier, and the
difficult tier's first step) rewrites a path so it explicitly avoids those errors (the traps), keeping its
sound steps; the regenerator (difficult tier), a stronger reasoning model, writes a deeper chain of thought
from the question, the answer, one attempt and the same errors."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

from reasonmed.agents.base import CallOutcome, QuestionView, Sampling, ask
from reasonmed.llm.types import ChatBackend
from reasonmed.parsing import extract_answer
from reasonmed.prompts import PromptTemplate, format_errors, get_template


@dataclass(frozen=True)
class Rewriter:
    role: Literal["refiner", "regenerator"]  # as the call log names it
    prompt: str  # the template it asks with when the pipeline file gives none

    async def __call__(
        self,
        backend: ChatBackend,
        q: QuestionView,
        path_text: str,
        error_reasons: list[str],
        *,
        sampling: Sampling,
        seed: int,
        reasks: int,
        template: PromptTemplate | None = None,
    ) -> CallOutcome:
        fields = q.prompt_fields() | {"path": path_text, "errors": format_errors(error_reasons)}
        return await ask(
            backend,
            template or get_template(self.prompt),
            fields,
            role=self.role,
            sampling=sampling,
            seed=seed,
            check=partial(extract_answer, options=q.options),
            reasks=reasks,
            affinity=q.content_hash,
        )


REFINER = Rewriter("refiner", "refine")
REGENERATOR = Rewriter("regenerator", "regenerate")
