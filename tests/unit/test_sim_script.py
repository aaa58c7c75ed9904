"""The simulator's scripts (reasonmed/sim/script.py): validated up front, and requests they do not cover are
answered as usual (the oracle tests, tests/integration/test_oracle.py, drive the rest end to end)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasonmed.parsing import extract_answer
from reasonmed.sim.script import Script, ScriptError, load_script

OPTIONS = {"A": "Norovirus", "B": "Rotavirus", "C": "Adenovirus"}
SLOT = "sim/m@0.7"


def _script(tmp_path: Path, body: object) -> Path:
    path = tmp_path / "s.json"
    path.write_text(json.dumps(body))
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "expected"),
        ({"questions": [{"paths": {}}]}, "marker"),
        ({"questions": [{"marker": "M", "paths": {}}]}, "slots"),
        ({"questions": [{"marker": "M", "paths": {SLOT: {"verdict": "Maybe"}}}]}, "verdict must be one of"),
        ({"questions": [{"marker": "M", "paths": {SLOT: {"verdict": "Error", "score": 9}}}]}, "score"),
    ],
)
def test_a_bad_script_is_one_clear_error(tmp_path: Path, body: object, message: str) -> None:
    with pytest.raises(ScriptError, match=message):
        load_script(_script(tmp_path, body))


def test_a_missing_script_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="not a regular file"):
        load_script(tmp_path / "nowhere.json")


def test_scripted_paths_conclude_as_written_and_the_rest_is_left_to_the_simulator(tmp_path: Path) -> None:
    body = {
        "questions": [{"marker": "M1", "paths": {SLOT: {"answer": "B", "verdict": "Correct", "score": 4}}}]
    }
    script = Script(load_script(_script(tmp_path, body)))
    common = {"options": OPTIONS, "question": "Which virus? M1", "seed": 1}
    path = script.reply(
        role="generate", user="Question: M1", model="sim/m", temperature=0.7, path=None, **common
    )
    assert (
        path is not None
        and path.startswith(f"Scripted path {SLOT}.")
        and extract_answer(path, OPTIONS) == "B"
    )
    verdict = script.reply(role="verify", user="M1", model="sim/v", temperature=0.0, path=path, **common)
    assert json.loads(verdict or "") == {
        "verdict": "Correct",
        "path_answer": "B",
        "reason": "Scripted: concludes B.",
    }
    rank = script.reply(role="rank", user="M1", model="sim/v", temperature=0.0, path=path, **common)
    assert json.loads(rank or "")["score"] == 4
    # another slot, another question, or a role the script does not cover: None (answered as usual)
    assert (
        script.reply(role="generate", user="M1", model="sim/x", temperature=0.9, path=None, **common) is None
    )
    assert (
        script.reply(role="generate", user="M2", model="sim/m", temperature=0.7, path=None, **common) is None
    )
    assert (
        script.reply(role="summarize", user="M1", model="sim/s", temperature=0.5, path=path, **common) is None
    )
