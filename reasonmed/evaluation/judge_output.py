"""Tolerant parsing of the judge's 1-10 ratings.

Same leniency as the project's other parsers (a JSON object inside prose or a code fence, single
quotes, trailing commas; ``Clinical accuracy: 8/10`` lines as a fallback) and the same rule: return
None rather than guess when a rating is missing or off the 1-10 scale.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reasonmed.parsing import _json_objects  # the shared embedded-JSON scanner (verdicts, scores)

CRITERIA: tuple[str, ...] = ("clinical_accuracy", "logical_reasoning", "factual_correctness", "completeness")
_ALIASES: dict[str, tuple[str, ...]] = {
    "clinical_accuracy": ("clinical_accuracy", "clinicalaccuracy", "accuracy"),
    "logical_reasoning": ("logical_reasoning", "logicalreasoning", "logic", "reasoning"),
    "factual_correctness": ("factual_correctness", "factualcorrectness", "factuality", "factual_accuracy"),
    "completeness": ("completeness",),
    "overall": ("overall", "overall_score", "overall_rating", "score", "rating"),
    "justification": ("justification", "reason", "rationale", "explanation", "comment"),
}
_NUMBER = r"(\d+(?:\.\d+)?)"
_WORD_GAP = r"[\s_-]*"
_LINE = {
    c: re.compile(
        r"\b"
        + _WORD_GAP.join(c.split("_"))
        + r"\b[\"'*_\s]*[:=\-–—][\s\"'*_]*"
        + _NUMBER
        + r"(?:\s*(?:/|out\s+of)\s*"
        + _NUMBER
        + r")?",
        re.IGNORECASE,
    )
    for c in (*CRITERIA, "overall")
}
_JUSTIFICATION_LINE = re.compile(
    r"\b(?:justification|rationale)\b[\"'*_\s]*[:=\-–—][\s\"'*_]*(.+)", re.IGNORECASE
)


@dataclass(frozen=True)
class JudgeScores:
    # None in the paper's mode, which asks for one holistic score only.
    clinical_accuracy: float | None
    logical_reasoning: float | None
    factual_correctness: float | None
    completeness: float | None
    overall: float
    justification: str

    def as_row(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in (*CRITERIA, "overall", "justification")}


def _fold(key: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(key).strip().casefold())


def _rating(value: Any) -> float | None:
    """A rating on the 1-10 scale ("8", 8.5, "8/10"); anything else, or another scale, is None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        m = re.fullmatch(rf"\s*{_NUMBER}\s*(?:(?:/|out\s+of)\s*{_NUMBER})?\s*", value, re.IGNORECASE)
        if not m or (m.group(2) is not None and float(m.group(2)) != 10):
            return None
        value = float(m.group(1))
    if isinstance(value, int | float) and math.isfinite(value) and 1 <= value <= 10:
        return float(value)
    return None


def _pick(obj: Mapping[str, Any], field: str) -> tuple[bool, Any]:
    for name in _ALIASES[field]:
        if name in obj:
            return True, obj[name]
    return False, None


def _from_values(values: Mapping[str, float | None], justification: str) -> JudgeScores | None:
    scores = [v for v in (values.get(c) for c in CRITERIA) if v is not None]
    if len(scores) != len(CRITERIA):
        return None
    overall = values.get("overall")
    if overall is None:
        overall = round(math.fsum(scores) / len(CRITERIA), 2)
    clinical, logical, factual, complete = scores  # CRITERIA's order
    return JudgeScores(clinical, logical, factual, complete, overall=overall, justification=justification)


def parse_judge(text: str) -> JudgeScores | None:
    """The judge's ratings; ``overall`` defaults to the mean of the four criteria when absent.

    The last JSON object holding all four ratings on the 1-10 scale wins; ``Criterion: 8/10`` lines
    are read only when no JSON object carries ratings at all.
    """
    if not text:
        return None
    found: JudgeScores | None = None
    saw_json_ratings = False
    for raw in _json_objects(text):
        obj = {_fold(k): v for k, v in raw.items()}
        if not any(_pick(obj, c)[0] for c in CRITERIA):
            continue
        saw_json_ratings = True
        values: dict[str, float | None] = {}
        off_scale = False
        for field in (*CRITERIA, "overall"):
            present, value = _pick(obj, field)
            values[field] = _rating(value) if present else None
            off_scale |= present and values[field] is None
        if off_scale:
            continue  # a rating of 0 or 11 means the judge used another scale: do not guess
        _, just = _pick(obj, "justification")
        scores = _from_values(values, str(just).strip() if just is not None else "")
        if scores is not None:
            found = scores
    if found is not None or saw_json_ratings:
        return found  # ratings given as JSON are never second-guessed from the prose around them
    values = {}
    for field, pattern in _LINE.items():
        matches = list(pattern.finditer(text))
        if not matches:
            values[field] = None
            continue
        m = matches[-1]
        values[field] = (
            None if m.group(2) is not None and float(m.group(2)) != 10 else _rating(float(m.group(1)))
        )
    jm = _JUSTIFICATION_LINE.search(text)
    return _from_values(values, jm.group(1).strip().strip("\"'*_,").strip() if jm else "")


_HOLISTIC = ("score", "overall", "overall_score", "rating")


def parse_paper_judge(text: str) -> JudgeScores | None:
    """The paper-mode judge's one holistic 1-10 score (``{"score": 8, "justification": ...}``); the four
    criteria stay empty. The last JSON object with a score on the 1-10 scale wins; nothing else is guessed."""
    found: JudgeScores | None = None
    for raw in _json_objects(text or ""):
        obj = {_fold(k): v for k, v in raw.items()}
        key = next((k for k in _HOLISTIC if _fold(k) in obj), None)
        if key is None:
            continue
        value = _rating(obj[_fold(key)])
        if value is None:
            continue
        just = next(
            (obj[_fold(k)] for k in ("justification", "reason", "explanation") if _fold(k) in obj), ""
        )
        found = JudgeScores(None, None, None, None, overall=value, justification=str(just or "").strip())
    return found
