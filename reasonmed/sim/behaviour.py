"""What the simulator answers, as pure functions: tests compute the expected reply from the same code.

Every decision is a hash of the request, never a random draw, so the same request gets the same
text. Choice ``i`` of an ``n``-request with seed ``s`` is generated exactly as choice 0 of a request
with seed ``s + i`` (the backend's contract when a server cannot sample ``n`` at once).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Literal, TypeGuard, get_args

from reasonmed.models import normalise_text
from reasonmed.prompts import all_templates
from reasonmed.sim import prose, styles
from reasonmed.sim.styles import Style

Role = Literal["generate", "verify", "rank", "refine", "regenerate", "summarize", "evaluate", "judge"]
Variant = Literal["ok", "truncate", "noanswer"]

# --------------------------------------------------------------------------- hashing


def h64(*parts: object) -> int:
    """A stable 64-bit hash of the parts (blake2b; unlike ``hash()`` it does not change per process)."""
    data = "\x1f".join("None" if p is None else repr(p) if isinstance(p, float) else str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8).digest(), "big")


def unit(*parts: object) -> float:
    """A stable draw in [0, 1)."""
    return h64(*parts) / 2.0**64


def rng_for(*parts: object) -> random.Random:
    return random.Random(h64(*parts))


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class SimRequest:
    model: str
    messages: tuple[tuple[str, str], ...]  # (role, content)
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    n: int = 1
    seed: int | None = None
    stop: tuple[str, ...] = ()

    @property
    def system(self) -> str:
        return next((c for r, c in self.messages if r == "system"), "")

    @property
    def user(self) -> str:
        return next((c for r, c in reversed(self.messages) if r == "user"), "")


@dataclass(frozen=True)
class Behaviour:
    """The simulator's knobs that shape answers (latency and faults live elsewhere)."""

    accuracy: Mapping[str, float] = field(default_factory=dict)
    default_accuracy: float = 0.6
    refine_accuracy: float = 0.9
    verifier_error_rate: float = 0.0
    styles: Mapping[str, Style] = field(default_factory=dict)
    default_style: Style = "plain"

    def accuracy_for(self, model: str) -> float:
        return self.accuracy.get(model, self.default_accuracy)

    def style_for(self, model: str) -> Style:
        return self.styles.get(model, self.default_style)


@dataclass(frozen=True)
class Choice:
    text: str
    finish_reason: str
    completion_tokens: int


# --------------------------------------------------------------------------- tokens


def count_tokens(text: str) -> int:
    """About 1.3 tokens a word, like an English BPE tokenizer."""
    return math.ceil(len(text.split()) * 1.3)


def prompt_tokens(messages: Sequence[tuple[str, str]]) -> int:
    return sum(count_tokens(c) + 4 for _, c in messages)


# --------------------------------------------------------------------------- role detection


def _is_role(name: str) -> TypeGuard[Role]:
    return name in get_args(Role)


@cache
def _template_systems() -> dict[str, Role]:
    """System text -> role, over every prompt profile (a template with no system message is not here)."""
    return {normalise_text(t.system): t.name for t in all_templates() if t.system and _is_role(t.name)}


@cache
def _template_openings() -> dict[str, Role]:
    """First user line -> role, for the templates that send no system message (the paper's raw prompts)."""
    return {_opening(t.user.template): t.name for t in all_templates() if not t.system and _is_role(t.name)}


def _opening(user: str) -> str:
    return normalise_text(next((line for line in user.strip().splitlines() if line.strip()), ""))


_SYSTEM_KEYWORDS: tuple[tuple[str, Role], ...] = (
    ("rates the quality", "judge"),
    ("licensing examination", "evaluate"),
    ("verif", "verify"),
    ("grade", "rank"),
    ("score the path", "rank"),
    ("corrects and strengthens", "refine"),
    ("earlier attempts", "regenerate"),
    ("condense", "summarize"),
    ("summar", "summarize"),
)
_USER_KEYWORDS: tuple[tuple[str, Role], ...] = (
    ("Reasoning to verify:", "verify"),
    ("Reasoning to grade:", "rank"),
    ("Original reasoning:", "refine"),
    ("Earlier attempt:", "regenerate"),
    ("Failed attempt:", "regenerate"),
    ("Reasoning to summarise:", "summarize"),
    ("Response to rate:", "judge"),
)


@lru_cache(maxsize=64)
def _role_of_system(system: str) -> Role | None:
    return _template_systems().get(normalise_text(system))


def detect_role(system: str, user: str = "") -> Role:
    """The template whose system text the request carries; keywords when the text was edited."""
    role = _role_of_system(system) if system.strip() else _template_openings().get(_opening(user))
    if role:
        return role
    low = system.lower()
    for word, r in _SYSTEM_KEYWORDS:
        if word in low:
            return r
    for word, r in _USER_KEYWORDS:
        if word in user:
            return r
    return "generate"


# --------------------------------------------------------------------------- prompt parsing


@dataclass(frozen=True)
class ParsedPrompt:
    question: str  # normalised
    context: str | None
    options: dict[str, str]
    answer: str | None  # the "Correct answer:" key, when the prompt carries one
    path: str | None  # between <<< and >>>
    errors: tuple[str, ...]


_SECTION = re.compile(
    r"^(Question|Context|Options|Correct answer|Errors found by the reviewer):[ \t]*(.*)$", re.MULTILINE
)
_OPTION_LINE = re.compile(r"^\s*([^\s.]{1,12})\.\s+(.+?)\s*$")


@lru_cache(maxsize=4096)  # the 9 generation requests of a question share one prompt
def parse_prompt(user: str) -> ParsedPrompt:
    """Sections of a user message rendered from the project's templates (tolerant of extra text).

    Cached, so the result is shared: treat it as read-only.
    """
    path = None
    start, end = user.find("<<<"), user.rfind(">>>")
    if start != -1 and end > start:
        path = user[start + 3 : end].strip("\n")
        user_wo_path = user[:start] + user[end + 3 :]
    else:
        user_wo_path = user
    heads = list(_SECTION.finditer(user_wo_path))
    sections: dict[str, str] = {}
    for k, m in enumerate(heads):
        stop = heads[k + 1].start() if k + 1 < len(heads) else len(user_wo_path)
        body = (m.group(2) + "\n" + user_wo_path[m.end() : stop]).strip()
        sections.setdefault(m.group(1), body)
    options: dict[str, str] = {}
    for line in sections.get("Options", "").split("\n"):
        if not line.strip():
            if options:
                break
            continue
        om = _OPTION_LINE.match(line)
        if om:
            options[om.group(1)] = normalise_text(om.group(2))
        elif options:
            break
    if not options:
        options = _inline_options(sections.get("Options", ""))
    answer_block = sections.get("Correct answer", "").split("\n", 1)[0].strip() or None
    if answer_block and answer_block not in options:
        # The templates render "C. <option text>" so a real verifier sees the text; the key is the label.
        label = answer_block.split(".", 1)[0].strip()
        if label in options:
            answer_block = label
    errors: list[str] = []
    for line in sections.get("Errors found by the reviewer", "").split("\n"):
        if not line.strip():
            if errors:
                break  # the templates put an instruction after a blank line
            continue
        errors.append(line.strip().removeprefix("- ").strip())
    question = sections.get("Question", "")
    return ParsedPrompt(
        question=normalise_text(question),
        context=sections.get("Context") or None,
        options=options,
        answer=answer_block,
        path=path,
        errors=tuple(errors),
    )


def _inline_options(section: str) -> dict[str, str]:
    """Options shown on one line as their labels ("yes / no / maybe", ``prompts.format_options``)."""
    first = next((line.strip() for line in section.split("\n") if line.strip()), "")
    labels = [part.strip() for part in first.split(" / ")] if " / " in first else []
    return {label: label for label in labels if label and " " not in label}


def answer_key(question: str, options: Mapping[str, str]) -> bytes:
    """What a question is known by in the answer key: a digest of its normalised text and options
    (16 bytes a question, so the 195k-question corpus costs megabytes, not the corpus twice over)."""
    parts = [normalise_text(question).casefold()]
    parts += [f"{label}\x1e{normalise_text(text).casefold()}" for label, text in options.items()]
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).digest()


# --------------------------------------------------------------------------- decisions


def sample_key(
    model: str, temperature: float, seed: int | None, question: str, choice_index: int = 0
) -> tuple[object, ...]:
    """Choice i with seed s is keyed exactly as choice 0 with seed s + i; unseeded choices by index."""
    effective: object = f"unseeded/{choice_index}" if seed is None else seed + choice_index
    return (model, float(temperature), effective, normalise_text(question))


def choose_label(
    *,
    model: str,
    temperature: float,
    seed: int | None,
    question: str,
    options: Sequence[str],
    correct: str | None,
    accuracy: float,
    choice_index: int = 0,
    salt: str = "generate",
) -> str:
    """Correct with probability ``accuracy`` (by hash); otherwise a deterministic wrong option.

    With no known answer the label is uniform over the options (by hash).
    """
    labels = list(options)
    if not labels:
        raise ValueError("no options to choose from")
    key = sample_key(model, temperature, seed, question, choice_index)
    if correct is None or correct not in labels:
        return labels[h64(salt, "uniform", *key) % len(labels)]
    if unit(salt, "accuracy", *key) < accuracy:
        return correct
    wrong = [lab for lab in labels if lab != correct]
    return wrong[h64(salt, "wrong", *key) % len(wrong)] if wrong else correct


def verify_decision(
    *, model: str, path: str, options: Mapping[str, str], answer: str, error_rate: float = 0.0
) -> tuple[bool, str | None, bool]:
    """(judged correct, label the path reached, verdict flipped by the configured error rate).

    The simulator wrote the path, so it reads the conclusion it wrote (``styles``), not the pipeline's parser.
    """
    chosen = styles.read_answer(path, options)
    right = chosen is not None and chosen == answer
    flipped = (
        error_rate > 0 and unit("verifier-error", model, styles.as_plain(path, options), answer) < error_rate
    )
    return (not right if flipped else right), chosen, flipped


def rank_score(*, model: str, question: str, path: str, options: Mapping[str, str]) -> int:
    """An integer 2..5, by hash of the path in its plain form: the same sample scores the same in any style."""
    return 2 + h64("rank", model, normalise_text(question), styles.as_plain(path, options)) % 4


def rewrite_salt(role: Role, path: str, options: Mapping[str, str]) -> str:
    """What a refinement or regeneration of ``path`` is keyed by: the path in its plain form, so the option
    the rewrite picks does not depend on the style the path was written in."""
    return f"{role}/{styles.as_plain(path, options)}"


JUDGE_CRITERIA = ("clinical_accuracy", "logical_reasoning", "factual_correctness", "completeness")


def judge_scores(
    *, model: str, question: str, response: str, options: Mapping[str, str], answer: str | None
) -> dict[str, int]:
    """Ratings 1..10 per criterion and overall, by hash of the response: 6..10 when the response's
    conclusion is the keyed answer (or names no option, as a summary may not), 1..5 when it is another."""
    chosen = concluded(response, options)
    low = 6 if chosen is None or answer is None or chosen == answer else 1
    scores = {c: low + h64("judge", c, model, normalise_text(question), response) % 5 for c in JUDGE_CRITERIA}
    scores["overall"] = round(sum(scores.values()) / len(JUDGE_CRITERIA))
    return scores


def concluded(response: str, options: Mapping[str, str]) -> str | None:
    """The option a dataset row concludes with: its summary's, or its path's when the summary names none
    (a row is a path, a summary, or a path then its summary)."""
    summary = prose.read_summary(response)
    if summary is None:
        return styles.read_answer(response, options)
    start, label = summary
    if label is not None and label in options:
        return label
    return styles.read_answer(response[:start].rstrip(), options)


def asks_answer_line(req: SimRequest) -> bool:
    """The prompt asks for a ``Final answer:`` line (the project's prompts do, the paper's do not)."""
    return "Final answer:" in req.system + req.user


# --------------------------------------------------------------------------- replies


def finish_choice(text: str, req: SimRequest, variant: Variant, key: tuple[object, ...]) -> Choice:
    """A reply's text as the engine returns it: cut by a ``truncate`` fault, a stop string or ``max_tokens``."""
    finish = "stop"
    if variant == "truncate" and text:
        words = text.split(" ")
        cut = max(1, int(len(words) * (0.35 + 0.4 * unit("truncate", *key))))
        text, finish = " ".join(words[:cut]), "length"
    for s in req.stop:
        pos = text.find(s) if s else -1
        if pos != -1:
            text, finish = text[:pos], "stop"
    if req.max_tokens is not None and count_tokens(text) > req.max_tokens:
        words = text.split(" ")
        keep = max(0, int(req.max_tokens / 1.3))
        while keep > 0 and count_tokens(" ".join(words[:keep])) > req.max_tokens:
            keep -= 1
        text, finish = " ".join(words[:keep]), "length"
    return Choice(text=text, finish_reason=finish, completion_tokens=count_tokens(text))


def reply_text(
    req: SimRequest,
    role: Role,
    prompt: ParsedPrompt,
    behaviour: Behaviour,
    *,
    correct: str | None,
    choice_index: int = 0,
    variant: Variant = "ok",
) -> str:
    """The text of one choice before truncation and stop sequences."""
    key = sample_key(req.model, req.temperature, req.seed, prompt.question, choice_index)
    options = prompt.options
    r1 = "r1" in req.model.lower()
    salt: str
    chosen: str | None  # the option the reply settles on
    if role in ("generate", "refine", "regenerate", "evaluate"):
        if not options:
            return f"{prose.SIM_PREFIX}The question has no lettered options to evaluate."
        if role in ("generate", "evaluate"):
            accuracy, salt, known = behaviour.accuracy_for(req.model), role, correct
        else:
            salt = rewrite_salt(role, prompt.path or "", options)
            accuracy, known = behaviour.refine_accuracy, prompt.answer
        chosen = choose_label(
            model=req.model,
            temperature=req.temperature,
            seed=req.seed,
            question=prompt.question,
            options=list(options),
            correct=known,
            accuracy=accuracy,
            choice_index=choice_index,
            salt=salt,
        )
        rng = rng_for("text", salt, *key)
        core = prose.steps(
            question=prompt.question,
            options=options,
            chosen=chosen,
            rng=rng,
            mode="generate" if role == "evaluate" else role,
            errors=prompt.errors,
        )
        return styles.write_path(
            core,
            chosen=None if variant == "noanswer" else chosen,
            options=options,
            style=behaviour.style_for(req.model),
            r1=r1,
            answer_line=asks_answer_line(req),
            rng=rng,
        )
    if role == "verify":
        if variant == "noanswer":
            return prose.NO_VERDICT
        answer = prompt.answer or ""
        ok, chosen, flipped = verify_decision(
            model=req.model,
            path=prompt.path or "",
            options=options,
            answer=answer,
            error_rate=behaviour.verifier_error_rate,
        )
        reason = prose.verdict_reason(
            correct_verdict=ok,
            chosen=chosen,
            answer=answer,
            options=options,
            flipped=flipped,
            rng=rng_for("reason", *key, prompt.path),
        )
        verdict = {"verdict": "Correct" if ok else "Error", "path_answer": chosen or "none", "reason": reason}
        return json.dumps(verdict)
    if role == "rank":
        if variant == "noanswer":
            return prose.NO_SCORE
        score = rank_score(model=req.model, question=prompt.question, path=prompt.path or "", options=options)
        return json.dumps({"score": score, "justification": prose.justification(score)})
    if role == "judge":
        if variant == "noanswer":
            return prose.NO_SCORE
        scores = judge_scores(
            model=req.model,
            question=prompt.question,
            response=prompt.path or "",
            options=options,
            answer=prompt.answer,
        )
        justification = prose.judge_justification(scores["overall"])
        if "clinical_accuracy" not in req.system + req.user:  # the paper's judge asks for one holistic score
            return json.dumps({"score": scores["overall"], "justification": justification})
        return json.dumps({**scores, "justification": justification})
    # summarize
    if variant == "noanswer":
        return ""
    chosen = styles.read_answer(prompt.path or "", options)
    return prose.summary(chosen=chosen, options=options, rng=rng_for("summary", *key, prompt.path))


def respond(
    req: SimRequest,
    behaviour: Behaviour,
    *,
    correct: str | None = None,
    variant: Variant = "ok",
    role: Role | None = None,
    prompt: ParsedPrompt | None = None,
) -> tuple[Role, list[Choice]]:
    """The role detected and the ``n`` choices the simulator returns for ``req``.

    ``correct`` is the answer key the server found for a generation prompt (None = unknown); prompts
    for the other roles carry their own key. ``role``/``prompt`` skip detection when already known.
    """
    role = role or detect_role(req.system, req.user)
    prompt = prompt or parse_prompt(req.user)
    choices = []
    for i in range(req.n):
        text = reply_text(req, role, prompt, behaviour, correct=correct, choice_index=i, variant=variant)
        key = sample_key(req.model, req.temperature, req.seed, prompt.question, i)
        choices.append(finish_choice(text, req, variant, key))
    return role, choices
