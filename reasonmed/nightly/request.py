"""What one night is asked to do: the nightly flow's parameters, checked before anything starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reasonmed.db.claims_repo import Priority
from reasonmed.export.assemble import Layout
from reasonmed.export.service import Format
from reasonmed.ingest.loaders import QuestionSource, SourceFormat
from reasonmed.pipeline.build import check_priority


@dataclass(frozen=True)
class NightRequest:
    """The parameters of ``nightly_growth`` (its docstring says what each means)."""

    input_location: str | None = None
    source: SourceFormat = "pubmedqa"
    max_questions: int | None = None
    max_tokens: int | None = None
    priority: Priority = "round-robin"
    export_out: str | None = None
    config: str | None = None
    pattern: str | None = None
    split: str = "train"
    benchmark_test_ids: str | None = None
    sources: list[QuestionSource] | None = None
    shard_size: int | None = None
    questions_in_flight: int | None = None
    export: bool = True
    export_formats: list[Format] | None = None
    export_layout: Layout = "instruction"
    lock_ttl_s: float | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        check_priority(self.priority)
        for name, value in (("max_questions", self.max_questions), ("max_tokens", self.max_tokens)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or unset (got {value})")

    @property
    def builds(self) -> bool:
        """Whether the night runs a build at all (a budget of 0 questions only ingests and exports)."""
        return self.max_questions != 0

    def parameters(self) -> dict[str, Any]:
        """What the night's run row records, and its growth report shows."""
        return {
            "input_location": self.input_location,
            "source": self.source,
            "max_questions": self.max_questions,
            "max_tokens": self.max_tokens,
            "priority": self.priority,
            "export_out": self.export_out,
            "config": self.config,
            "sources": self.sources,
        }
