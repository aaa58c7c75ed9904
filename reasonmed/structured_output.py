"""Schema-constrained JSON output, asked for in each engine's own dialect.

The verifier, ranker and judge prompts already ask for one JSON object; a small or distracted model
still answers with prose, half an object or a markdown fence. Engines can constrain decoding to a JSON
schema, so the reply parses by construction, but each asks for it differently:

- ``json_schema``: OpenAI's ``response_format: {"type": "json_schema", "json_schema": {...}}``; vLLM's
  OpenAI-compatible server takes the same (its guided decoding), and the in-process vLLM backend maps it
  onto its own guided-decoding parameters.
- ``llamacpp``: llama.cpp (llama-cpp-python's server) takes ``{"type": "json_object", "schema": {...}}``
  and refuses the ``json_schema`` form with a 400.

The schemas name exactly the keys the project's parsers read first, so a constrained reply and a free
one go through the same parser (``reasonmed/parsing.py``, ``reasonmed/evaluation/judge_output.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal

from reasonmed.prompts import PROMPT_SPLIT, PromptTemplate

StructuredDialect = Literal["json_schema", "llamacpp"]
STRUCTURED_DIALECTS: tuple[str, ...] = ("json_schema", "llamacpp")

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["Correct", "Error"]},
        # The option the path itself concludes with ("none" if it commits to none): the answer guard's
        # second reader (reasonmed/tiers.py). A string, since the labels differ per question.
        "path_answer": {"type": "string"},
        "reason": {"type": "string"},
    },
    "required": ["verdict", "path_answer", "reason"],
    "additionalProperties": False,
}

SCORE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 0, "maximum": 5},
        "justification": {"type": "string"},
    },
    "required": ["score", "justification"],
    "additionalProperties": False,
}

_RATING = {"type": "integer", "minimum": 1, "maximum": 10}
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "clinical_accuracy": _RATING,
        "logical_reasoning": _RATING,
        "factual_correctness": _RATING,
        "completeness": _RATING,
        "overall": _RATING,
        "justification": {"type": "string"},
    },
    "required": [
        "clinical_accuracy",
        "logical_reasoning",
        "factual_correctness",
        "completeness",
        "overall",
        "justification",
    ],
    "additionalProperties": False,
}


def response_format(dialect: StructuredDialect, name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The request's ``response_format`` for ``schema`` in the engine's dialect."""
    if dialect == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": name, "schema": dict(schema), "strict": True}}
    if dialect == "llamacpp":
        return {"type": "json_object", "schema": dict(schema)}
    raise ValueError(
        f"unknown structured-output dialect {dialect!r} (known: {', '.join(STRUCTURED_DIALECTS)})"
    )


def schema_of(fmt: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The JSON schema inside a ``response_format`` of either dialect (None when there is none)."""
    if not fmt:
        return None
    if fmt.get("type") == "json_schema":
        inner = fmt.get("json_schema") or {}
        return dict(inner.get("schema") or {}) or None
    if fmt.get("type") == "json_object":
        return dict(fmt.get("schema") or {}) or None
    return None


def format_for(
    enabled: bool, dialect: StructuredDialect, name: str, schema: Mapping[str, Any]
) -> dict[str, Any] | None:
    """An agent's ``response_format``: None unless its ``structured_output`` is on."""
    return response_format(dialect, name, schema) if enabled else None


# The evaluator's reply when constrained: its reasoning, then an option label (checked by the parser,
# which reads a JSON "answer" first: reasonmed.parsing.extract_answer).
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"reasoning": {"type": "string"}, "answer": {"type": "string"}},
    "required": ["reasoning", "answer"],
    "additionalProperties": False,
}


def constrained_template(template: PromptTemplate, schema: Mapping[str, Any]) -> PromptTemplate:
    """``template`` with its system message telling the model the JSON shape it is held to.

    The text differs, so the sha does too: predictions and ratings made under a schema are stored
    apart from free ones and never reused for them.
    """
    note = "\n\nYour reply is constrained to one JSON object matching this schema: " + json.dumps(
        schema, sort_keys=True, separators=(",", ":")
    )
    system, user = template.text.split(PROMPT_SPLIT, 1)
    return replace(template, text=system.rstrip("\n") + note + PROMPT_SPLIT + user)
