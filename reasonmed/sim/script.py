"""Scripted outcomes: what the simulator decides for chosen questions, written by hand in a JSON file.

The simulator's hash decisions are reproducible but not hand-checkable: a test that wants to know, before
the run, which tier a question lands in and which paths are kept would have to compute them with the
project's own rules. A script fixes every decision of a question instead, so the expected outcome can be
worked out on paper. For a question whose text contains ``marker``:

- ``paths``: per generation slot ``"<model>@<temperature>"`` (``"sim/Qwen2.5-72B-Instruct@0.7"``), the
  option the path concludes with (``answer``; null: it commits to none), the verifier's ``verdict``
  (``Correct``, ``Error`` or ``unparseable``: a reply that never parses) and the ranker's ``score``;
- ``refine`` and ``regenerate``: the ``answer`` and ``verdict`` of every refined and regenerated path.

The path text is the simulator's usual prose for that answer, opening with a line that names its slot
(``Scripted path sim/Qwen2.5-72B-Instruct@0.7.``), which is how a verifier, ranker or refiner request about
the path finds its entry. Requests the script does not cover (other questions, summaries) are answered as
usual.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reasonmed.sim import prose, styles

Verdict = Literal["Correct", "Error", "unparseable"]
_VERDICTS = ("Correct", "Error", "unparseable")
_TAG = re.compile(r"Scripted path (\S+)\.")
MAX_SCRIPT_BYTES = 1 << 20


@dataclass(frozen=True)
class Outcome:
    answer: str | None
    verdict: Verdict
    score: int = 3


@dataclass(frozen=True)
class QuestionScript:
    marker: str
    paths: Mapping[str, Outcome]  # by slot "<model>@<temperature>"
    refine: Outcome
    regenerate: Outcome


class ScriptError(ValueError):
    pass


def _outcome(raw: object, where: str) -> Outcome:
    if not isinstance(raw, dict):
        raise ScriptError(f"{where}: expected an object with answer and verdict")
    verdict = raw.get("verdict")
    if verdict not in _VERDICTS:
        raise ScriptError(f"{where}: verdict must be one of {', '.join(_VERDICTS)} (got {verdict!r})")
    answer, score = raw.get("answer"), raw.get("score", 3)
    if answer is not None and not isinstance(answer, str):
        raise ScriptError(f"{where}: answer must be an option label or null")
    if not isinstance(score, int) or not 0 <= score <= 5:
        raise ScriptError(f"{where}: score must be an integer 0-5")
    return Outcome(answer, verdict, score)


def load_script(path: Path) -> tuple[QuestionScript, ...]:
    """The questions of a script file; a one-line ScriptError says what is wrong with it."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_SCRIPT_BYTES:
            raise ScriptError(f"{path}: not a regular file of at most {MAX_SCRIPT_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ScriptError(f"{path}: not a readable JSON script ({exc})") from None
    questions = data.get("questions") if isinstance(data, dict) else None
    if not isinstance(questions, list):
        raise ScriptError(f'{path}: expected {{"questions": [...]}}')
    out = []
    for i, q in enumerate(questions):
        where = f"{path.name}: questions[{i}]"
        if not isinstance(q, dict) or not isinstance(q.get("marker"), str) or not q["marker"]:
            raise ScriptError(f"{where}: a question needs a non-empty marker")
        paths = q.get("paths")
        if not isinstance(paths, dict) or not paths:
            raise ScriptError(f"{where}: paths must map '<model>@<temperature>' slots to outcomes")
        out.append(
            QuestionScript(
                marker=q["marker"],
                paths={slot: _outcome(o, f"{where}.paths[{slot}]") for slot, o in paths.items()},
                refine=_outcome(q.get("refine", {"verdict": "Error"}), f"{where}.refine"),
                regenerate=_outcome(q.get("regenerate", {"verdict": "Error"}), f"{where}.regenerate"),
            )
        )
    return tuple(out)


def slot(model: str, temperature: float) -> str:
    return f"{model}@{temperature:g}"


@dataclass(frozen=True)
class Script:
    """Answers the requests its questions' markers appear in (``reply``); None for everything else."""

    questions: tuple[QuestionScript, ...]

    def _find(self, user: str) -> QuestionScript | None:
        return next((q for q in self.questions if q.marker in user), None)

    def reply(
        self,
        *,
        role: str,
        user: str,
        model: str,
        temperature: float,
        seed: int | None,
        options: Mapping[str, str],
        question: str,
        path: str | None,
    ) -> str | None:
        q = self._find(user)
        if q is None or role not in ("generate", "verify", "rank", "refine", "regenerate"):
            return None
        rng = random.Random(f"{q.marker}|{role}|{model}|{temperature}|{seed}|{path}")
        if role == "generate":
            name = slot(model, temperature)
            if name not in q.paths:
                return None  # a slot the script does not name: answered as usual
            return _path_text(name, q.paths[name], question, options, rng, "generate")
        tag = _TAG.search(path or "")
        if role == "refine":
            name = f"refined-{tag.group(1) if tag else 'unknown'}"
            return _path_text(name, q.refine, question, options, rng, "refine")
        if role == "regenerate":
            return _path_text(f"regenerated-{seed}", q.regenerate, question, options, rng, "regenerate")
        outcome = _lookup(q, tag.group(1) if tag else "")
        if outcome is None:
            return None
        if role == "rank":
            return json.dumps({"score": outcome.score, "justification": f"Scripted score {outcome.score}."})
        if outcome.verdict == "unparseable":
            return prose.NO_VERDICT
        read_as = outcome.answer or "none"
        return json.dumps(
            {"verdict": outcome.verdict, "path_answer": read_as, "reason": f"Scripted: concludes {read_as}."}
        )


def _lookup(q: QuestionScript, name: str) -> Outcome | None:
    if name.startswith("refined-"):
        return q.refine
    if name.startswith("regenerated-"):
        return q.regenerate
    return q.paths.get(name)


def _path_text(
    name: str, outcome: Outcome, question: str, options: Mapping[str, str], rng: random.Random, mode: str
) -> str:
    """The simulator's plain prose concluding with the scripted answer ("Final answer: C"), or with none."""
    leaning = (
        outcome.answer if outcome.answer is not None and outcome.answer in options else next(iter(options))
    )
    core = prose.steps(question=question, options=options, chosen=leaning, rng=rng, mode=mode)
    body = styles.write_path(
        core, chosen=outcome.answer, options=options, style="plain", r1=False, answer_line=True, rng=rng
    )
    return f"Scripted path {name}.\n{body}"
