"""The YAML loader's refusals: libyaml's C parser screens a text first (fast), and refuses exactly what the
Python loader behind it refuses, in the same words; what it cannot parse is left to that loader."""

from __future__ import annotations

import time

import pytest

from reasonmed import safe_yaml

DEEP_BLOCK = "endpoints:\n" + "".join("  " * i + "- \n" for i in range(200))
TEXTS = {
    "flat": "seed: 1\nagents:\n  verifier: {endpoint: a}\n",
    "63 levels": "a: " + "[" * 63 + "]" * 63,
    "64 levels": "a: " + "[" * 64 + "]" * 64,
    "deep block sequence": DEEP_BLOCK,
    "deep mapping": "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(70)),
    "anchor": "a: 1\nb:\n  - &anchor 3\n",
    "alias": "a: &x 1\nb: *x\n",
    "merge key": "base: &b {x: 1}\nother:\n  <<: *b\n",
    "unclosed": "a: [1, 2\n",
    "two documents": "x: 1\n---\ny: 2\n",
    "tab indent": "a:\n\tb: 1\n",
}


def _outcome(load: object, text: str) -> str:
    try:
        return f"ok {load(text)!r}"  # type: ignore[operator]
    except safe_yaml.YamlRefused as exc:
        return f"refused: {exc}"


@pytest.mark.parametrize("name", list(TEXTS))
def test_the_screen_refuses_what_the_loader_refuses_in_its_words(name: str) -> None:
    text = TEXTS[name]
    assert _outcome(safe_yaml.load, text) == _outcome(safe_yaml._compose, text)


def test_the_refusals_name_their_line() -> None:
    assert _outcome(safe_yaml.load, TEXTS["64 levels"]) == "refused: line 1: nested more than 64 levels deep"
    assert _outcome(safe_yaml.load, DEEP_BLOCK) == "refused: line 65: nested more than 64 levels deep"
    assert _outcome(safe_yaml.load, TEXTS["anchor"]).startswith("refused: line 3: YAML anchors and aliases")


@pytest.mark.parametrize("opener", ["[", "{"])
def test_a_run_of_open_brackets_is_refused_in_milliseconds(opener: str) -> None:
    """PyYAML's Python scanner alone takes about 0.17 s of CPU for this, whatever the run's length."""
    started = time.thread_time()
    outcome = _outcome(safe_yaml.load, "endpoints: " + opener * 200_000)
    assert outcome == "refused: line 1: nested more than 64 levels deep"
    assert time.thread_time() - started < 0.05
