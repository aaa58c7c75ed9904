"""A pipeline file cannot cost much or reach outside its folder (issue 24 item 5): the crafted files of the
issue each end in one line (``configuration error: ...``, exit 2) and fast; ``${VAR}`` is expanded per
value after parsing; prompt files are small regular files under the pipeline file's folder (or the
shipped prompts). The bundled pipeline files load as before."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reasonmed.config import ConfigError, load_pipeline_config, read_pipeline_data
from reasonmed.prompts.files import PROMPT_FILE_MAX_BYTES, shipped_prompts_dir

REPO = Path(__file__).resolve().parents[2]
BUNDLED = [REPO / "reasonmed" / "default_pipeline.yaml", *sorted((REPO / "deploy").glob("pipeline*.yaml"))]
PROMPT = "You are careful.\n---user---\n$question\n$options\n"


def _default() -> dict:
    return yaml.safe_load((REPO / "reasonmed" / "default_pipeline.yaml").read_text())


def _write(folder: Path, data: dict | str) -> Path:
    path = folder / "pipeline.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def _refused(path: Path, *, within_s: float = 2.0) -> str:
    """The one-line error ``config check`` prints for ``path``, checked to come fast and with exit 2 (in this
    thread's CPU seconds, which a busy machine does not stretch)."""
    from reasonmed.cli import app

    started = time.thread_time()
    result = CliRunner().invoke(app, ["config", "check", "--config", str(path)])
    elapsed = time.thread_time() - started
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: "), result.output
    assert elapsed < within_s, f"{elapsed:.1f}s"
    return lines[0]


# --------------------------------------------------------------------------- the YAML itself


def _alias_bomb(depth: int = 7, width: int = 9) -> str:
    """~1 KB: each level a list of ``width`` aliases of the level before, width**depth leaves once built."""
    lines = ['      l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, depth + 1):
        lines.append(f"      l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines)


def test_an_alias_bomb_in_engine_args_is_refused_fast(tmp_path: Path) -> None:
    data = _default()
    text = yaml.safe_dump(data, sort_keys=False)
    first = next(iter(data["endpoints"]))
    text = text.replace(f"  {first}:\n", f"  {first}:\n    engine_args:\n{_alias_bomb()}\n", 1)
    assert len(_alias_bomb()) < 1500
    line = _refused(_write(tmp_path, text))
    assert "anchors and aliases" in line and "line " in line


def test_a_single_alias_or_anchor_is_refused(tmp_path: Path) -> None:
    text = yaml.safe_dump(_default(), sort_keys=False).replace("agents:\n", "extra: &a 1\nagents:\n", 1)
    assert "anchors and aliases" in _refused(_write(tmp_path, text))


@pytest.mark.parametrize("opener", ["[", "{", "- "])
def test_deep_nesting_is_one_line(tmp_path: Path, opener: str) -> None:
    if opener == "- ":  # block style: one line per level
        text = "endpoints:\n" + "".join("  " * i + "- \n" for i in range(200))
    else:
        text = "endpoints: " + opener * 200_000
    assert "nested more than 64 levels deep" in _refused(_write(tmp_path, text))


def test_an_oversized_pipeline_file_is_refused_unread(tmp_path: Path) -> None:
    path = _write(tmp_path, "seed: 1\n" + "# padding\n" * 60_000)
    assert "more than the 262,144 allowed" in _refused(path)


@pytest.mark.timeout(20)
def test_a_fifo_as_pipeline_file_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "pipeline.yaml"
    os.mkfifo(fifo)
    assert "not a regular file" in _refused(fifo)


# --------------------------------------------------------------------------- ${VAR}


def test_a_newline_in_an_environment_value_stays_in_that_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _default()
    first = next(iter(data["endpoints"]))
    data["endpoints"][first]["model"] = "${REASONMED_TEST_INJECT}"
    injected = "sim/x\n    api_key_env: STOLEN\n    base_url: http://collector.invalid/v1"
    monkeypatch.setenv("REASONMED_TEST_INJECT", injected)
    cfg = load_pipeline_config(_write(tmp_path, data))
    ep = cfg.endpoints[first]
    assert ep.model == injected and ep.api_key_env is None and "collector" not in (ep.base_url or "")
    assert cfg.snapshot()["endpoints"][first]["model"] == "${REASONMED_TEST_INJECT}"


def test_references_in_comments_and_keys_are_not_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REASONMED_TEST_UNSET", raising=False)
    text = "# ${REASONMED_TEST_UNSET} is only mentioned here\n" + yaml.safe_dump(_default(), sort_keys=False)
    text = text.replace("seed: 0", "seed: 0  # ${REASONMED_TEST_UNSET}")
    assert load_pipeline_config(_write(tmp_path, text)).paths_per_question == 9


def test_typed_keys_take_expanded_strings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _default()
    first = next(iter(data["endpoints"]))
    data["endpoints"][first]["max_in_flight"] = "${REASONMED_TEST_CAP:-12}"
    data["endpoints"][first]["supports_n"] = "${REASONMED_TEST_N}"
    monkeypatch.setenv("REASONMED_TEST_N", "false")
    cfg = load_pipeline_config(_write(tmp_path, data))
    assert cfg.endpoints[first].max_in_flight == 12 and cfg.endpoints[first].supports_n is False


def test_an_unset_reference_names_its_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REASONMED_TEST_UNSET", raising=False)
    data = _default()
    data["agents"]["verifier"]["endpoint"] = "${REASONMED_TEST_UNSET}"
    with pytest.raises(
        ConfigError, match=r"agents\.verifier\.endpoint: environment variable REASONMED_TEST_UNSET"
    ):
        load_pipeline_config(_write(tmp_path, data))


_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}")


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_every_bundled_pipeline_file_loads_unchanged(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Their ``${VAR:-default}`` values give the defaults, exactly as when the text was expanded first."""
    text = path.read_text()
    for name, _default_value in _REF.findall(text):
        monkeypatch.delenv(name, raising=False)
    expanded_first = yaml.safe_load(_REF.sub(lambda m: m.group(2), text))  # the old way
    assert read_pipeline_data(path)[0] == expanded_first
    snapshot = load_pipeline_config(path).snapshot()
    assert "${" in str(snapshot)  # the snapshot still names the variables, not their values


# --------------------------------------------------------------------------- prompt files


def _with_prompt(folder: Path, prompt: str) -> Path:
    data = _default()
    data["agents"]["verifier"]["prompt"] = prompt
    return _write(folder, data)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the pipeline's folder that looks like a template (a secret an attacker wants sent)."""
    secret = tmp_path / "secret.txt"
    secret.write_text("PRIVATE\n---user---\n$answer $path\n")
    (tmp_path / "pipe").mkdir()
    return secret


def test_a_prompt_path_with_dotdot_is_refused(tmp_path: Path, outside: Path) -> None:
    line = _refused(_with_prompt(tmp_path / "pipe", "../secret.txt"))
    assert "agents.verifier.prompt: cannot read prompt file ../secret.txt" in line and "outside" in line


def test_an_absolute_prompt_path_outside_is_refused(tmp_path: Path, outside: Path) -> None:
    assert "outside the pipeline file's folder" in _refused(_with_prompt(tmp_path / "pipe", str(outside)))


def test_a_symlink_out_of_the_folder_is_refused(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "pipe" / "verify.txt").symlink_to(outside)
    assert "outside the pipeline file's folder" in _refused(_with_prompt(tmp_path / "pipe", "verify.txt"))


def test_a_symlink_inside_the_folder_is_followed(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "real.txt").write_text("Judge.\n---user---\n$answer $path\n")
    (tmp_path / "verify.txt").symlink_to(tmp_path / "prompts" / "real.txt")
    cfg = load_pipeline_config(_with_prompt(tmp_path, "verify.txt"))
    assert cfg.prompt("verify").text.startswith("Judge.")


def test_a_shipped_prompt_may_be_named_by_its_path(tmp_path: Path) -> None:
    shipped = shipped_prompts_dir() / "paper" / "verify.txt"
    cfg = load_pipeline_config(_with_prompt(tmp_path, str(shipped)))
    assert cfg.prompt("verify").text == shipped.read_text()


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_refused(tmp_path: Path, device: str) -> None:
    (tmp_path / "verify.txt").symlink_to(device)
    _refused(_with_prompt(tmp_path, "verify.txt"))  # a symlink out, and not a regular file either
    line = _refused(_with_prompt(tmp_path, device))
    assert "cannot read prompt file" in line


@pytest.mark.timeout(20)
def test_a_fifo_prompt_does_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "verify.txt")  # nothing ever writes to it: a blocking open would wait for ever
    assert "not a regular file" in _refused(_with_prompt(tmp_path, "verify.txt"))


def test_an_oversized_prompt_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "verify.txt"
    with big.open("w") as f:
        f.write(PROMPT.replace("$question", "$answer $path"))
        f.truncate(60 << 20)  # 60 MB, sparse: cheap to make
    line = _refused(_with_prompt(tmp_path, "verify.txt"))
    assert f"more than the {PROMPT_FILE_MAX_BYTES:,} allowed" in line


def test_a_prompt_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "verify.txt").write_bytes(b"\xff\xfe---user---\n$answer $path\n")
    assert "not UTF-8 text" in _refused(_with_prompt(tmp_path, "verify.txt"))
