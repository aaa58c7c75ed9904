"""Prompt profiles: every role's prompt in each profile, rendered for a MedQA, a MedMCQA, a PubMedQA and an
MMLU question, equals its reviewed snapshot under tests/snapshots/prompts/; the simulator recognises every
role of every profile; per-agent prompt files are checked when the pipeline file loads.

After an intended prompt change: REASONMED_UPDATE_SNAPSHOTS=1 pytest tests/unit/test_prompt_profiles.py, then
review the diff of the snapshot files before committing them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from reasonmed.agents.base import QuestionView
from reasonmed.config import ConfigError, load_pipeline_config
from reasonmed.prompts import PROFILES, ROLES, format_errors, get_template
from reasonmed.sim.behaviour import detect_role, parse_prompt

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots" / "prompts"
UPDATE = os.environ.get("REASONMED_UPDATE_SNAPSHOTS") == "1"
REPO = Path(__file__).resolve().parents[2]

QUESTIONS = {
    "medqa": QuestionView(
        id=1,
        content_hash="h1",
        source="medqa",
        question="A 24-year-old woman has fatigue, pallor and koilonychia. Her haemoglobin is 9.1 g/dL with a low "
        "mean corpuscular volume and a low serum ferritin. Which is the most likely cause of her anaemia?",
        context=None,
        options={
            "A": "Vitamin B12 deficiency",
            "B": "Iron deficiency",
            "C": "Beta-thalassaemia trait",
            "D": "Anaemia of chronic disease",
            "E": "Folate deficiency",
        },
        answer="B",
    ),
    "medmcqa": QuestionView(
        id=2,
        content_hash="h2",
        source="medmcqa",
        question="Which nerve is most likely injured in a fracture of the surgical neck of the humerus?",
        context=None,
        options={"A": "Radial nerve", "B": "Axillary nerve", "C": "Ulnar nerve", "D": "Median nerve"},
        answer="B",
    ),
    "pubmedqa": QuestionView(
        id=3,
        content_hash="h3",
        source="pubmedqa",
        question="Does early mobilisation shorten hospital stay after hip fracture surgery?",
        context="BACKGROUND: Patients were mobilised within 24 hours or later.\n"
        "RESULTS: Early mobilisation was associated with a shorter median stay (8 vs 11 days).",
        options={"yes": "yes", "no": "no", "maybe": "maybe"},
        answer="yes",
    ),
    "mmlu": QuestionView(
        id=4,
        content_hash="h4",
        source="mmlu",
        question="Which enzyme is deficient in classic phenylketonuria?",
        context=None,
        options={
            "A": "Tyrosine hydroxylase",
            "B": "Phenylalanine hydroxylase",
            "C": "Homogentisate oxidase",
            "D": "Fumarylacetoacetase",
        },
        answer="B",
    ),
}
PATH = "The findings point to the keyed option; the others do not fit.\nFinal answer: {answer}"
ERRORS = ["Confuses the mechanism with a risk factor.", "Does not weigh every option."]


def fields(q: QuestionView) -> dict[str, str]:
    return q.prompt_fields() | {"path": PATH.format(answer=q.answer), "errors": format_errors(ERRORS)}


def rendered(profile: str, role: str, q: QuestionView) -> str:
    t = get_template(role, profile)
    wanted = {k: v for k, v in fields(q).items() if k in t.placeholders()}
    parts = [f"=== {m['role']} ===\n{m['content']}" for m in t.render(**wanted)]
    return f"# profile {profile}, role {role}, source {q.source}, template sha256 {t.sha256}\n" + "\n".join(
        parts
    )


CASES = [(p, r, s) for p in PROFILES for r in ROLES for s in QUESTIONS]


@pytest.mark.parametrize(("profile", "role", "source"), CASES)
def test_rendered_prompt_matches_snapshot(profile: str, role: str, source: str) -> None:
    text = rendered(profile, role, QUESTIONS[source])
    snap = SNAPSHOTS / profile / f"{role}__{source}.txt"
    if UPDATE:
        snap.parent.mkdir(parents=True, exist_ok=True)
        snap.write_text(text, encoding="utf-8")
    assert snap.is_file(), f"{snap} is missing: run with REASONMED_UPDATE_SNAPSHOTS=1 and review it"
    assert text == snap.read_text(encoding="utf-8")


@pytest.mark.parametrize(("profile", "role", "source"), CASES)
def test_simulator_reads_every_profile(profile: str, role: str, source: str) -> None:
    """The simulator finds the role and the fields it needs in every profile's prompt."""
    q = QUESTIONS[source]
    t = get_template(role, profile)
    msgs = t.render(**{k: v for k, v in fields(q).items() if k in t.placeholders()})
    system = next((m["content"] for m in msgs if m["role"] == "system"), "")
    user = msgs[-1]["content"]
    assert detect_role(system, user) == role
    parsed = parse_prompt(user)
    if "options" in t.placeholders():
        assert list(parsed.options) == list(q.options)
    if "answer" in t.placeholders():
        assert parsed.answer == q.answer
    if "path" in t.placeholders():
        assert parsed.path == PATH.format(answer=q.answer)
    if "errors" in t.placeholders():
        assert list(parsed.errors) == ERRORS


def test_profiles_differ_where_the_paper_does() -> None:
    paper, ours = (lambda r: get_template(r, "paper")), (lambda r: get_template(r, "reasonmed"))
    assert paper("generate").system == ""  # raw prompt, no system message
    assert "Final answer:" not in paper("generate").text  # no mandatory answer line
    assert paper("summarize").placeholders() == {"path"}  # the chain of thought only
    for word in (
        "prevalence",
        "sensitivity",
        "specificity",
        "likelihood ratios",
        "number needed to treat",
        "guidelines",
    ):
        assert word in paper("regenerate").text
    assert "answer" not in paper("judge").placeholders() and "answer" in ours("judge").placeholders()
    assert paper("evaluate").sha256 == ours("evaluate").sha256  # the paper has no benchmark prompt


def _pipeline(tmp_path: Path, **agent_overrides: dict) -> Path:  # type: ignore[type-arg]
    data = yaml.safe_load((REPO / "reasonmed" / "default_pipeline.yaml").read_text())
    for role, values in agent_overrides.items():
        data["agents"][role].update(values)
    p = tmp_path / "pipeline.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


# (file text, expected error fragment or None)
OVERRIDES = [
    ("You check reasoning.\n---user---\nKey: $answer\n<<<\n$path\n>>>\nJSON verdict please.\n", None),
    ("You check reasoning.\n---user---\n$question\n$path\n", "must use $answer"),
    ("You check reasoning.\n---user---\n$answer $path $patient\n", "unknown placeholder $patient"),
    ("You check reasoning.\n---user---\n$answer $path costs $5\n", "write a literal dollar sign as $$"),
    ("No separator here: $answer $path\n", "no '---user---' separator"),
]


@pytest.mark.parametrize(("text", "error"), OVERRIDES)
def test_agent_prompt_file_is_checked_at_load(tmp_path: Path, text: str, error: str | None) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "verify.txt").write_text(text)
    path = _pipeline(tmp_path, verifier={"prompt": "prompts/verify.txt"})  # relative to the pipeline file
    if error is None:
        cfg = load_pipeline_config(path)
        assert cfg.prompt("verify").text == text and cfg.prompt("verify").origin == "prompts/verify.txt"
        assert cfg.prompt("rank").sha256 == get_template("rank").sha256  # other roles keep the profile's
        assert cfg.config_hash != load_pipeline_config(None).config_hash  # the same file without the override
        return
    with pytest.raises(ConfigError) as exc:
        load_pipeline_config(path)
    assert "agents.verifier.prompt" in str(exc.value) and error in str(exc.value)


def test_missing_prompt_file_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agents\.summarizer\.prompt: cannot read prompt file"):
        load_pipeline_config(_pipeline(tmp_path, summarizer={"prompt": "nope.txt"}))


def test_profile_is_selected_in_the_pipeline_file(tmp_path: Path) -> None:
    data = yaml.safe_load((REPO / "reasonmed" / "default_pipeline.yaml").read_text())
    data["prompts"] = "paper"
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(data))
    cfg = load_pipeline_config(p)
    assert all(
        cfg.prompt(r).sha256 == get_template(r, "paper").sha256 for r in ("verify", "summarize", "regenerate")
    )
    assert cfg.config_hash != load_pipeline_config(None).config_hash
    data["prompts"] = "papr"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="prompts"):
        load_pipeline_config(p)


def test_options_whose_text_is_their_label_are_shown_inline_and_read_back_by_the_simulator() -> None:
    """PubMedQA's yes/no/maybe read "yes / no / maybe", not "yes. yes"; lettered options keep a line each."""
    pubmed = QUESTIONS["pubmedqa"]
    fields = pubmed.prompt_fields()
    assert fields["options"] == "yes / no / maybe"
    assert QUESTIONS["medmcqa"].prompt_fields()["options"].splitlines() == [
        "A. Radial nerve",
        "B. Axillary nerve",
        "C. Ulnar nerve",
        "D. Median nerve",
    ]
    user = get_template("verify", "reasonmed").render(**fields, path=PATH.format(answer="yes"))[-1]["content"]
    assert parse_prompt(user).options == {"yes": "yes", "no": "no", "maybe": "maybe"}
