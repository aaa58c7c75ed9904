"""Summarizer: condenses an accepted path into the concise answer of the ReasonMed/ResponseMed rows. A
``None`` summary with a successful call means every attempt was truncated or held nothing but scaffolding."""

from __future__ import annotations

from reasonmed.agents.base import PathJudge
from reasonmed.parsing import parse_summary

summarize_path: PathJudge[str] = PathJudge("summarizer", "summarize", parse_summary)
