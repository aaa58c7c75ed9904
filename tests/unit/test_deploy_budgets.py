"""Every role of every bundled profile fits the context of the server it is sent to.

The contexts come from where the servers are configured, not from the code under test: the
``--max-model-len`` of each ``vllm serve`` line in deploy/README.md (matched to an endpoint by the port of
its default base_url), llama.cpp's ``--n_ctx`` in the llama.cpp profile's start line, the in-process
engine's ``max_model_len``, and for hosted models the provider's documented context, stated here.
The largest request of each role is reasonmed/pipeline/budgets.py's rule.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from reasonmed.config import load_pipeline_config
from reasonmed.pipeline.budgets import role_budgets

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
# OpenAI's model documentation: 128,000-token context windows.
HOSTED_CONTEXTS = {"gpt-4o": 128_000, "o1-mini": 128_000, "gpt-4o-mini": 128_000}
_DEFAULT = re.compile(r"\$\{[A-Za-z0-9_]+:-([^}]*)\}")


def served_contexts() -> dict[int, int]:
    """Port -> --max-model-len of every `vllm serve` command in deploy/README.md."""
    found = {}
    for block in re.findall(r"```bash\n(.*?)```", (DEPLOY / "README.md").read_text(), re.S):
        for command in block.replace("\\\n", " ").splitlines():
            if "vllm serve" in command:
                port = re.search(r"--port (\d+)", command)
                length = re.search(r"--max-model-len (\d+)", command)
                assert port and length, command
                found[int(port[1])] = int(length[1])
    return found


def _default(value: str) -> str:
    """A ``${VAR:-default}`` value as the file gives it, without the environment."""
    m = _DEFAULT.fullmatch(value)
    return m[1] if m else value


def server_contexts(name: str) -> dict[str, int]:
    """Endpoint -> the context its server is configured with, read from the deploy files and docs."""
    text = (DEPLOY / name).read_text()
    endpoints: dict[str, Any] = yaml.safe_load(text)["endpoints"]
    out = {}
    for endpoint, cfg in endpoints.items():
        if cfg.get("kind") == "vllm":
            out[endpoint] = cfg["engine_args"]["max_model_len"]
            continue
        url, model = _default(cfg["base_url"]), _default(cfg["model"])
        if name == "pipeline.llamacpp.yaml":
            n_ctx = re.search(r"--n_ctx (\d+)", text)
            assert n_ctx, "the llama.cpp profile's start line gives no --n_ctx"
            out[endpoint] = int(n_ctx[1])
        elif url.startswith("https://"):
            out[endpoint] = HOSTED_CONTEXTS[model]
        else:
            port = re.search(r":(\d+)/v1$", url)
            assert port, url
            out[endpoint] = served_contexts()[int(port[1])]
    return out


def test_the_readme_starts_every_server_the_profiles_use() -> None:
    assert served_contexts() == {8001: 32768, 8002: 20480, 8003: 16384, 8005: 32768}


@pytest.mark.parametrize(
    "name",
    ["pipeline.local.yaml", "pipeline.paper.yaml", "pipeline.llamacpp.yaml", "pipeline.vllm-inprocess.yaml"],
)
def test_every_role_fits_its_servers_context(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("REASONMED_REFINER_MODEL", "REASONMED_REGENERATOR_MODEL", "REASONMED_SUMMARIZER_MODEL"):
        monkeypatch.delenv(var, raising=False)
    cfg = load_pipeline_config(DEPLOY / name)
    contexts = server_contexts(name)
    over = [
        f"{b.describe(contexts[b.endpoint])}" for b in role_budgets(cfg) if b.total > contexts[b.endpoint]
    ]
    assert not over, f"{name}: " + "; ".join(over)
    # Where the file declares a context (a server that reports none), it is the server's.
    for endpoint, ep in cfg.endpoints.items():
        assert ep.context_tokens in (None, contexts[endpoint]), endpoint
