"""Prompt templates, versioned by the sha256 of their text so every call records exactly what was asked.

Each ``<name>.txt`` holds a system message, a ``---user---`` line, and a ``string.Template`` user message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template

ROLES = ("generate", "verify", "rank", "refine", "regenerate", "summarize", "evaluate", "judge")
PROMPT_SPLIT = "\n---user---\n"  # between the system and the user message in a template file


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def version(self) -> str:
        """Short, human-friendly version label (first 12 hex digits of the sha256)."""
        return self.sha256[:12]

    @property
    def system(self) -> str:
        return self.text.split(PROMPT_SPLIT, 1)[0].strip()

    @property
    def user(self) -> Template:
        return Template(self.text.split(PROMPT_SPLIT, 1)[1])

    def render(self, **fields: str) -> list[dict[str, str]]:
        """Chat messages; a missing field raises KeyError rather than sending a half-filled prompt."""
        return [
            {"role": "system", "content": self.system},
            {"role": "user", "content": self.user.substitute(**fields).strip() + "\n"},
        ]


@cache
def get_template(name: str) -> PromptTemplate:
    if name not in ROLES:
        raise KeyError(f"unknown prompt template {name!r} (known: {', '.join(ROLES)})")
    text = resources.files(__package__).joinpath(f"{name}.txt").read_text(encoding="utf-8")
    if PROMPT_SPLIT not in text:
        raise ValueError(f"prompt template {name}.txt has no '---user---' separator line")
    return PromptTemplate(name=name, text=text)


def all_templates() -> list[PromptTemplate]:
    return [get_template(n) for n in ROLES]


def format_options(options: Mapping[str, str]) -> str:
    return "\n".join(f"{label}. {text}" for label, text in options.items())


def context_block(context: str | None) -> str:
    return f"\nContext:\n{context.strip()}\n" if context and context.strip() else ""


def format_errors(reasons: list[str]) -> str:
    cleaned = [r.strip() for r in reasons if r and r.strip()]
    return "\n".join(f"- {r}" for r in cleaned) if cleaned else "- (the reviewer gave no specific reasons)"
