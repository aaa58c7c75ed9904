"""The simulator's answer styles: each conclusion it writes, it reads back exactly, raw or as the pipeline
stores it, without the project's parser; the plain style is the simulator's output as it always was.

The end-to-end check of what the pipeline's parser makes of these styles is
``tests/integration/test_pipeline_styles.py``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from reasonmed.parsing import clean_reasoning, extract_answer
from reasonmed.prompts import get_template
from reasonmed.sim import prose, styles
from reasonmed.sim.behaviour import Behaviour, SimRequest, asks_answer_line, concluded, respond
from reasonmed.sim.settings import SimSettings, parse_styles
from tests.unit.test_parsing import ANTICOAG, PQA

RENAL = {"A": "Serum iron level", "B": "Schizophreniform.", "C": 'A "quoted" 100/minute.', "D": "Insulin"}
TWINS = {"A": "Aspirin", "B": "aspirin", "C": "Heparin"}  # the text alone would not say which
LETTER_TEXT = {"A": "B", "B": "Heparin", "C": "Warfarin"}  # option A's text is another option's label
OPTION_SETS = pytest.mark.parametrize(
    "options",
    [ANTICOAG, PQA, RENAL, TWINS, LETTER_TEXT],
    ids=["lettered", "yes-no-maybe", "odd", "twins", "b"],
)


def _path(
    options: dict[str, str],
    chosen: str | None,
    style: styles.Style,
    *,
    seed: int,
    r1: bool = False,
    answer_line: bool = True,
) -> str:
    rng = random.Random(seed)
    label = chosen if chosen is not None else next(iter(options))
    core = prose.steps(
        question="A 30-year-old presents with fatigue. Which fits?", options=options, chosen=label, rng=rng
    )
    return styles.write_path(
        core, chosen=chosen, options=options, style=style, r1=r1, answer_line=answer_line, rng=rng
    )


# The first seeds here; the rest in tests/integration/test_sim_styles_sweep.py, so `pytest tests/unit` stays
# fast and the whole suite still sweeps every seed.
UNIT_SEEDS = range(2)
ALL_SEEDS = range(12)


def style_cases(test: Callable[..., None]) -> Callable[..., None]:
    """Each option set x style x instruct or reasoning model x answer line asked for or not (the paper's)."""
    test = pytest.mark.parametrize("answer_line", [True, False], ids=["asked", "paper"])(test)
    test = pytest.mark.parametrize("r1", [False, True], ids=["instruct", "r1"])(test)
    test = pytest.mark.parametrize("style", styles.STYLES)(test)
    return OPTION_SETS(test)


@style_cases
def test_every_style_reads_back_the_option_it_wrote(
    options: dict[str, str], style: styles.Style, r1: bool, answer_line: bool
) -> None:
    """Raw or cleaned by the pipeline, a path reads as its option; its plain form is the plain path's."""
    check_read_back(options, style, r1, answer_line, UNIT_SEEDS)


def check_read_back(
    options: dict[str, str], style: styles.Style, r1: bool, answer_line: bool, seeds: range
) -> None:
    for seed in seeds:
        for chosen in options:
            text = _path(options, chosen, style, seed=seed, r1=r1, answer_line=answer_line)
            stored = clean_reasoning(text)
            assert styles.read_answer(text, options) == chosen, text
            assert styles.read_answer(stored, options) == chosen, stored
            plain = clean_reasoning(_path(options, chosen, "plain", seed=seed, r1=r1))
            assert styles.as_plain(stored, options) == plain, stored
            if not answer_line:
                assert "Final answer:" not in text  # the paper's prompts ask for no answer line


@OPTION_SETS
def test_every_phrasing_names_each_option_once(options: dict[str, str]) -> None:
    """No conclusion can be read as two options, and none is read as the end of another."""
    for style, phrasings in styles.PHRASINGS.items():
        for phrasing in phrasings:
            names = phrasing.names(options)
            if names is None:
                continue
            for label in options:
                ending = f"(simulated) Step 4.\n\n{phrasing.write(label, options)}"
                reading = styles.read(ending, options)
                assert reading is not None and reading.label == label, (style, ending)
                assert reading.phrasing is not None
                assert reading.phrasing.names(options) is not None


def test_an_option_text_that_names_two_options_is_not_written_alone() -> None:
    """``aspirin`` could be A or B to a reader: the option-text style then names the label too."""
    for seed in range(30):
        text = _path(TWINS, "B", "option-text", seed=seed)
        assert "(Option B)" in text or "choice B" in text or "B, aspirin" in text, text[-200:]
        assert styles.read_answer(text, TWINS) == "B"


@pytest.mark.parametrize("style", styles.STYLES)
@OPTION_SETS
def test_a_path_with_no_answer_commits_to_no_option(style: styles.Style, options: dict[str, str]) -> None:
    for seed in range(6):
        for r1 in (False, True):
            text = _path(options, None, style, seed=seed, r1=r1)
            assert text.endswith(styles.HEDGE)
            for form in (text, clean_reasoning(text)):
                assert styles.read_answer(form, options) is None
                assert extract_answer(form, options) is None  # nor does the pipeline's parser find one


def test_the_plain_style_is_the_simulators_answer_line() -> None:
    text = _path(ANTICOAG, "C", "plain", seed=3)
    assert text.startswith("(simulated) Step 1 - Restating the question.\n")
    assert text.endswith(
        "\n\nFinal answer: C\nSummary: option C (Warfarin) fits best because it explains the key findings, "
        "while each alternative leaves something unexplained."
    )
    r1 = _path(ANTICOAG, "C", "plain", seed=3, r1=True)
    assert r1 == text.replace("(simulated) Step 1", "<think>\n(simulated) Step 1", 1).replace(
        "\n\nFinal answer: C", "\n</think>\n\n(simulated) Conclusion.\nFinal answer: C", 1
    )
    assert styles.as_plain(text, ANTICOAG) == text and styles.as_plain(r1, ANTICOAG) == r1
    assert extract_answer(text, ANTICOAG) == "C" == styles.read_answer(text, ANTICOAG)


def test_a_hand_written_answer_line_is_read() -> None:
    assert styles.read_answer("Protamine binds heparin.\nFinal answer: B", ANTICOAG) == "B"
    assert styles.read_answer("Protamine binds heparin. The answer is B.", ANTICOAG) is None


@pytest.mark.parametrize("profile", ["reasonmed", "paper"])
@pytest.mark.parametrize("style", styles.STYLES)
def test_the_server_writes_each_models_style_and_truncation_cuts_the_conclusion(
    profile: str, style: styles.Style
) -> None:
    """Through ``respond``: the model's style, the prompt's answer line, and the fault variants."""
    t = get_template("generate", profile)
    fields = {
        "question": "Which drug reverses heparin?",
        "context_block": "",
        "options": "A. Aspirin\nB. Protamine",
    }
    messages = tuple((m["role"], m["content"]) for m in t.render(**fields))
    model = "sim/DeepSeek-R1-Distill-Llama-70B"
    req = SimRequest(model=model, messages=messages, temperature=0.7, seed=5, n=8)
    behaviour = Behaviour(styles={model: style})
    assert asks_answer_line(req) is (profile == "reasonmed")
    options = {"A": "Aspirin", "B": "Protamine"}
    _, ok = respond(req, behaviour, correct="B")
    assert all(styles.read_answer(c.text, options) in options for c in ok)
    if profile == "paper" or style != "plain":
        assert not any("Final answer:" in c.text for c in ok)
    for variant in ("noanswer", "truncate"):
        _, bad = respond(req, behaviour, correct="B", variant=variant)  # type: ignore[arg-type]
        assert all(styles.read_answer(c.text, options) is None for c in bad), variant


def test_styles_are_settings_the_launcher_passes_on() -> None:
    settings = SimSettings(styles={"sim/a=b": "json"}, default_style="think")
    argv = settings.to_argv()
    assert argv[argv.index("--default-style") + 1] == "think"
    assert argv[argv.index("--style") + 1] == "sim/a=b=json"
    assert parse_styles(["sim/a=b=json"], "--style") == {"sim/a=b": "json"}
    with pytest.raises(ValueError, match="unknown style 'yaml'.*plain, think"):
        parse_styles(["sim/a=yaml"], "--style")
    with pytest.raises(ValueError, match="unknown style"):
        SimSettings(default_style="fancy")  # type: ignore[arg-type]


@pytest.mark.parametrize("style", styles.STYLES)
def test_the_judge_reads_a_row_by_its_summary_then_its_path(style: styles.Style) -> None:
    """A dataset row is a path, its summary, or both; a summary that names no option defers to the path."""
    path = clean_reasoning(_path(ANTICOAG, "C", style, seed=1))
    said = prose.summary(chosen="C", options=ANTICOAG, rng=random.Random(1))
    silent = prose.summary(chosen=None, options=ANTICOAG, rng=random.Random(1))
    assert concluded(path, ANTICOAG) == "C" == concluded(said, ANTICOAG)
    assert concluded(f"{path}\n\n{said}", ANTICOAG) == "C" == concluded(f"{path}\n\n{silent}", ANTICOAG)
    assert concluded(silent, ANTICOAG) is None
    other = prose.summary(chosen="A", options=ANTICOAG, rng=random.Random(1))
    assert concluded(f"{path}\n\n{other}", ANTICOAG) == "A"  # the summary is the row's last word
