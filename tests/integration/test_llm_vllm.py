"""The in-process vLLM engine backend against a real vLLM, when the optional extra and a model exist.

This needs ``pip install 'reasonmed[vllm]'``, a GPU, and a small local model named by
``REASONMED_TEST_VLLM_MODEL``; the backend's mapping logic is tested without vLLM in
``test_llm_vllm_offline.py``.
"""

from __future__ import annotations

import os

import pytest

REASON = "vLLM is not installed (optional extra [vllm]); in-process engine tests need it"
pytest.importorskip("vllm", reason=REASON)
MODEL = os.environ.get("REASONMED_TEST_VLLM_MODEL")
if not MODEL:
    pytest.skip(
        REASON + " (and REASONMED_TEST_VLLM_MODEL must name a small local model)", allow_module_level=True
    )

from reasonmed.config import EndpointConfig  # noqa: E402
from reasonmed.llm.vllm_backend import VLLMEngineBackend  # noqa: E402


async def test_engine_backend_generates_n_seeded_choices() -> None:
    cfg = EndpointConfig(
        kind="vllm",
        model=MODEL,
        engine_args={"max_model_len": 1024, "gpu_memory_utilization": 0.5, "enforce_eager": True},
    )
    backend = VLLMEngineBackend("local", cfg)
    try:
        messages = [{"role": "user", "content": "Name one organ of the human body."}]
        first = await backend.complete(messages, temperature=0.7, max_tokens=16, n=2, seed=1)
        again = await backend.complete(messages, temperature=0.7, max_tokens=16, n=2, seed=1)
    finally:
        await backend.aclose()
    assert [c.index for c in first] == [0, 1]
    assert all(c.text and c.finish_reason in ("stop", "length") for c in first)
    assert all(c.prompt_tokens and c.completion_tokens for c in first)
    assert [c.text for c in first] == [c.text for c in again]  # seeded sampling is reproducible
