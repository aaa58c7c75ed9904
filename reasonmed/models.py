"""Pydantic models at the boundaries of the domain: what a question is once normalised."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SOURCES = ("medqa", "medmcqa", "pubmedqa", "mmlu", "custom")
PUBMEDQA_OPTIONS = {"yes": "yes", "no": "no", "maybe": "maybe"}


def normalise_text(text: str) -> str:
    """Unicode NFKC, collapsed white space, trimmed: what two copies of one question share.

    For comparing and hashing only: NFKC turns ``10⁹/L`` into ``109/L`` and ``Ca²⁺`` into ``Ca2+``, so
    stored text never goes through it (see ``keep_text``).
    """
    return " ".join(unicodedata.normalize("NFKC", text).split())  # str.split: every Unicode space, 4x a regex


def keep_text(text: str) -> str:
    """Text as stored: as given, in NFC (canonically equivalent: same characters, same meaning), without
    surrounding white space."""
    return unicodedata.normalize("NFC", text).strip()


class Question(BaseModel):
    """One question in the project's normal form, whatever file it came from."""

    model_config = ConfigDict(frozen=True)

    source: str = Field(min_length=1)
    source_id: str = Field(min_length=1)
    question: str
    context: str | None = None
    options: dict[str, str]
    answer: str
    split: str = "train"
    is_benchmark_test: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("question")
    @classmethod
    def _question_text(cls, v: str) -> str:
        if not normalise_text(v):
            raise ValueError("empty question text")
        return keep_text(v)

    @field_validator("context")
    @classmethod
    def _context_text(cls, v: str | None) -> str | None:
        if v is None:
            return None
        return keep_text(v) or None

    @field_validator("options")
    @classmethod
    def _options(cls, v: dict[str, str]) -> dict[str, str]:
        cleaned = {}
        for label, text in v.items():
            label = str(label).strip()
            text = keep_text(str(text)) if text is not None else ""
            if not label:
                raise ValueError("an option has an empty label")
            if not normalise_text(text):
                raise ValueError(f"option {label} has empty text")
            cleaned[label] = text
        if len(cleaned) < 2:
            raise ValueError(f"fewer than 2 options ({len(cleaned)})")
        return cleaned

    @model_validator(mode="after")
    def _answer_among_options(self) -> Question:
        if not self.answer or not self.answer.strip():
            raise ValueError("no answer")
        if self.answer not in self.options:
            raise ValueError(f"answer {self.answer!r} is not among the options ({', '.join(self.options)})")
        return self

    @property
    def content_hash(self) -> str:
        """Identity for deduplication: source-independent, so one question reached twice is stored once."""
        # Hashed from the NFKC form of the stored (NFC) text: equal to the hash of rows stored as NFKC before
        # revision 0006, since NFKC(NFC(x)) == NFKC(x) and NFKC is idempotent, so no row needs rehashing.
        payload = {
            "q": normalise_text(self.question).casefold(),
            "c": normalise_text(self.context).casefold() if self.context else None,
            "o": [[k, normalise_text(t).casefold()] for k, t in self.options.items()],
            "a": self.answer,
        }
        return hashlib.sha256(json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
