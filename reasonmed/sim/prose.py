"""The simulator's wording: multi-step medical reasoning, verdict reasons, scores and summaries.

Pure text composition from a parsed prompt, a chosen label and a seeded ``random.Random``; every
decision (which label, which verdict) is taken in ``behaviour`` and only phrased here. Text quoted
from the prompt is defused so the only explicit answer statement in a path is the one written here.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

from reasonmed.parsing import ANSWER_QUALIFIER

SIM_PREFIX = "(simulated) "

_BACKGROUND = (
    "The underlying pathophysiology matters here: the findings point to one specific mechanism rather than a nonspecific process.",
    "Anatomy constrains the explanation: the structures involved, their innervation and their blood supply limit which processes are plausible.",
    "The typical presentation, the time course and the patient's age and risk factors narrow the differential considerably.",
    "Investigations such as laboratory values and imaging have to be read against the pretest probability, not in isolation.",
    "Pharmacology is relevant: mechanism of action, adverse effects and contraindications separate choices that otherwise look alike.",
    "Epidemiology and first-line management guidelines favour the most common, best-supported explanation in this setting.",
    "The physiological consequences of the process, for perfusion, electrolytes and organ function, predict which findings should be present.",
    "Classic exam traps in this area confuse a risk factor with a cause, or an associated finding with the defining one.",
)
_FITS = (
    "This is consistent with the key findings and explains the presentation as a whole.",
    "This fits the mechanism identified above and accounts for the most discriminating detail.",
    "This matches the typical presentation and is supported by the background reasoning.",
    "This explains both the timing and the pattern of findings without extra assumptions.",
)
_MISFITS = (
    "This does not account for the most discriminating detail in the stem.",
    "This would produce a different pattern of findings from the one described.",
    "This is a recognised trap: plausible at first glance, but it conflicts with the time course.",
    "This is less common in this setting and leaves key findings unexplained.",
    "This is related to the topic but does not address what the question asks.",
    "This would be expected to show additional features that are absent here.",
)
_SECOND_LOOK = (
    "Its supporting evidence is indirect at best.",
    "It would matter only if the history were different.",
    "Nothing in the stem points towards it specifically.",
    "It remains on the list only until the key detail is weighed.",
)
_CUE = re.compile(
    r"\d|year-old|mg|mm|presents|history|examination|laborator|shows|reveals|reports", re.IGNORECASE
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_DEFUSE = re.compile(
    rf"answer|boxed|(?P<qualified>\b{ANSWER_QUALIFIER})(?P<noun>\s+(?:option|choice|response)\b)?"
    r"|\b(?P<conclude>conclude[sd]?)(?=\s+that\b)"
    r"|\b(?P<pick>go\s+with|choose|select|pick|leaves(?:\s+us)?(?:\s+with)?|except|say|answering"
    r"|points?\s+to(?:wards)?)\b",
    re.IGNORECASE,
)
_CONCLUDE_AS_FIND = {"conclude": "find", "concludes": "finds", "concluded": "found"}


def _defused(m: re.Match[str]) -> str:
    if m.group("qualified"):
        # "the correct option is B" -> "the favoured one is B"; "the best reply would be" -> "the favoured ..."
        return "favoured" + (" one" if m.group("noun") else "")
    if m.group("conclude"):
        word = m.group("conclude")
        found = _CONCLUDE_AS_FIND[word.lower()]
        return found.capitalize() if word[0].isupper() else found
    if m.group("pick"):
        word = m.group("pick").lower()
        return "but" if word == "except" else "relates to" if word.startswith("point") else "weigh"
    return "reply" if m.group(0).lower() == "answer" else "box"


def defuse(text: str) -> str:
    """Quoted prompt text must not read as an answer statement to the parsers: a reviewer's "the correct
    option is B" quoted by a refined path that states no answer of its own would otherwise be its answer.
    Every word an answer statement of ``parsing.extract_answer`` turns on is replaced."""
    return _DEFUSE.sub(_defused, text)


def clip_words(text: str, n: int) -> str:
    words = text.split()
    return " ".join(words) if len(words) <= n else " ".join(words[:n]) + " ..."


def _opt(label: str, options: Mapping[str, str]) -> str:
    return f"option {label} ({defuse(clip_words(options[label], 12))})"


def key_details(question: str, rng: random.Random) -> list[str]:
    sentences = [s for s in _SENTENCE.split(question) if s.strip()]
    cued = [s for s in sentences if _CUE.search(s)] or sentences
    k = min(len(cued), rng.randint(1, 3))
    return [defuse(clip_words(s, 22)) for s in cued[:k]]


def steps(
    *,
    question: str,
    options: Mapping[str, str],
    chosen: str,
    rng: random.Random,
    mode: str = "generate",
    errors: Sequence[str] = (),
) -> str:
    """A restate / key details / each option / rule out / compare chain leaning towards ``chosen``, labelled
    simulated; ``styles.write_path`` frames it and writes its conclusion."""
    labels = list(options)
    others = [lab for lab in labels if lab != chosen]
    runner_up = rng.choice(others) if others else chosen
    lines: list[str] = []
    if mode == "refine":
        lines.append("Revising the earlier reasoning with the reviewer's points in mind.")
        lines += [
            f'- Addressing: "{defuse(clip_words(e, 30))}"; this step is corrected below.' for e in errors[:4]
        ]
        lines.append("")
    elif mode == "regenerate":
        lines.append("Starting again from first principles and avoiding the traps the reviewer listed.")
        lines += [f'- Trap to avoid: "{defuse(clip_words(e, 30))}".' for e in errors[:4]]
        lines.append("")
    lines.append("Step 1 - Restating the question.")
    lines.append(f'The question asks: "{defuse(clip_words(question, 30))}"')
    lines.append("")
    lines.append("Step 2 - Key clinical details and background.")
    lines += [f"- {d}" for d in key_details(question, rng)]
    lines += rng.sample(_BACKGROUND, rng.randint(1, 4))
    lines.append("")
    lines.append("Step 3 - Evaluating each option.")
    for lab in labels:
        if lab == chosen:
            verdict = rng.choice(_FITS)
        else:
            verdict = rng.choice(_MISFITS) + (" " + rng.choice(_SECOND_LOOK) if rng.random() < 0.5 else "")
        name = _opt(lab, options)
        lines.append(f"- {name[0].upper()}{name[1:]}: {verdict}")
    lines.append("")
    lines.append("Step 4 - Ruling out and comparing.")
    ruled_out = [lab for lab in others if lab != runner_up]
    if ruled_out:
        lines.append(f"Options {', '.join(ruled_out)} can be ruled out on the points above.")
    if runner_up != chosen:
        lines.append(
            f"Comparing what remains, {_opt(chosen, options)} explains more of the findings than {_opt(runner_up, options)}."
        )
    return SIM_PREFIX + "\n".join(lines).strip()


def plain_conclusion(chosen: str, options: Mapping[str, str]) -> str:
    """The simulator's own conclusion: the ``Final answer:`` line its prompts ask for, then a summary line."""
    return (
        f"Final answer: {chosen}\n"
        f"Summary: {_opt(chosen, options)} fits best because it explains the key findings, "
        "while each alternative leaves something unexplained."
    )


def verdict_reason(
    *,
    correct_verdict: bool,
    chosen: str | None,
    answer: str,
    options: Mapping[str, str],
    flipped: bool,
    rng: random.Random,
) -> str:
    """One or two sentences naming the option the path reached and the correct one (labelled simulated)."""
    return SIM_PREFIX + _verdict_reason(
        correct_verdict=correct_verdict,
        chosen=chosen,
        answer=answer,
        options=options,
        flipped=flipped,
        rng=rng,
    )


def _verdict_reason(
    *,
    correct_verdict: bool,
    chosen: str | None,
    answer: str,
    options: Mapping[str, str],
    flipped: bool,
    rng: random.Random,
) -> str:
    right = _opt(answer, options) if answer in options else f"option {answer}"
    if chosen is None:
        base = f"The reasoning never states a final choice; the correct one is {right}."
    elif chosen == answer:
        base = f"The reasoning reaches {_opt(chosen, options)}, which matches the correct option, {right}."
    else:
        base = f"The reasoning concludes with {_opt(chosen, options)}, but the correct option is {right}."
    if correct_verdict and not flipped:
        return (
            base
            + " "
            + rng.choice(
                (
                    "The key features are identified and every option is weighed.",
                    "The logic is sound and no factual errors were found.",
                )
            )
        )
    if correct_verdict:  # the verifier is wrong here, by configuration
        return base + " The remaining steps look acceptable."
    if flipped:
        return (
            base
            + " However, the evaluation of the alternatives is incomplete and one step overstates the evidence."
        )
    return (
        base
        + " "
        + rng.choice(
            (
                "It misreads the most discriminating detail and dismisses the correct option too early.",
                "It weighs a risk factor as if it were the cause, which leads away from the correct option.",
                "The comparison of the final candidates relies on a factual error about the mechanism.",
            )
        )
    )


_JUSTIFY = {
    5: "Flawless and complete: every option is weighed precisely and the key findings are tied to the mechanism.",
    4: "Correct and well organised, with minor gaps in how the alternatives are excluded.",
    3: "Correct but with gaps and some padding in the evaluation of the options.",
    2: "Reaches the correct option but the reasoning is thin and partly generic.",
}


def justification(score: int) -> str:
    return f"{SIM_PREFIX}{_JUSTIFY[score]}"


def judge_justification(overall: int) -> str:
    if overall >= 8:
        return f"{SIM_PREFIX}Accurate and well reasoned; the key findings are tied to the right conclusion."
    if overall >= 6:
        return f"{SIM_PREFIX}Reaches the right conclusion, with gaps in how the alternatives are excluded."
    return (
        f"{SIM_PREFIX}The conclusion does not match the key findings, so the clinical reasoning is unsound."
    )


_SUMMARY = re.compile(
    r"(?:\A|\n)(?:The answer is (?P<label>[^\s(]+) \(|The reasoning does not commit )[^\n]*\(simulated summary\)\Z"
)


def read_summary(text: str) -> tuple[int, str | None] | None:
    """Where the summary ``summary`` writes starts when it ends ``text``, and the label it states (None: it
    states none); None when ``text`` does not end with one."""
    m = _SUMMARY.search(text)
    if m is None:
        return None
    return m.start() + (text[m.start()] == "\n"), m["label"]


def summary(*, chosen: str | None, options: Mapping[str, str], rng: random.Random) -> str:
    """ "The answer is X (option text). ..." from the path's own conclusion."""
    if chosen is None:
        return "The reasoning does not commit to one of the options, so no definite conclusion can be stated. (simulated summary)"
    others = [lab for lab in options if lab != chosen]
    alt = (
        f" The alternatives ({', '.join(others)}) each leave part of the presentation unexplained."
        if others
        else ""
    )
    return (
        f"The answer is {chosen} ({defuse(options[chosen])}). "
        + rng.choice(
            (
                "It is the only option that accounts for the key clinical findings and their time course.",
                "It fits the mechanism identified in the reasoning and the most discriminating detail of the case.",
                "It matches the typical presentation and is consistent with the investigations described.",
            )
        )
        + alt
        + " (simulated summary)"
    )


NO_VERDICT = (
    f"{SIM_PREFIX}The reasoning path was read in full. The reviewer would like to look at the clinical details "
    "once more before giving a judgement on it."
)
NO_SCORE = (
    f"{SIM_PREFIX}The reasoning is readable and addresses the question; a grade will follow after a closer look "
    "at how the alternatives are handled."
)
