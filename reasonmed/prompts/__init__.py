"""Prompt templates, versioned by the sha256 of their text so every call records exactly what was asked.

Each template holds a system message (may be empty: then only a user message is sent), a ``---user---``
line, and a ``string.Template`` user message. Two shipped profiles: ``reasonmed`` (the project's own,
``<role>.txt`` here) and ``paper`` (``paper/<role>.txt``: the released ReasonMed scripts' instructions
restated role by role; one addition: the verifier's JSON also names the option the path concludes with,
``path_answer``, which the answer guard can read). A pipeline file may replace any role's template with its own file
(``load_prompt_file``), checked here against the placeholders that role fills.

A re-ask sends the template with a note appended to its user message; that text is a template too
(``PromptTemplate.reask``), so the sha a call records is always the sha of the exact text it sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template
from typing import Literal

from reasonmed.bounded_file import FileRefused, read_small_text
from reasonmed.prompts.files import PROMPT_FILE_MAX_BYTES
from reasonmed.roles import EVALUATION_PROMPTS, Role

ROLES = (*(r.prompt for r in Role), *EVALUATION_PROMPTS)  # every prompt name, pipeline's then evaluation's
PROMPT_SPLIT = "\n---user---\n"  # between the system and the user message in a template file
PROFILES = ("reasonmed", "paper")
Profile = Literal["reasonmed", "paper"]

# Placeholders each role fills (any may be used) and those a template of the role must use.
FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "generate": (frozenset({"question", "context_block", "options"}), frozenset({"question", "options"})),
    "evaluate": (frozenset({"question", "context_block", "options"}), frozenset({"question", "options"})),
    "verify": (
        frozenset({"question", "context_block", "options", "answer", "path"}),
        frozenset({"answer", "path"}),
    ),
    "rank": (frozenset({"question", "context_block", "options", "answer", "path"}), frozenset({"path"})),
    "refine": (
        frozenset({"question", "context_block", "options", "answer", "path", "errors"}),
        frozenset({"answer", "path", "errors"}),
    ),
    "regenerate": (
        frozenset({"question", "context_block", "options", "answer", "path", "errors"}),
        frozenset({"answer", "errors"}),
    ),
    "summarize": (frozenset({"question", "context_block", "options", "path"}), frozenset({"path"})),
    "judge": (frozenset({"question", "context_block", "options", "answer", "path"}), frozenset({"path"})),
}

# Appended to the user message of a re-ask. Same seed, other prompt: a transient glitch gets the answer
# the first ask would have had, and an engine that really produced unusable text (it would repeat it
# exactly at temperature 0) is told what was wrong.
REASK_NOTES: dict[str, str] = {
    "truncated": "Your previous reply to this request was cut off at the length limit. Reply again, more "
    "concisely, and end exactly in the format asked for above.",
    "unparseable": "Your previous reply to this request could not be read. Reply again and end exactly in the "
    "format asked for above.",
}
ReaskKind = Literal["truncated", "unparseable"]


class PromptError(ValueError):
    """A prompt template that cannot be used for its role, phrased for the person who has to fix it."""


@dataclass(frozen=True)
class PromptTemplate:
    name: str  # the role
    text: str
    variant: str = "template"  # or "reask-truncated" / "reask-unparseable"
    origin: str = "reasonmed"  # profile name, or the file it was read from

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
        user = {"role": "user", "content": self.user.substitute(**fields).strip() + "\n"}
        return [{"role": "system", "content": self.system}, user] if self.system else [user]

    def reask(self, kind: ReaskKind) -> PromptTemplate:
        """The template whose rendering is this one's with the re-ask note for ``kind`` appended."""
        if self.variant != "template":
            raise ValueError(
                f"{self.name}: a re-ask variant is made from the template, not from {self.variant}"
            )
        note = REASK_NOTES[kind].replace("$", "$$")
        return PromptTemplate(
            self.name, self.text.rstrip() + "\n\n" + note + "\n", f"reask-{kind}", self.origin
        )

    def placeholders(self) -> set[str]:
        return {
            m.group("named") or m.group("braced")
            for m in self.user.pattern.finditer(self.user.template)
            if m.group("named") or m.group("braced")
        }


def check_template(t: PromptTemplate) -> None:
    """Raise PromptError unless ``t`` can serve its role: a separator, only known placeholders, the required ones."""
    if PROMPT_SPLIT not in t.text:
        raise PromptError(
            f"{t.origin}: no '---user---' separator line between the system and the user message"
        )
    allowed, required = FIELDS[t.name]
    try:
        used = t.placeholders()
        t.user.substitute({k: "" for k in allowed})
    except (ValueError, KeyError) as exc:
        if isinstance(exc, KeyError):
            raise PromptError(
                f"{t.origin}: unknown placeholder ${exc.args[0]} for role {t.name} "
                f"(allowed: {', '.join('$' + f for f in sorted(allowed))})"
            ) from None
        raise PromptError(
            f"{t.origin}: invalid placeholder ({exc}); write a literal dollar sign as $$"
        ) from None
    missing = required - used
    if missing:
        raise PromptError(
            f"{t.origin}: the {t.name} prompt must use {', '.join('$' + f for f in sorted(missing))}"
        )


@cache
def get_template(name: str, profile: str = "reasonmed") -> PromptTemplate:
    if name not in ROLES:
        raise KeyError(f"unknown prompt template {name!r} (known: {', '.join(ROLES)})")
    if profile not in PROFILES:
        raise KeyError(f"unknown prompt profile {profile!r} (known: {', '.join(PROFILES)})")
    # A profile may leave a role out (the paper has no benchmark prompt): it then uses the project's own.
    base = resources.files(__package__)
    found = base.joinpath(profile, f"{name}.txt") if profile != "reasonmed" else base.joinpath(f"{name}.txt")
    origin = profile
    if not found.is_file():
        found, origin = base.joinpath(f"{name}.txt"), "reasonmed"
    t = PromptTemplate(name=name, text=found.read_text(encoding="utf-8"), origin=origin)
    check_template(t)
    return t


def load_prompt_file(role: str, path: Path | str) -> PromptTemplate:
    """A user's template for ``role`` from ``path``, checked (PromptError names the file and the problem)."""
    if role not in FIELDS:
        raise PromptError(f"{path}: no prompt can be set for role {role!r}")
    p = Path(path)
    try:
        text = read_small_text(p, PROMPT_FILE_MAX_BYTES)
    except FileRefused as exc:
        raise PromptError(f"{p}: cannot read the prompt file ({exc})") from None
    t = PromptTemplate(name=role, text=text, origin=str(p))
    check_template(t)
    return t


def all_templates(profile: str | None = None) -> list[PromptTemplate]:
    """Every role's shipped template of ``profile``, or of every profile when None."""
    profiles = PROFILES if profile is None else (profile,)
    return [get_template(n, p) for p in profiles for n in ROLES]


def options_inline(options: Mapping[str, str]) -> bool:
    """Choices whose text is their own label (PubMedQA's yes/no/maybe): shown on one line, "yes / no / maybe",
    since "yes. yes" shows a model a stutter, not a choice."""
    return bool(options) and all(
        text.strip().casefold() == label.casefold() for label, text in options.items()
    )


def format_options(options: Mapping[str, str]) -> str:
    """Lettered options, one a line ("A. ..."), or the inline labels of ``options_inline``."""
    if options_inline(options):
        return " / ".join(options)
    return "\n".join(f"{label}. {text.strip()}" for label, text in options.items())


def context_block(context: str | None) -> str:
    return f"\nContext:\n{context.strip()}\n" if context and context.strip() else ""


def format_errors(reasons: list[str]) -> str:
    cleaned = [r.strip() for r in reasons if r and r.strip()]
    return "\n".join(f"- {r}" for r in cleaned) if cleaned else "- (the reviewer gave no specific reasons)"
