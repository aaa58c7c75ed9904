"""A stored question as the prompts see it: what the database hands the stages and the agents render.

Its own module, below both, so that ``reasonmed/db`` builds it without importing the agents.
"""

from __future__ import annotations

from dataclasses import dataclass

from reasonmed.prompts import context_block, format_options


@dataclass(frozen=True)
class QuestionView:
    """A stored question in the shape the prompts need."""

    id: int
    content_hash: str
    source: str
    question: str
    context: str | None
    options: dict[str, str]
    answer: str

    def prompt_fields(self) -> dict[str, str]:
        return {
            "question": self.question,
            "context_block": context_block(self.context),
            "options": format_options(self.options),
            "answer": self._answer_line(),
        }

    def _answer_line(self) -> str:
        text = self.options.get(self.answer)
        return (
            self.answer
            if text is None or text.casefold() == self.answer.casefold()
            else f"{self.answer}. {text}"
        )
