"""One redaction rule for every message (``reasonmed.redact``): URL userinfo, secret query keys, fragments,
Authorization headers of any scheme and key-like headers in echoed text, database URLs rendered by
SQLAlchemy (SQLite paths exact). Each case of issue 24 item 4 through the entry point that printed it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reasonmed.config import ConfigError, load_pipeline_config
from reasonmed.redact import redact, redact_data, redact_url, secret_key

REPO = Path(__file__).resolve().parents[2]
CANARY = "canaryUNIT7c4e1"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # an environment assignment whose name ends in a secret word (a review found it shown)
        ("PGPASSWORD=s3cr3t psql -h db", "PGPASSWORD=*** psql -h db"),
        ("completion_tokens: 5", "completion_tokens: 5"),
        # URL userinfo, any scheme (a wrong one included)
        ("htp://user:PW1x@host", "htp://user:***@host"),
        ("got 'htp://user:PW1x@host/v1')", "got 'htp://user:***@host/v1')"),
        ("https://ghp_0123456789abcdefghij@host/v1", "https://***@host/v1"),
        ("http://tok3n@host/v1", "http://***@host/v1"),
        (
            "postgresql+psycopg://postgres@127.0.0.1:5432/reasonmed",
            "postgresql+psycopg://postgres@127.0.0.1:5432/reasonmed",
        ),
        # query keys, case-insensitive, any *_key; other keys and the order kept
        (
            "http://h:8000/v1/models?api_key=A1&KEY=A2&x=1&Token=A3&sig=A4&password=A5&secret=A6&access_key=A7",
            "http://h:8000/v1/models?api_key=***&KEY=***&x=1&Token=***&sig=***&password=***&secret=***&access_key=***",
        ),
        (
            "see https://h/v1?X-Amz-Signature=abc&X-Amz-Date=1, then",
            "see https://h/v1?X-Amz-Signature=***&X-Amz-Date=1, then",
        ),
        # fragments
        ("https://h/cb#access_token=A8", "https://h/cb#***"),
        # database URLs: make_url renders them, SQLite paths stay exact
        ("sqlite:////data/x.db", "sqlite:////data/x.db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("sqlite:////data/x.db?password=A9", "sqlite:////data/x.db?password=***"),
        ("postgresql+psycopg://u:pw1@h:5432/db", "postgresql+psycopg://u:***@h:5432/db"),
        (
            "postgresql+psycopg://u@h/db?password=pw2&sslmode=require",
            "postgresql+psycopg://u@h/db?password=***&sslmode=require",
        ),
        # Authorization of any scheme, key-like headers, in the forms a server echoes them
        (
            '{"headers": {"Authorization": "Basic dXNlcjpwdw==", "Host": "h"}}',
            '{"headers": {"Authorization": "***", "Host": "h"}}',
        ),
        ("{'authorization': 'Bearer sk-abc123', 'x': 'y'}", "{'authorization': '***', 'x': 'y'}"),
        (
            '{\\"Authorization\\": \\"token ghp_1\\", \\"a\\": 1}',
            '{\\"Authorization\\": \\"***\\", \\"a\\": 1}',
        ),
        (
            'Authorization: Digest username="u", response="6629fae4"\r\nHost: h',
            "Authorization: ***\r\nHost: h",
        ),
        (
            "authorization: rawsecretvalue\nx-api-key: K123\nX-Auth-Token: T1\nhost: h",
            "authorization: ***\nx-api-key: ***\nX-Auth-Token: ***\nhost: h",
        ),
        ("Proxy-Authorization: Basic Zm9vOmJhcg==", "Proxy-Authorization: ***"),
        ("upstream said: Bearer sk-live-123456 rejected", "upstream said: Bearer *** rejected"),
        ("dsn: host=db password=hunter22 user=postgres", "dsn: host=db password=*** user=postgres"),
        # what is no credential stays as written
        ("Basic idea: keep it", "Basic idea: keep it"),
        (
            "x.yaml: endpoints.a.api_key: unknown key (check the spelling)",
            "x.yaml: endpoints.a.api_key: unknown key (check the spelling)",
        ),
        (
            "refused the API key (HTTP 401); check api_key_env / api_key_secret",
            "refused the API key (HTTP 401); check api_key_env / api_key_secret",
        ),
        ("max_tokens: 5, tokenizer: Qwen/Qwen2.5", "max_tokens: 5, tokenizer: Qwen/Qwen2.5"),
    ],
)
def test_redact(text: str, shown: str) -> None:
    assert redact(text) == shown
    assert redact(shown) == shown  # masking twice changes nothing


@pytest.mark.parametrize(
    ("value", "key", "shown"),
    [
        ("postgresql+psycopg://u:pw1@h:5432/db", None, "postgresql+psycopg://u:***@h:5432/db"),
        ("http://minio:pw3@127.0.0.1:9000", "s3_endpoint_url", "http://minio:***@127.0.0.1:9000"),
        ("https://h/v1?api_key=pw4&x=1", None, "https://h/v1?api_key=***&x=1"),
        ("hf_pw5", "hf_token", "***"),
        ("pw6", "password", "***"),
        ("Qwen/Qwen2.5-72B", "tokenizer", "Qwen/Qwen2.5-72B"),
        ("${HF_TOKEN}", "hf_token", "${HF_TOKEN}"),
        ("VLLM_API_KEY", "api_key_env", "VLLM_API_KEY"),
        ("vllm-key", "api_key_secret", "vllm-key"),
        (
            "could not connect to postgresql://u:pw7@db:5432/x: refused",
            "error",
            "could not connect to postgresql://u:***@db:5432/x: refused",
        ),
    ],
)
def test_redact_data(value: str, key: str | None, shown: str) -> None:
    assert redact_data({key or "value": value})[key or "value"] == shown


def test_known_values_are_masked_anywhere() -> None:
    assert (
        redact("server said: you sent sk-VERYsecret!", ["sk-VERYsecret", None, ""])
        == "server said: you sent ***!"
    )


def test_secret_key_names() -> None:
    secret = [
        "api_key",
        "key",
        "Token",
        "sig",
        "password",
        "client_secret",
        "x-api-key",
        "apiKey",
        "HF_TOKEN",
    ]
    plain = [
        "max_tokens",
        "tokenizer",
        "keep_top",
        "api_key_env",
        "api_key_secret",
        "author",
        "context_tokens",
    ]
    assert [n for n in secret if not secret_key(n)] == []
    assert [n for n in plain if secret_key(n)] == []


def test_an_unparseable_url_is_not_shown() -> None:
    assert redact_url(f"http://u:{CANARY}@h:99999/v1") == "***"


# --------------------------------------------------------------------------- through the entry points


def _pipeline_file(tmp_path: Path, base_url: str) -> Path:
    data = yaml.safe_load((REPO / "reasonmed" / "default_pipeline.yaml").read_text())
    for ep in data["endpoints"].values():
        ep.update(base_url=base_url, connect_timeout_s=1.0, timeout_s=1.0)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_wrong_scheme_base_url_is_named_without_its_password(tmp_path: Path) -> None:
    cfg = _pipeline_file(tmp_path, f"htp://user:{CANARY}@host/v1")
    with pytest.raises(ConfigError) as info:
        load_pipeline_config(cfg)
    assert CANARY not in str(info.value) and "htp://user:***@host/v1" in str(info.value)
    from reasonmed.cli import app

    result = CliRunner().invoke(app, ["config", "check", "--config", str(cfg)])
    assert result.exit_code == 2 and CANARY not in result.output, result.output
    assert "base_url must start with http:// or https:// (got 'htp://user:***@host/v1')" in result.output


def test_a_config_error_masks_whatever_it_quotes() -> None:
    assert (
        str(ConfigError(f"x: bad value 'https://h/v1?key={CANARY}'")) == "x: bad value 'https://h/v1?key=***'"
    )


def test_ping_prints_no_query_key(tmp_path: Path, unused_tcp_port: int) -> None:
    """Nothing listens there: every endpoint fails, and each line names its URL with the keys masked."""
    from reasonmed.cli import app

    url = f"http://127.0.0.1:{unused_tcp_port}/v1?api_key={CANARY}&Key={CANARY}2&sig={CANARY}3#{CANARY}4"
    result = CliRunner().invoke(
        app, ["config", "check", "--ping", "--config", str(_pipeline_file(tmp_path, url))]
    )
    assert result.exit_code == 1, result.output
    assert CANARY not in result.output
    assert f"(http://127.0.0.1:{unused_tcp_port}/v1?api_key=***&Key=***&sig=***" in result.output


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://postgres@127.0.0.1:5432/x?password={CANARY}&sslmode=disable",
        f"postgresql+psycopg://postgres:{CANARY}@127.0.0.1:5432/x",
        f"sqlite:////tmp/x.db?password={CANARY}",
    ],
)
def test_config_show_and_the_database_label_hide_the_database_password(url: str) -> None:
    from reasonmed.cli import app
    from reasonmed.jobs.startup import database_label

    result = CliRunner().invoke(app, ["config", "show"], env={"REASONMED_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert CANARY not in result.output and "***" in result.output
    assert CANARY not in database_label(url)


def test_sqlite_urls_keep_their_paths() -> None:
    for url in ("sqlite:////data/x.db", "sqlite:///x.db", "sqlite:///relative/dir/x.db", "sqlite://"):
        assert (
            redact_url(url) == url
            and redact(f"database {url} is at revision 0013") == f"database {url} is at revision 0013"
        )


@pytest.mark.parametrize(
    "text",
    [
        "a" * 100_000 + " http://u:p@h/x",  # a long word before a URL: once tried per letter, 25 s
        "a:" * 50_000,
        '"' * 100_000,
        "Bearer " + "a" * 100_000,
        "Authorization: " * 7_000,
    ],
    ids=["word-then-url", "colons", "quotes", "bearer", "headers"],
)
def test_redaction_takes_linear_time(text: str) -> None:
    """Server replies are masked whole (up to 4 KiB), config values too: no input may make it crawl. Timed
    in this thread's CPU seconds, which a busy machine does not stretch (the quadratic case took 25 s; the
    linear ones take under 0.1 s)."""
    import time

    started = time.thread_time()
    redact(text)
    assert time.thread_time() - started < 0.5
