"""Configuration is validated up front; each problem is one line that names the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from reasonmed.config import (
    ConfigError,
    Settings,
    load_pipeline_config,
    parse_pipeline_config,
    read_pipeline_data,
)

REPO = Path(__file__).resolve().parents[2]


def _paper_like() -> dict:
    return read_pipeline_data(REPO / "deploy" / "pipeline.paper.yaml")[0]


def test_shipped_configs_load_with_paper_values() -> None:
    cfg = load_pipeline_config(REPO / "deploy" / "pipeline.paper.yaml")
    assert cfg.paths_per_question == 9
    assert [g.temperatures for g in cfg.agents.generators] == [[0.7, 0.9, 1.0]] * 3
    assert all(g.top_p == 0.9 and g.max_tokens == 8192 for g in cfg.agents.generators)
    assert (cfg.tiers.easy_min_correct, cfg.tiers.medium_min_correct, cfg.tiers.keep_top) == (5, 2, 2)
    assert cfg.agents.refiner.temperature == 0.8 and cfg.agents.summarizer.temperature == 0.5
    default = load_pipeline_config(None)
    assert default.paths_per_question == 9
    assert all(ep.model.startswith("sim/") for ep in default.endpoints.values())


@pytest.mark.parametrize("name", ["pipeline.paper.yaml", "pipeline.local.yaml"])
def test_paper_roles_and_budgets(name: str) -> None:
    """Both paper files: paper prompts, the released budgets, no re-asks, and a difficult-tier model that is
    none of the generators; the paper file sends the refiner, regenerator and summariser to a hosted API
    (key named, never written), the local file keeps every endpoint on the network's own servers (and gives
    its regenerator, whose thinking is in its paths, 16,384 tokens: deploy/README.md, context budgets)."""
    cfg = load_pipeline_config(REPO / "deploy" / name)
    a, ep = cfg.agents, cfg.endpoints
    assert cfg.prompts == "paper" and cfg.output_retries == 0
    generators = {ep[g.endpoint].model for g in a.generators}
    assert len(generators) == 3 and ep[a.regenerator.endpoint].model not in generators
    assert ep[a.verifier.endpoint].model == "Qwen/Qwen2.5-72B-Instruct"
    assert (
        a.refiner.max_tokens,
        a.regenerator.max_tokens,
        a.summarizer.max_tokens,
        a.verifier.max_tokens,
    ) == (15000, 20000 if name == "pipeline.paper.yaml" else 16384, 1000, 10000)
    hosted = {r: ep[getattr(a, r).endpoint] for r in ("refiner", "regenerator", "summarizer")}
    if name == "pipeline.paper.yaml":
        assert {r: e.model for r, e in hosted.items()} == {
            "refiner": "gpt-4o",
            "regenerator": "o1-mini",
            "summarizer": "gpt-4o-mini",
        }
        assert all(e.base_url.startswith("https://") and e.api_key_env for e in hosted.values())
    else:
        # Own servers only, each behind vLLM's --api-key (the same key for all, from VLLM_API_KEY).
        assert all(
            e.api_key_env == "VLLM_API_KEY" and e.base_url.startswith("http://127.0.0.1") for e in ep.values()
        )


def test_env_references_are_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REASONMED_SIM_URL", "http://127.0.0.1:9999/v1")
    cfg = load_pipeline_config(None)
    assert {ep.base_url for ep in cfg.endpoints.values()} == {"http://127.0.0.1:9999/v1"}


def _one_line_error(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_pipeline_config(data, "x.yaml")
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


def test_unknown_key_is_named() -> None:
    data = _paper_like()
    data["agents"]["verifier"]["temprature"] = 0.1
    assert _one_line_error(data).startswith("x.yaml: agents.verifier.temprature: unknown key")


def test_unknown_endpoint_is_named() -> None:
    data = _paper_like()
    data["agents"]["summarizer"]["endpoint"] = "nope"
    msg = _one_line_error(data)
    assert "agents.summarizer.endpoint: unknown endpoint 'nope'" in msg
    data = _paper_like()
    data["agents"]["generators"][1]["endpoint"] = "gone"
    assert "agents.generators[1].endpoint: unknown endpoint 'gone'" in _one_line_error(data)


def test_temperature_out_of_range_is_named() -> None:
    data = _paper_like()
    data["agents"]["refiner"]["temperature"] = 3.5
    assert "agents.refiner.temperature" in _one_line_error(data)
    data = _paper_like()
    data["agents"]["generators"][2]["temperatures"] = [0.7, 2.5]
    assert "agents.generators[2]" in (msg := _one_line_error(data)) and "temperatures[1] = 2.5" in msg


def test_tier_thresholds_checked_against_paths() -> None:
    data = _paper_like()
    data["tiers"]["easy_min_correct"] = 10
    assert "tiers.easy_min_correct: 10 exceeds the 9 paths" in _one_line_error(data)
    data = _paper_like()
    data["tiers"]["medium_min_correct"] = 6
    assert "tiers" in _one_line_error(data)


def test_endpoint_needs_http_url() -> None:
    data = _paper_like()
    first = next(iter(data["endpoints"]))
    data["endpoints"][first]["base_url"] = "localhost:8000"
    assert f"endpoints.{first}: base_url must start with http" in _one_line_error(data)


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_pipeline_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("endpoints: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline_config(bad)


def test_unset_env_reference_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REASONMED_NOT_SET_ANYWHERE", raising=False)
    f = tmp_path / "p.yaml"
    f.write_text("endpoints:\n  a:\n    base_url: ${REASONMED_NOT_SET_ANYWHERE}\n")
    with pytest.raises(ConfigError, match="REASONMED_NOT_SET_ANYWHERE is not set"):
        load_pipeline_config(f)


def test_config_hash_changes_with_content() -> None:
    a = parse_pipeline_config(_paper_like())
    data = _paper_like()
    data["seed"] = 7
    b = parse_pipeline_config(data)
    assert a.config_hash == parse_pipeline_config(_paper_like()).config_hash
    assert a.config_hash != b.config_hash


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REASONMED_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/x")
    monkeypatch.setenv("REASONMED_SHARD_SIZE", "50")
    s = Settings()
    assert s.database_url.endswith("/x") and s.shard_size == 50
    monkeypatch.setenv("REASONMED_DATABASE_URL", "mysql://x")
    with pytest.raises(Exception, match="database_url must be"):
        Settings()


def test_cli_config_check_reports_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from reasonmed.cli import app

    data = _paper_like()
    data["agents"]["ranker"]["endpoint"] = "missing"
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["config", "check", "--config", str(f)])
    # One line through the CLI's error handler (reasonmed.cli.errors), exit 2, no traceback.
    assert result.exit_code == 2
    assert "configuration error:" in result.output
    assert "agents.ranker.endpoint: unknown endpoint 'missing'" in result.output
    ok = CliRunner().invoke(
        app, ["config", "check", "--config", str(REPO / "deploy" / "pipeline.paper.yaml")]
    )
    assert ok.exit_code == 0, ok.output
    assert "config OK" in ok.output


def test_generators_need_distinct_endpoints() -> None:
    data = _paper_like()
    data["agents"]["generators"][2]["endpoint"] = data["agents"]["generators"][0]["endpoint"]
    msg = _one_line_error(data)
    assert "agents.generators[2].endpoint" in msg and "already used by agents.generators[0]" in msg


def test_in_process_vllm_example_is_valid() -> None:
    cfg = load_pipeline_config(REPO / "deploy" / "pipeline.vllm-inprocess.yaml")
    assert cfg.endpoints["qwen-local"].kind == "vllm"
    assert cfg.endpoints["qwen-local"].engine_args["enable_prefix_caching"] is True
    assert cfg.paths_per_question == 9


def test_temporary_settings_override_and_restore(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings live in a context: an override holds inside its block, nests, and is gone after it; a
    value the environment gave stays given underneath, and the environment is never written."""
    from reasonmed.config import get_settings, temporary_settings

    monkeypatch.setenv("REASONMED_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("REASONMED_SHARD_SIZE", "7")
    with temporary_settings(database_url="sqlite:///outer.db") as outer:
        assert (
            get_settings() is outer and outer.database_url == "sqlite:///outer.db" and outer.shard_size == 7
        )
        with temporary_settings(database_url="sqlite:///inner.db", shard_size=9):
            assert (get_settings().database_url, get_settings().shard_size) == ("sqlite:///inner.db", 9)
        assert get_settings().database_url == "sqlite:///outer.db" and get_settings().shard_size == 7
    assert get_settings().database_url == "sqlite:///from-env.db"
    assert os.environ["REASONMED_DATABASE_URL"] == "sqlite:///from-env.db"


def test_the_pipeline_file_sees_the_simulator_url_in_force(monkeypatch: pytest.MonkeyPatch) -> None:
    from reasonmed.config import load_pipeline_config, temporary_settings

    monkeypatch.delenv("REASONMED_SIM_URL", raising=False)
    default = load_pipeline_config(None)
    with temporary_settings(sim_url="http://127.0.0.1:9876/v1"):
        inside = load_pipeline_config(None)
    assert {ep.base_url for ep in inside.endpoints.values()} == {"http://127.0.0.1:9876/v1"}
    assert "http://127.0.0.1:9876/v1" not in {ep.base_url for ep in default.endpoints.values()}
    assert load_pipeline_config(None).endpoints == default.endpoints
