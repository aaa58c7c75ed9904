"""Parsers for model outputs, checked against outputs written the way the pipeline's models answer."""

from __future__ import annotations

import dataclasses

import pytest

from reasonmed.parsing import (
    ParsedScore,
    ParsedVerdict,
    clean_reasoning,
    extract_answer,
    parse_score,
    parse_summary,
    parse_verdict,
    resolve_option,
)

ANTICOAG = {"A": "Aspirin", "B": "Clopidogrel", "C": "Warfarin", "D": "Heparin"}
RENAL = {
    "A": "Acute tubular necrosis",
    "B": "Prerenal azotemia",
    "C": "Acute interstitial nephritis",
    "D": "Renal artery stenosis",
    "E": "Obstructive uropathy",
}
PQA = {"yes": "yes", "no": "no", "maybe": "maybe"}
ROTA = {"A": "Norovirus", "B": "Adenovirus", "C": "Rotavirus", "D": "Astrovirus"}
FACTORS = {"A": "Factor VII", "B": "Factor VIII", "C": "Factor IX", "D": "Factor X"}
STEPS = {"A": "Admission", "B": "Doxycycline", "C": "Ceftriaxone", "D": "Observation"}
PROT = {"A": "Factor V Leiden", "B": "Antithrombin deficiency", "C": "Deficiency in protein C"}
NNT = {"A": "10", "B": "16", "C": "22", "D": "40"}
VIRUS = {"A": "Norovirus", "B": "Rotavirus", "C": "Adenovirus", "D": "Astrovirus"}
TEN = {label: f"Choice {label}" for label in "ABCDEFGHIJ"}
HYPERTENSION = {
    "A": "Beta-blocker therapy",
    "B": "Thiazide diuretic",
    "C": "ACE inhibitor",
    "D": "Calcium channel blocker",
}

QWEN_STRUCTURED = """\
1. **Restating the question**: A 67-year-old woman with atrial fibrillation and a mechanical mitral valve
needs long-term anticoagulation. Which drug is most appropriate?

2. **Key clinical details**: mechanical valve, AF, normal renal function.

3. **Evaluating the options**:
   - **A. Aspirin**: antiplatelet only; insufficient for a mechanical valve. Incorrect.
   - **B. Clopidogrel**: antiplatelet; does not prevent valve thrombosis. Incorrect.
   - **C. Warfarin**: vitamin K antagonist; the standard for mechanical valves. Correct.
   - **D. Heparin**: used for bridging, not long-term oral therapy. Incorrect.

4. **Comparison**: only warfarin is approved for long-term anticoagulation with mechanical valves.

Final answer: C

Summary: Mechanical heart valves require a vitamin K antagonist; DOACs and antiplatelets are inadequate.
"""

R1_THINK_THEN_ANSWER = """\
<think>
Okay, so I need to figure out the best anticoagulant here. The patient has a mechanical mitral valve.
At first I thought the answer is B, because clopidogrel is often used after stents... wait, no, that's
for coronary stents, not valves. Option A is incorrect too. A 67-year-old with a mechanical valve needs
warfarin. Let me double-check heparin: it's only for bridging.
</think>

The patient has a mechanical mitral valve, which requires lifelong vitamin K antagonist therapy.

The correct answer is **C. Warfarin**.
"""

R1_BOXED = """\
<think>
Hmm, the creatinine rose after starting NSAIDs and there's a rash and eosinophilia... that points to
an allergic interstitial process. Prerenal would have a BUN:Cr above 20, which it isn't here.
</think>

The combination of fever, rash, eosinophilia and white cell casts after a new drug is classic for
drug-induced acute interstitial nephritis.

**Final Answer**
\\boxed{C}<｜end▁of▁sentence｜>"""

HUATUO = """\
## Thinking

Alright, let's think about this. The patient is pregnant and has a DVT. Warfarin is teratogenic, so
that's out. Aspirin and clopidogrel won't treat a DVT. Heparin doesn't cross the placenta.

## Final Response

The answer is heparin, since it does not cross the placenta and is safe throughout pregnancy."""

GPT4O = """\
**Answer: D) Heparin**

**Explanation:**
- Heparin (particularly LMWH) is the anticoagulant of choice in pregnancy.
- Option C (warfarin) is contraindicated because it is teratogenic.
- Options A and B are antiplatelet agents and do not treat venous thromboembolism."""

SELF_CORRECTION = """\
Answer: A

Wait, I need to reconsider. Aspirin alone is insufficient for a mechanical valve. On reflection,
warfarin is required.

Actually, the correct answer is C."""

TRUNCATED = """\
<think>
Okay, let's consider each option. Option A is aspirin, which inhibits COX-1. A 45-year-old man with
chest pain would typically get aspirin first. But the question asks about long-term anticoagulation
for a mechanical valve, so option B"""

PROMPT_ECHO = """\
The instructions say to finish with "Final answer: <label>". Let me first evaluate every option.
Option A is incorrect. Option B is also incorrect. I am not sure between C and D."""

PQA_R1 = """\
<think>
The abstract reports that the intervention group had lower mortality (p = 0.03). So the answer might
be yes... but the confidence interval is wide. Hmm, the conclusion says the results support it though.
</think>

**Answer:** Yes

The randomized trial showed a statistically significant reduction in 30-day mortality."""

PQA_HUATUO = """\
## Thinking

The study had a small sample and the authors say the findings were inconclusive.

## Final Response

Therefore, the answer is maybe."""


EXTRACT_CASES = [
    # Qwen2.5 style
    pytest.param(QWEN_STRUCTURED, ANTICOAG, "C", id="qwen-structured-final-answer"),
    pytest.param("### Final Answer:\n**B. Clopidogrel**", ANTICOAG, "B", id="qwen-heading-next-line"),
    pytest.param("**Final Answer:**\n\nD. Heparin", ANTICOAG, "D", id="bold-heading-blank-line"),
    pytest.param("Therefore, the answer is (C).", ANTICOAG, "C", id="parenthesised-label"),
    pytest.param("Answer: C) Warfarin", ANTICOAG, "C", id="label-close-paren"),
    pytest.param("Final answer: Option C", ANTICOAG, "C", id="option-word"),
    pytest.param("Final answer: b", ANTICOAG, "B", id="lowercase-label"),
    pytest.param("So the best answer would be (d).", ANTICOAG, "D", id="lowercase-in-parens"),
    pytest.param(
        "The most likely answer is C because warfarin is required.", ANTICOAG, "C", id="most-likely"
    ),
    pytest.param(
        "The answer is A because it is the only antiplatelet here.", ANTICOAG, "A", id="label-a-connector"
    ),
    pytest.param("Answer: B. Clopidogrel", ANTICOAG, "B", id="label-dot-text"),
    pytest.param("Final answer: C. Heparin", ANTICOAG, "C", id="label-wins-over-mismatched-text"),
    pytest.param("Final answer: C<|im_end|>", ANTICOAG, "C", id="im-end-token"),
    pytest.param("**The answer is B**", ANTICOAG, "B", id="bold-sentence"),
    pytest.param("**Correct Answer: C**\n\nWarfarin is standard.", ANTICOAG, "C", id="correct-answer-colon"),
    pytest.param("Answer: A 45-year-old needs aspirin", ANTICOAG, None, id="article-a-not-label"),
    # DeepSeek-R1-Distill style
    pytest.param(R1_THINK_THEN_ANSWER, ANTICOAG, "C", id="r1-think-then-bold-answer"),
    pytest.param(R1_BOXED, RENAL, "C", id="r1-boxed-fullwidth-eos"),
    pytest.param("The final answer is $\\boxed{\\text{D}}$.", RENAL, "D", id="boxed-text"),
    pytest.param("...so \\boxed{B}.<|eot_id|>", ANTICOAG, "B", id="boxed-eot"),
    pytest.param(TRUNCATED, ANTICOAG, None, id="r1-truncated-no-answer"),
    pytest.param(
        "<think>\nI think the answer is B.\n</think>\nAfter review: Final answer: D",
        ANTICOAG,
        "D",
        id="r1-final-overrides-think",
    ),
    # HuatuoGPT-o1 style
    pytest.param(HUATUO, ANTICOAG, "D", id="huatuo-answer-by-text"),
    pytest.param(
        "## Thinking\n\nPrerenal fits.\n\n## Final Response\n\nThe correct answer is B. Prerenal azotemia.",
        RENAL,
        "B",
        id="huatuo-final-response",
    ),
    # GPT-4o style
    pytest.param(GPT4O, ANTICOAG, "D", id="gpt4o-bold-answer-paren"),
    pytest.param("The correct option is **(A) Aspirin**.", ANTICOAG, "A", id="gpt4o-correct-option"),
    pytest.param("Option B is the correct answer.", ANTICOAG, "B", id="reversed-statement"),
    pytest.param("<answer>B</answer>", ANTICOAG, "B", id="answer-tags"),
    pytest.param("Thus, **D** is the correct answer.", ANTICOAG, "D", id="reversed-after-comma-bold"),
    # "Vitamin D" is option A's text, not label D: the sentence commits to A by its text.
    pytest.param(
        "Vitamin D is the correct answer.",
        {"A": "Vitamin D", "B": "Calcium", "C": "Iron", "D": "Zinc"},
        "A",
        id="reversed-text-not-label",
    ),
    pytest.param(
        "Vitamin D is the correct answer.",
        {"A": "Calcium", "B": "Iron", "C": "Zinc", "D": "Copper"},
        None,
        id="reversed-needs-sentence-start",
    ),
    pytest.param(
        "Taken together, Norovirus (choice A) is the most consistent with the findings.",
        ROTA | {"A": "Norovirus"},
        "A",
        id="reversed-option-text",
    ),
    pytest.param("All of this points to Adenovirus (Option B).", ROTA, "B", id="points-to"),
    pytest.param("Weighing everything, I would say maybe.", PQA, "maybe", id="i-would-say"),
    pytest.param(
        "The trial was small.\n\nYES, the results support it.", PQA, "yes", id="final-line-opening-word"
    ),
    pytest.param(
        "1. Yes,\nthe answer is yes.\n\n2. No,\nno. None.", PQA, "yes", id="list-item-not-final-line"
    ),
    # answers stated as option text
    pytest.param("Final answer: Aspirin", ANTICOAG, "A", id="text-answer"),
    pytest.param(
        "So the answer is heparin, since it is safe in pregnancy.", ANTICOAG, "D", id="text-lowercase"
    ),
    pytest.param("Final answer: beta blocker therapy.", HYPERTENSION, "A", id="text-punctuation-insensitive"),
    pytest.param("Final answer: ACE inhibitor", HYPERTENSION, "C", id="text-multiword"),
    pytest.param("Final answer: low molecular weight heparin", ANTICOAG, None, id="text-no-fuzzy-match"),
    pytest.param("I think the answer is a thrombolytic agent.", ANTICOAG, None, id="article-not-label"),
    # self-corrections and out-of-range labels
    pytest.param(SELF_CORRECTION, ANTICOAG, "C", id="self-correction"),
    pytest.param("Final answer: E", ANTICOAG, None, id="out-of-range"),
    pytest.param("The answer is B.\n\nHmm.\n\nFinal answer: F", ANTICOAG, "B", id="out-of-range-falls-back"),
    pytest.param("Final answer: E", RENAL, "E", id="medqa-five-options"),
    pytest.param("The answer is E. Obstructive uropathy", RENAL, "E", id="medqa-label-and-text"),
    pytest.param("Answer: J", TEN, "J", id="ten-options"),
    pytest.param(
        "The answer is not A, since aspirin is weak.\nFinal answer: D", ANTICOAG, "D", id="negation"
    ),
    pytest.param("The answer is not A.", ANTICOAG, None, id="negation-only"),
    pytest.param("Final answer: B or C", ANTICOAG, None, id="hedge-between-options"),
    pytest.param("Final answer: C\n\nI considered B or D, but no.", ANTICOAG, "C", id="hedge-in-prose-after"),
    # prose that must not be read as an answer
    pytest.param(PROMPT_ECHO, ANTICOAG, None, id="prompt-echo-and-prose"),
    pytest.param("Option A is incorrect. A 45-year-old man presents.", ANTICOAG, None, id="prose-only"),
    # "I would go with C" commits (Llama-3-70B writes "I'll go with"; tests/fixtures/real_answers/)
    pytest.param("Warfarin is the standard; I would go with C.", ANTICOAG, "C", id="i-would-go-with"),
    pytest.param("Warfarin is the standard here.", ANTICOAG, None, id="no-explicit-statement"),
    pytest.param("", ANTICOAG, None, id="empty"),
    # a reply that is one option and nothing else (SmolLM2-135M, tests/fixtures/real_outputs/generator.jsonl)
    pytest.param("No.", PQA, "no", id="bare-label-reply"),
    pytest.param("**C**<|im_end|>", ANTICOAG, "C", id="bare-label-markup"),
    pytest.param("Warfarin\n", ANTICOAG, "C", id="bare-option-text"),
    pytest.param("Yes. no", PQA, None, id="two-bare-labels"),
    pytest.param("No. no\nyes", PQA, None, id="bare-labels-contradict"),
    pytest.param("1. Yes\n2. No", PQA, None, id="listed-options-only"),
    pytest.param("A. Yes", PQA, "yes", id="bare-option-own-letter"),
    pytest.param("C. Warfarin", ANTICOAG, "C", id="bare-label-and-text"),
    pytest.param("B. Warfarin", ANTICOAG, None, id="bare-label-text-disagree"),
    pytest.param('"no."', PQA, "no", id="bare-label-quoted"),
    pytest.param(
        "The answer, 3) maybe is indeed true - there may be other roles.",
        PQA,
        "maybe",
        id="answer-comma-own-numbering",
    ),
    pytest.param(
        "Based on the provided answer, it is possible to conclude that yes.", PQA, "yes", id="conclude-that"
    ),
    pytest.param(
        "The authors conclude that no significant difference exists.", PQA, None, id="conclude-that-prose"
    ),
    pytest.param("To find the answer, we weigh each option.", ANTICOAG, None, id="answer-comma-prose"),
    pytest.param("The answer to the given question is yes.", PQA, "yes", id="answer-to-the-question"),
    pytest.param(
        "2. The answer to this question would be yes, as a treatment exists.",
        PQA,
        "yes",
        id="answer-to-this-question-would-be",
    ),
    pytest.param(
        "The answer to the question about cost would be no.", PQA, None, id="answer-to-another-question"
    ),
    pytest.param("Final answer: 2) No", PQA, "no", id="own-numbering-after-statement"),
    # PubMedQA yes/no/maybe
    pytest.param("Final answer: Yes", PQA, "yes", id="pqa-yes"),
    pytest.param("Based on the abstract, the final answer is: no", PQA, "no", id="pqa-final-answer-is"),
    pytest.param(PQA_HUATUO, PQA, "maybe", id="pqa-huatuo-maybe"),
    pytest.param(PQA_R1, PQA, "yes", id="pqa-r1-bold-answer"),
    pytest.param("$\\boxed{No}$", PQA, "no", id="pqa-boxed"),
    pytest.param("The answer is no longer debated in the literature.", PQA, None, id="pqa-no-as-word"),
    pytest.param("Answer: B", PQA, None, id="pqa-letter-not-an-option"),
    # Schema-constrained replies (structured output): the JSON answer is the answer
    pytest.param(
        '{"reasoning": "The abstract says yes.", "answer": "no"}', PQA, "no", id="json-answer-beats-reasoning"
    ),
    pytest.param('{"reasoning": "x", "answer": "Maybe"}', PQA, "maybe", id="json-answer-label-case"),
    pytest.param('{"reasoning": "x", "answer": "B"}', ANTICOAG, "B", id="json-answer-letter"),
    pytest.param('{"answer": "Z"}\nFinal answer: C', ANTICOAG, "C", id="json-answer-unknown-falls-back"),
    pytest.param('{"reasoning": "x", "answer": true}', PQA, None, id="json-answer-not-text"),
    pytest.param('{"reasoning": "the answer is yes"', PQA, "yes", id="json-cut-off-reads-statement"),
    # Forms real models write (tests/fixtures/real_answers/, labelled by hand)
    pytest.param("The most likely cause is:\n\nC. Rotavirus", ROTA, "C", id="conclusion-colon-next-line"),
    pytest.param(
        "Deficiency of factor X (choice D) explains the bleeding.", FACTORS, None, id="choice-in-prose-only"
    ),
    pytest.param(
        "The most likely cause is deficiency of factor X (choice D).",
        FACTORS,
        "D",
        id="conclusion-choice-ref",
    ),
    pytest.param(
        "Thus the best first step is admission (Option A).", STEPS, "A", id="conclusion-option-ref-paren"
    ),
    pytest.param("The answer is:\n\n**D) Heparin**", ANTICOAG, "D", id="final-bold-label-text"),
    # a heading that is not an answer statement may introduce anything ("Ruled out:"): no commitment
    pytest.param("Weighing it all:\n\n**D) Heparin**", ANTICOAG, None, id="final-line-after-other-heading"),
    pytest.param("Reasoning here.\n<answer>yes</answer>", PQA, "yes", id="answer-tag-word"),
    pytest.param("The trial was small.\n\n**Maybe**", PQA, "maybe", id="final-bold-word"),
    pytest.param("This leaves us with b) Clopidogrel.", ANTICOAG, "B", id="leaves-us-with-lowercase"),
    pytest.param("Iron studies are needed.\nA) Aspirin", ANTICOAG, "A", id="final-line-label-text"),
    pytest.param("Heparin is safe.\nC) Aspirin", ANTICOAG, None, id="final-line-label-text-disagree"),
    pytest.param('{"answer_choice": "C"}', ANTICOAG, "C", id="json-answer-choice"),
    pytest.param('{"answer_choice": "C. Warfarin."}', ANTICOAG, "C", id="json-answer-choice-text"),
    pytest.param("So the next best step would be doxycycline.", STEPS, "B", id="conclusion-option-text"),
    pytest.param(
        "The most likely diagnosis would be a deficiency in protein C.", PROT, "C", id="article-text"
    ),
    pytest.param("YES, the results suggest a benefit.", PQA, "yes", id="pqa-opening-word"),
    pytest.param("No, the answer is not yes.", PQA, None, id="pqa-opening-word-names-another"),
    pytest.param("Final answer: the answer is A, B, and C", ANTICOAG, None, id="several-labels-list"),
    pytest.param("The answer is (B) and (D).", ANTICOAG, None, id="several-wrapped-labels"),
    pytest.param("The answer is either B or C.", ANTICOAG, None, id="either-or"),
    pytest.param("Therefore, the correct options would be:\n- Warfarin (C)", ANTICOAG, None, id="plural"),
    pytest.param("Answer choice B is correct.", ANTICOAG, "B", id="answer-choice-is-correct"),
    pytest.param("So B is the answer.\n\nB", ANTICOAG, "B", id="is-the-answer-then-bare-line"),
    pytest.param("the closest answer choice is B) 16.", NNT, "B", id="closest-answer-choice"),
    pytest.param(
        "E) Obstructive uropathy is the most likely cause. Prerenal azotemia (B) is less likely.",
        RENAL,
        "E",
        id="opening-label-text",
    ),
    pytest.param("A) Aspirin: too weak.\nB) Clopidogrel: no.", ANTICOAG, None, id="opening-walk"),
    pytest.param("It is relevant in all except Heparin.", ANTICOAG, "D", id="all-except"),
    pytest.param("Which is most likely? C.", ANTICOAG, "C", id="trailing-label-after-question"),
    pytest.param(
        "The answer is (A).\n\nQuestion:\nWhich drug?\nAnswer: The answer is (C).",
        ANTICOAG,
        "A",
        id="run-on-invented-question",
    ),
    pytest.param("The final answer: a.", {"A": "ab", "B": "cd", "C": "bd", "D": "ac"}, None, id="sub-item"),
    # Adversarial forms (a review of this parser): a sentence that rejects, doubts, conditions or lists its
    # option commits to none.
    *[
        pytest.param(text, VIRUS, None, id=f"refuse-{i}")
        for i, text in enumerate(
            [
                "A) Norovirus is unlikely here because the incubation period is 2 weeks.\n\nThe clinical "
                "picture fits a different pathogen better.",
                "**A) Norovirus** - ruled out: incubation too long.\n\nFurther testing is required.",
                "B) Rotavirus would be wrong here.",
                "Rotavirus is the most likely cause in infants, but in this adult Norovirus is more likely.",
                "Rotavirus is the best answer? I doubt it.",
                "Rotavirus is the most likely cause only if the patient is an infant, which she is not.",
                "The most likely cause is B? It cannot be.",
                "The most likely diagnosis is not consistent with (B).",
                "All of this points to a viral cause, not Rotavirus (B).",
                "The best choice would be to exclude Rotavirus (B).",
                "Option B is correct in children; option A is correct in adults.",
                "I would go with B if the patient were a child, but here it's C? I'm not sure.",
                "I will choose B if the lab confirms it.",
                "We'd select B for children and C for adults.",
                "This leaves us with B to rule out.",
                "That leaves Rotavirus as the least likely option.",
                "That leaves Rotavirus, Adenovirus and Astrovirus to consider.",
                "The most likely diagnosis is Rotavirus, Adenovirus or Astrovirus.",
                "The most likely diagnosis in this case would be A) Norovirus or B) Rotavirus.",
                "The answer is B) Rotavirus or C) Adenovirus.",
                "Ruled out:\nRotavirus",
                "Least likely option:\nRotavirus",
                "Incorrect:\nB",
                "I am not certain.\nRotavirus?",
            ]
        )
    ],
    # It changes its mind in words no rule reads: none (a miss), never the "No" it opened with.
    pytest.param(
        "No, wait. Let me reconsider: the trial found benefit, so yes.", PQA, None, id="pqa-retract"
    ),
    pytest.param(
        "Yes, that is a good question. Let me think.\n\nThe trial randomised 200 patients.",
        PQA,
        None,
        id="pqa-opening-discourse",
    ),
    pytest.param(
        "1. Identify the drug and its half-life. It is 4 h.",
        {"A": "1", "B": "2", "C": "3", "D": "4"},
        None,
        id="numbered-step-not-option",
    ),
    pytest.param(
        "## Thinking\nIt fits.\n## Answer\nFinal answer: A", ANTICOAG, "A", id="thinking-then-answer"
    ),
    pytest.param("I will <think> about it. The answer is A.", ANTICOAG, "A", id="think-word-inline"),
]


@pytest.mark.parametrize(("text", "options", "expected"), EXTRACT_CASES)
def test_extract_answer(text: str, options: dict[str, str], expected: str | None) -> None:
    assert extract_answer(text, options) == expected


def test_extract_answer_case_table_is_large() -> None:
    assert len(EXTRACT_CASES) >= 40


def test_extract_answer_returns_label_as_spelled_in_options() -> None:
    lowercase_labels = {"a": "Aspirin", "b": "Warfarin"}
    assert extract_answer("Final answer: B", lowercase_labels) == "b"
    assert extract_answer("Final answer: MAYBE.", PQA) == "maybe"


def test_extract_answer_works_on_cleaned_text_too() -> None:
    for text in (R1_THINK_THEN_ANSWER, R1_BOXED, HUATUO, GPT4O):
        options = RENAL if text is R1_BOXED else ANTICOAG
        assert extract_answer(clean_reasoning(text), options) == extract_answer(text, options)


# --------------------------------------------------------------------------------------------------
# parse_verdict
# --------------------------------------------------------------------------------------------------

VERDICT_CASES = [
    pytest.param(
        '{"verdict": "Correct", "reason": "Identifies the mechanical valve and rules out antiplatelets."}',
        ParsedVerdict("correct", "Identifies the mechanical valve and rules out antiplatelets."),
        id="valid-correct",
    ),
    pytest.param(
        '{"verdict": "Error", "reason": "Chooses aspirin, ignoring the mechanical valve."}',
        ParsedVerdict("error", "Chooses aspirin, ignoring the mechanical valve."),
        id="valid-error",
    ),
    pytest.param(
        '```json\n{\n  "verdict": "Error",\n  "reason": "States warfarin is safe in pregnancy.",\n}\n```',
        ParsedVerdict("error", "States warfarin is safe in pregnancy."),
        id="fenced-trailing-comma",
    ),
    pytest.param(
        "{'verdict': 'Correct', 'reason': \"Evaluates each option against the patient's history.\"}",
        ParsedVerdict("correct", "Evaluates each option against the patient's history."),
        id="single-quoted",
    ),
    pytest.param(
        'After reviewing the reasoning, here is my assessment:\n{"verdict": "Incorrect", "reason": "Misreads '
        'the BUN:Cr ratio."}\nLet me know if you need more detail.',
        ParsedVerdict("error", "Misreads the BUN:Cr ratio."),
        id="prose-wrapped-incorrect",
    ),
    pytest.param(
        '{"Verdict": "CORRECT", "Reason": "Sound."}', ParsedVerdict("correct", "Sound."), id="key-case"
    ),
    pytest.param('{"VERDICT": "wrong"}', ParsedVerdict("error", "(no reason given)"), id="wrong-no-reason"),
    pytest.param('{"verdict": "correct"}', ParsedVerdict("correct", ""), id="correct-no-reason"),
    pytest.param(
        'Draft: {"verdict": "Correct", "reason": "x"}\nOn reflection: {"verdict": "Error", "reason": "Skips D."}',
        ParsedVerdict("error", "Skips D."),
        id="last-object-wins",
    ),
    pytest.param(
        '{"verdict": "Error", "reason": "Wrong drug."}\n{"confidence": 0.9}',
        ParsedVerdict("error", "Wrong drug."),
        id="later-object-without-verdict-ignored",
    ),
    pytest.param(
        "<think>\nThe path concludes C, matching the key {mostly}.\n</think>\n"
        '{"verdict": "Correct", "reason": "Matches the answer."}',
        ParsedVerdict("correct", "Matches the answer."),
        id="r1-think-before-json",
    ),
    pytest.param(
        '{"verdict": "Error", "reason": "Uses {x} notation incorrectly."}',
        ParsedVerdict("error", "Uses {x} notation incorrectly."),
        id="braces-inside-reason",
    ),
    pytest.param(
        "\u201cverdict\u201d wrapped: {\u201cverdict\u201d: \u201cError\u201d, \u201creason\u201d: \u201cBad.\u201d}",
        ParsedVerdict("error", "Bad."),
        id="smart-quotes",
    ),
    pytest.param(
        "{'verdict': 'Error', 'reason': 'Ignores the patient\u2019s renal function.'}",
        ParsedVerdict("error", "Ignores the patient\u2019s renal function."),
        id="curly-apostrophe-in-python-dict",
    ),
    pytest.param(
        "Verdict: Error\nReason: The path attributes the rash to prerenal azotemia.",
        ParsedVerdict("error", "The path attributes the rash to prerenal azotemia."),
        id="fallback-lines",
    ),
    pytest.param("**Verdict** - Correct", ParsedVerdict("correct", ""), id="fallback-dash-bold"),
    pytest.param(
        '{"verdict": "Error", "reason": "The path ignores the eosinophilia',
        ParsedVerdict("error", "The path ignores the eosinophilia"),
        id="truncated-json-fallback",
    ),
    pytest.param("The reasoning looks fine to me overall.", None, id="no-verdict"),
    pytest.param('{"verdict": "Partially correct", "reason": "hmm"}', None, id="unknown-verdict-value"),
    pytest.param('{"verdict": "Correct" | "Error", "reason": "<1-2 sentences>"}', None, id="template-echo"),
    # SmolLM2-135M echoes the prompt's wording (tests/fixtures/real_outputs/verifier.jsonl)
    pytest.param('{"verdict": "Correct" or "Error", "reason":"No"}', None, id="template-echo-or"),
    pytest.param("Verdict: correct or not, hard to say.", None, id="hedged-verdict-line"),
    pytest.param('{"verdict": "No."}', None, id="answer-label-no-is-not-a-verdict"),
    pytest.param('{"verdict": "Yes", "reason": "yes"}', None, id="answer-label-yes-is-not-a-verdict"),
    pytest.param('{"verdict": "Pass", "reason": "Sound."}', ParsedVerdict("correct", "Sound."), id="pass"),
    pytest.param('{"reason": "no verdict key"}', None, id="missing-verdict-key"),
    pytest.param("", None, id="empty"),
    # The verifier's reading of the path's own conclusion, kept as written (resolve_option maps it)
    pytest.param(
        '{"verdict": "Correct", "path_answer": "C", "reason": "Sound."}',
        ParsedVerdict("correct", "Sound.", "C"),
        id="path-answer",
    ),
    pytest.param(
        '{"verdict": "Error", "path_answer": "none", "reason": "No conclusion."}',
        ParsedVerdict("error", "No conclusion.", "none"),
        id="path-answer-none",
    ),
    pytest.param(
        "{'verdict': 'Error', 'path_answer': 'B. Left circumflex', 'reason': 'Wrong artery.'}",
        ParsedVerdict("error", "Wrong artery.", "B. Left circumflex"),
        id="path-answer-with-text-single-quotes",
    ),
    pytest.param(
        '{"verdict": "Correct", "path_answer": "", "reason": "Fine."}',
        ParsedVerdict("correct", "Fine.", None),
        id="path-answer-empty",
    ),
    pytest.param(
        '{"verdict": "Correct", "path_answer": true, "reason": "Fine."}',
        ParsedVerdict("correct", "Fine.", None),
        id="path-answer-not-text",
    ),
]

RESOLVE_OPTIONS = {"A": "Left anterior descending", "B": "Left circumflex", "C": "Right coronary"}
RESOLVE_CASES = [
    ("C", "C"),
    ("c", "C"),
    ("(B)", "B"),
    ("B. Left circumflex", "B"),
    ("Right coronary", "C"),
    ("right coronary artery", None),  # not an option's text exactly: never fuzzy
    ("none", None),
    ("None of the options", None),
    ("B or C", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("stated", "expected"), RESOLVE_CASES)
def test_resolve_option(stated: str | None, expected: str | None) -> None:
    assert resolve_option(stated, RESOLVE_OPTIONS) == expected


@pytest.mark.parametrize(("text", "expected"), VERDICT_CASES)
def test_parse_verdict(text: str, expected: ParsedVerdict | None) -> None:
    assert parse_verdict(text) == expected


def test_parsed_verdict_is_frozen() -> None:
    verdict = ParsedVerdict("correct", "")
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.outcome = "error"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------
# parse_score
# --------------------------------------------------------------------------------------------------

SCORE_CASES = [
    pytest.param(
        '{"score": 4, "justification": "Clear and complete, minor redundancy."}',
        ParsedScore(4, "Clear and complete, minor redundancy."),
        id="valid",
    ),
    pytest.param(
        '```json\n{"score": 5, "justification": "Flawless."}\n```', ParsedScore(5, "Flawless."), id="fenced"
    ),
    pytest.param(
        "{'Score': 3, 'justification': 'Adequate.',}", ParsedScore(3, "Adequate."), id="single-quotes-comma"
    ),
    pytest.param('{"score": 0, "justification": "Irrelevant."}', ParsedScore(0, "Irrelevant."), id="zero"),
    pytest.param('{"score": 4.0, "justification": "Good."}', ParsedScore(4, "Good."), id="integral-float"),
    pytest.param('{"score": "2", "justification": "Weak."}', ParsedScore(2, "Weak."), id="string-number"),
    pytest.param('{"score": 4.5, "justification": "Between."}', None, id="fractional-float"),
    pytest.param('{"score": 7, "justification": "Great."}', None, id="above-range"),
    pytest.param('{"score": -1}', None, id="negative"),
    pytest.param('{"score": true}', None, id="boolean"),
    pytest.param(
        'Initial: {"score": 2, "justification": "a"}\nRevised: {"score": 5, "justification": "b"}',
        ParsedScore(5, "b"),
        id="last-valid-object-wins",
    ),
    pytest.param(
        "Score: 4/5\nJustification: Covers every option but is verbose.",
        ParsedScore(4, "Covers every option but is verbose."),
        id="fallback-fraction",
    ),
    pytest.param("**Score:** 3", ParsedScore(3, ""), id="fallback-bold"),
    pytest.param("Score: 8/10", None, id="fallback-other-scale"),
    # SmolLM2-135M answers with ranges (tests/fixtures/real_outputs/ranker.jsonl)
    pytest.param('{"score": 5-10, "justification": "improved education"}', None, id="range-not-a-score"),
    pytest.param("Score: 3 to 4", None, id="range-words"),
    pytest.param("Score: 15-20", None, id="range-no-digit-backtracking"),
    pytest.param("I would rate this reasoning highly.", None, id="unparseable"),
    pytest.param("", None, id="empty"),
]


@pytest.mark.parametrize(("text", "expected"), SCORE_CASES)
def test_parse_score(text: str, expected: ParsedScore | None) -> None:
    assert parse_score(text) == expected


# --------------------------------------------------------------------------------------------------
# clean_reasoning and parse_summary
# --------------------------------------------------------------------------------------------------


def test_clean_reasoning_keeps_think_content_and_drops_tags() -> None:
    cleaned = clean_reasoning(R1_THINK_THEN_ANSWER)
    assert "<think>" not in cleaned and "</think>" not in cleaned
    assert cleaned.startswith("Okay, so I need to figure out")
    assert "The correct answer is **C. Warfarin**." in cleaned


def test_clean_reasoning_huatuo_headings() -> None:
    cleaned = clean_reasoning(HUATUO)
    assert "## Thinking" not in cleaned and "## Final Response" not in cleaned
    assert cleaned.startswith("Alright, let's think about this.")
    assert cleaned.endswith("safe throughout pregnancy.")


def test_clean_reasoning_special_tokens_and_role() -> None:
    raw = "<|im_start|>assistant\n<think>\nStep one.\n</think>\nFinal answer: C<|im_end|><|eot_id|>"
    assert clean_reasoning(raw) == "Step one.\n\nFinal answer: C"
    assert clean_reasoning("assistant\n\nThe answer is B.<｜end▁of▁sentence｜>") == "The answer is B."
    assert clean_reasoning("Assistant: The answer is B.") == "The answer is B."
    assert clean_reasoning("<s> Heparin is preferred.</s>") == "Heparin is preferred."


def test_clean_reasoning_answer_tags() -> None:
    assert clean_reasoning("Reasoning here.\n<answer>C</answer>") == "Reasoning here.\n\nC"


def test_clean_reasoning_whitespace() -> None:
    raw = "Line one.   \r\nLine two.\t\r\n\r\n\r\n\r\n\r\nLine three.\n\n\n"
    assert clean_reasoning(raw) == "Line one.\nLine two.\n\nLine three."


def test_clean_reasoning_keeps_single_blank_lines_and_indentation() -> None:
    raw = "Options:\n   - A. Aspirin\n\nConclusion."
    assert clean_reasoning(raw) == raw


def test_clean_reasoning_unclosed_think_keeps_text_and_says_it_was_cut_off() -> None:
    """A path cut off while thinking keeps its text and ends with the line that says so, so the cleaned path
    itself reads as stating no answer (extract_answer(clean_reasoning(x)) is how the pipeline reads it)."""
    cleaned = clean_reasoning(TRUNCATED)
    assert cleaned.startswith("Okay, let's consider each option.")
    assert cleaned.endswith("so option B\n\n[The reasoning was cut off here, before a final answer.]")
    assert clean_reasoning(cleaned) == cleaned
    assert clean_reasoning(TRUNCATED, mark_cut_off=False).endswith("so option B")
    # Tentative answers inside the cut-off thinking are not its answer.
    cut = "<think>\nSo the answer is B. Wait, maybe C. I think the answer is C) Warfarin"
    assert extract_answer(cut, ANTICOAG) is None
    assert extract_answer(clean_reasoning(cut), ANTICOAG) is None
    assert extract_answer(clean_reasoning(cut + "\n</think>\n\nFinal answer: C"), ANTICOAG) == "C"
    huatuo_cut = "## Thinking\n\nThe answer is heparin, I think."
    assert extract_answer(clean_reasoning(huatuo_cut), ANTICOAG) is None


def test_clean_reasoning_keeps_ordinary_words() -> None:
    text = "The assistant physician's thinking was wrong.\nWe think the answer is C."
    assert clean_reasoning(text) == text


def test_clean_reasoning_is_idempotent() -> None:
    for raw in (R1_THINK_THEN_ANSWER, R1_BOXED, HUATUO, QWEN_STRUCTURED, TRUNCATED):
        once = clean_reasoning(raw)
        assert clean_reasoning(once) == once


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Warfarin is required for mechanical valves.<|im_end|>",
            "Warfarin is required for mechanical valves.",
            id="plain",
        ),
        pytest.param(
            "<think>\nThe user wants a short summary. Let me be concise.\n</think>\n\n"
            "Heparin is safe in pregnancy because it does not cross the placenta.",
            "Heparin is safe in pregnancy because it does not cross the placenta.",
            id="think-dropped",
        ),
        pytest.param(
            "## Thinking\nDraft.\n## Final Response\nSummary: Drug-induced AIN explains the rash.",
            "Drug-induced AIN explains the rash.",
            id="huatuo-final-response-and-label",
        ),
        pytest.param("**Summary:**\nThe answer is C.", "The answer is C.", id="bold-label"),
        pytest.param(
            "<think>\nShort summary of the answer.", "Short summary of the answer.", id="unclosed-think"
        ),
        pytest.param("<think>\n</think>\n<|eot_id|>", None, id="only-scaffolding"),
        pytest.param("<<<\nThe answer is yes.\n>>>", "The answer is yes.", id="echoed-prompt-fence"),
        pytest.param("<<<\n>>>", None, id="only-prompt-fence"),
        pytest.param("Compare a <<< b inline.", "Compare a <<< b inline.", id="inline-angles-kept"),
        pytest.param("   \n\n", None, id="blank"),
        pytest.param("", None, id="empty"),
    ],
)
def test_parse_summary(text: str, expected: str | None) -> None:
    assert parse_summary(text) == expected
