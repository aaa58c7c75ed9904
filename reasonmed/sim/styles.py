"""How a simulated path is framed and states its answer, in the forms real models use, each with an exact reader.

Real models rarely end with ``Final answer: X``: they think in ``<think>`` blocks, write HuatuoGPT-o1's
``## Final Response``, markdown headings, JSON, the option's text alone, a bare line, or a concluding
sentence. A *style* is one such habit; a model keeps its style (``mixed`` draws one per sample).

The simulator wrote the path, so it does not guess what the path concludes: every conclusion is a
:class:`Phrasing` (fixed text before and after one slot), written from it and read back by it on the path's
last lines. The project's parser (``reasonmed.parsing.extract_answer``) is never used here: tests compare
what it reads with what the simulator meant.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Literal, TypeGuard, get_args

from reasonmed.sim.prose import SIM_PREFIX, plain_conclusion

Style = Literal["plain", "think", "huatuo", "markdown", "json", "option-text", "bare", "prose", "mixed"]
STYLES: tuple[Style, ...] = get_args(Style)
# What ``mixed`` draws from: every real form, not the simulator's own ``Final answer:`` line.
REAL_STYLES: tuple[Style, ...] = tuple(s for s in STYLES if s not in ("plain", "mixed"))

HEDGE = "Further information would be needed before committing to one option."
R1_MARKER = f"{SIM_PREFIX}Conclusion."  # a reasoning model's line between its thinking and its answer


def is_style(name: str) -> TypeGuard[Style]:
    return name in STYLES


def style_named(name: str) -> Style:
    """``name`` as a style, or ValueError listing the styles there are."""
    if not is_style(name):
        raise ValueError(f"unknown style {name!r} (styles: {', '.join(STYLES)})")
    return name


# --------------------------------------------------------------------------- slots


Slot = Callable[[str, Mapping[str, str]], str]  # (label, options) -> how the conclusion names the option


def _text(label: str, options: Mapping[str, str]) -> str:
    return options[label].rstrip(". ")  # inside a sentence that ends with its own full stop


SLOTS: dict[str, Slot] = {
    "label": lambda x, o: x,
    "named": lambda x, o: f"{x}. {o[x]}",  # C. Rotavirus
    "paren": lambda x, o: f"{x}) {o[x]}",  # D) Insulin
    "small-paren": lambda x, o: f"{x.lower()}) {o[x]}",  # b) Schizophreniform
    "label-text": lambda x, o: f"{x}, {_text(x, o)}",  # C, Rotavirus
    "text": _text,  # doxycycline
    "text-choice": lambda x, o: f"{_text(x, o)} (choice {x})",  # factor X deficiency (choice D)
    "text-option": lambda x, o: f"{_text(x, o)} (Option {x})",
    "json-label": lambda x, o: json.dumps(x),
    "json-named": lambda x, o: json.dumps(f"{x}. {o[x]}"),  # "C. 100/minute."
    "lower": lambda x, o: x.lower(),  # yes/no/maybe questions: the option is its own label
    "capital": lambda x, o: x.capitalize(),
    "upper": lambda x, o: x.upper(),
}


def _key(slot_text: str) -> str:
    """How a careful reader tells two option names apart: case, punctuation and spacing do not count."""
    return " ".join(re.sub(r"[^\w]+", " ", slot_text.casefold()).split())


@dataclass(frozen=True)
class Phrasing:
    """A conclusion: ``before`` + the slot naming the option + ``after``, starting a line of its own."""

    before: str
    slot: str  # a key of SLOTS
    after: str
    worded: bool | None  # only for questions whose options are (True) or are not (False) their own labels
    read_before: str | None = None  # the text once scaffolding tags are gone (``<answer>``), if it differs
    read_after: str | None = None

    def write(self, label: str, options: Mapping[str, str]) -> str:
        return self.before + SLOTS[self.slot](label, options) + self.after

    def names(self, options: Mapping[str, str]) -> dict[str, str] | None:
        """Slot text -> label; None when this phrasing cannot name every option unambiguously here."""
        if self.worded is not None and self.worded != is_worded(options):
            return None
        names = {SLOTS[self.slot](label, options): label for label in options}
        keys = {_key(n) for n in names}
        if len(keys) < len(options) or "" in keys:
            return None
        if self.slot == "text" and keys & {_key(label) for label in options}:
            return None  # an option text that is also a label ("B") would name two options
        return names

    @property
    def pattern(self) -> re.Pattern[str]:
        return _reader(self._read_text)[0]

    @property
    def _read_text(self) -> tuple[str, str]:
        return (
            self.before if self.read_before is None else self.read_before,
            self.after if self.read_after is None else self.read_after,
        )

    def search(self, text: str) -> re.Match[str] | None:
        """This conclusion ending ``text``. It spans as many line breaks as its fixed text holds, so only
        the text's last lines are searched: a path is thousands of characters, a conclusion one line."""
        pattern, breaks = _reader(self._read_text)
        start = len(text)
        for _ in range(breaks + 1):
            start = text.rfind("\n", 0, start)
            if start < 0:
                start = 0
                break
        return pattern.search(text, start)  # ``\A`` matches only at the text's real start


@cache
def _reader(read_text: tuple[str, str]) -> tuple[re.Pattern[str], int]:
    """The conclusion's pattern, and the line breaks its fixed text holds."""
    before, after = read_text
    pattern = re.compile(rf"(?:\A|\n){re.escape(before)}(?P<slot>[^\n]*){re.escape(after)}\Z")
    return pattern, before.count("\n") + after.count("\n")


def is_worded(options: Mapping[str, str]) -> bool:
    return all(text.casefold() == label.casefold() for label, text in options.items())


def _both(before: str, lettered: str, worded: str, after: str) -> tuple[Phrasing, Phrasing]:
    return Phrasing(before, lettered, after, False), Phrasing(before, worded, after, True)


ANSWER_LINE = Phrasing("Final answer: ", "label", "", None)  # the plain style's, followed by a summary line

# Each style's conclusions, after forms in real GPT-4, Claude, Llama-3-70B, Qwen2.5, DeepSeek-R1-distill and
# HuatuoGPT-o1 outputs. The writer draws one of a style's phrasings that fit the question; the reader tries
# them all (``_reading_order``).
PHRASINGS: dict[Style, tuple[Phrasing, ...]] = {
    "plain": (ANSWER_LINE,),
    "think": (
        *_both("The answer is **", "named", "capital", "**."),
        *_both("**Answer:** ", "named", "capital", ""),
    ),
    "huatuo": (
        Phrasing("In conclusion, the findings are best explained by ", "named", ".", False),
        Phrasing("The most likely answer is ", "named", ".", False),
        Phrasing("In conclusion, based on the study's findings, the answer is ", "lower", ".", True),
    ),
    "markdown": (
        *_both("### Answer\n**", "paren", "capital", "**"),
        Phrasing("Putting this together, the most likely answer is:\n\n", "named", "", False),
        Phrasing("**", "capital", "**", True),
    ),
    "json": (
        Phrasing('{"answer_choice": ', "json-label", "}", False),
        Phrasing('{"answer_choice": ', "json-named", "}", False),
        Phrasing('{"answer_choice": ', "json-label", "}", True),
        Phrasing("<answer>", "lower", "</answer>", True, read_before="", read_after=""),
    ),
    "option-text": (
        Phrasing("Weighing everything, the best fit is ", "text", ".", False),
        Phrasing("That leaves ", "text", " as the most consistent choice.", False),
        Phrasing("Weighing everything, I would say ", "lower", ".", True),
    ),
    "bare": (
        Phrasing("This leaves us with ", "small-paren", ".", False),
        Phrasing("", "paren", "", False),  # A) Serum iron level
        Phrasing("", "upper", ", the results above support this conclusion.", True),
    ),
    "prose": (  # what the paper's prompts get: no answer line, a concluding sentence
        Phrasing("Therefore, the most appropriate choice is ", "label-text", ".", False),
        Phrasing("Taken together, ", "text-choice", " is the most consistent with the findings.", False),
        Phrasing("All of this points to ", "text-option", ".", False),
        Phrasing("Overall, the evidence supports answering ", "lower", " to this question.", True),
    ),
}


@cache
def _reading_order() -> tuple[Phrasing, ...]:
    """Every phrasing once; longer fixed text first, so a conclusion is never read by a shorter one it contains."""
    seen = dict.fromkeys(p for style in PHRASINGS.values() for p in style)
    return tuple(sorted(seen, key=lambda p: -len((p.read_before or p.before) + (p.read_after or p.after))))


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class Frame:
    """What a style wraps the reasoning in (HuatuoGPT-o1's headings, a reasoning model's think block)."""

    open: str = ""
    close: str = ""


THINK = Frame("<think>\n", "\n</think>")
HUATUO = Frame("## Thinking\n\n", "\n\n## Final Response")


def _frame(style: Style, r1: bool) -> Frame:
    if style == "huatuo":
        return HUATUO
    return THINK if r1 or style == "think" else Frame()


def _phrasings(style: Style, options: Mapping[str, str], answer_line: bool) -> list[Phrasing]:
    """The style's phrasings that name every option here; the paper-like sentences when it has none."""
    if style == "plain" and not answer_line:
        style = "prose"  # asked for no answer line, the simulator's plain model concludes in a sentence
    usable = [p for p in PHRASINGS[style] if p.names(options) is not None]
    return usable or [p for p in PHRASINGS["prose"] if p.names(options) is not None]


def write_path(
    core: str,
    *,
    chosen: str | None,
    options: Mapping[str, str],
    style: Style,
    r1: bool,
    answer_line: bool,
    rng: random.Random,
) -> str:
    """The reasoning ``core`` framed and concluded in ``style``; ``chosen=None`` concludes with no option.

    ``answer_line``: the prompt asks for a ``Final answer:`` line. Draws from ``rng`` only after the core
    was written, and none in the plain style, so the core and the plain text do not depend on the style.
    """
    if style == "mixed":
        style = rng.choice(REAL_STYLES)
    frame = _frame(style, r1)
    if chosen is None:
        conclusion = HEDGE
    elif style == "plain" and answer_line:
        conclusion = plain_conclusion(chosen, options)
    else:
        conclusion = rng.choice(_phrasings(style, options, answer_line)).write(chosen, options)
    marker = R1_MARKER + "\n" if r1 else ""
    return f"{frame.open}{core}{frame.close}\n\n{marker}{conclusion}"


# --------------------------------------------------------------------------- reading

_SCAFFOLD_LINE = re.compile(r"^(?:## Thinking|## Final Response)$", re.MULTILINE)
_SCAFFOLD_TAG = re.compile(r"</?(?:think|answer)>")
_PLAIN_SUMMARY = re.compile(r"\nSummary: [^\n]*\Z")


def unframe(text: str) -> str:
    """``text`` without the scaffolding this module writes, as the pipeline stores a path (its blank lines
    collapsed the same way), so a path reads the same before and after the pipeline cleaned it."""
    text = _SCAFFOLD_TAG.sub("\n", _SCAFFOLD_LINE.sub("", text))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


@dataclass(frozen=True)
class Reading:
    label: str | None  # the option the path concludes with; None for the hedge
    start: int  # where its conclusion starts in ``unframe(text)``
    phrasing: Phrasing | None  # None for the hedge


def read(text: str, options: Mapping[str, str]) -> Reading | None:
    """The conclusion that ends ``text``, if it is one this module writes (raw or as the pipeline cleaned it)."""
    flat = unframe(text)
    if flat.endswith(HEDGE) and (len(flat) == len(HEDGE) or flat[-len(HEDGE) - 1] == "\n"):
        return Reading(None, len(flat) - len(HEDGE), None)
    plain = _PLAIN_SUMMARY.sub("", flat)
    for phrasing in _reading_order():
        m = phrasing.search(plain if phrasing is ANSWER_LINE else flat)
        names = phrasing.names(options) if m else None
        if m and names and m["slot"] in names:
            return Reading(names[m["slot"]], m.start() + (flat[m.start()] == "\n"), phrasing)
    return None


def read_answer(text: str, options: Mapping[str, str]) -> str | None:
    """The option a simulated path concludes with (None: no option, or not a conclusion this module writes)."""
    reading = read(text, options) if options else None
    return reading.label if reading else None


def as_plain(text: str, options: Mapping[str, str]) -> str:
    """The path as the plain style would have written it for the same sample, as the pipeline stores it.

    Decisions keyed on a path's text (its rank score, the option its rewrite picks) use this, so they do not
    depend on the style. A plain path, a hedge and text this module did not write are returned unchanged.
    """
    reading = read(text, options) if options else None
    if reading is None or reading.label is None or reading.phrasing is ANSWER_LINE:
        return text
    head = unframe(text)[: reading.start].rstrip("\n")
    r1 = head.endswith("\n" + R1_MARKER)
    core = head.removesuffix(R1_MARKER).rstrip("\n") if r1 else head
    marker = R1_MARKER + "\n" if r1 else ""
    return f"{core}\n\n{marker}{plain_conclusion(reading.label, options)}"
