"""The in-process vLLM backend's own logic (chat template, sampling parameters, outputs, errors),
against a stand-in ``vllm`` module: the real engine needs a GPU and weights (see test_llm_vllm.py)."""

from __future__ import annotations

import sys
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from reasonmed.config import EndpointConfig
from reasonmed.llm import LLMError
from reasonmed.llm.usage import UsageTracker


@dataclass
class _Out:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str


@dataclass
class _RequestOutput:
    outputs: list[_Out]
    prompt_token_ids: list[int]
    finished: bool = True


class _Tokenizer:
    def apply_chat_template(
        self, messages: list[dict[str, str]], *, tokenize: bool, add_generation_prompt: bool
    ) -> str:
        assert tokenize is False and add_generation_prompt is True
        return "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + "<|assistant|>"


@dataclass
class _Engine:
    args: Any
    fail_with: BaseException | None = None
    seen: list[tuple[str, Any, str]] = field(default_factory=list)
    shut_down: bool = False

    def get_tokenizer(self) -> _Tokenizer:
        return _Tokenizer()

    async def generate(self, prompt: str, params: Any, request_id: str) -> AsyncIterator[_RequestOutput]:
        self.seen.append((prompt, params, request_id))
        if self.fail_with is not None:
            raise self.fail_with
        n = params.kwargs["n"]
        yield _RequestOutput([_Out(i, "par", [1], "length") for i in range(n)], [1, 2, 3], finished=False)
        yield _RequestOutput(
            [_Out(i, f"choice {i} text", [1] * (4 + i), "stop") for i in reversed(range(n))], [1, 2, 3]
        )

    def shutdown(self) -> None:
        self.shut_down = True


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("vllm")

    class AsyncEngineArgs:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    class AsyncLLMEngine:
        @staticmethod
        def from_engine_args(args: AsyncEngineArgs) -> _Engine:
            module.engine = _Engine(args)  # type: ignore[attr-defined]
            return module.engine  # type: ignore[attr-defined]

    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            if kwargs["temperature"] < 0:
                raise ValueError("temperature must be non-negative")
            self.kwargs = kwargs

    module.AsyncEngineArgs = AsyncEngineArgs  # type: ignore[attr-defined]
    module.AsyncLLMEngine = AsyncLLMEngine  # type: ignore[attr-defined]
    module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def _backend(usage: UsageTracker | None = None):  # type: ignore[no-untyped-def]
    from reasonmed.llm.vllm_backend import VLLMEngineBackend

    cfg = EndpointConfig(kind="vllm", model="org/tiny-model", engine_args={"tensor_parallel_size": 2})
    return VLLMEngineBackend("local", cfg, usage=usage)


async def test_request_is_templated_sampled_and_mapped(fake_vllm: types.ModuleType) -> None:
    usage = UsageTracker()
    backend = _backend(usage)
    engine = fake_vllm.engine
    assert engine.args.kwargs == {"model": "org/tiny-model", "tensor_parallel_size": 2}
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    out = await backend.complete(messages, temperature=0.7, max_tokens=64, top_p=0.9, n=3, seed=5, stop="END")
    prompt, params, request_id = engine.seen[0]
    assert prompt == "<|system|>S<|user|>U<|assistant|>"
    assert params.kwargs == {
        "n": 3,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 64,
        "seed": 5,
        "stop": ["END"],
    }
    assert [c.index for c in out] == [0, 1, 2] and out[2].text == "choice 2 text"
    assert {c.request_id for c in out} == {request_id}
    assert [c.completion_tokens for c in out] == [4, 5, 6] and out[0].prompt_tokens == 3
    assert all(
        c.finish_reason == "stop" and c.endpoint == "local" and c.model == "org/tiny-model" for c in out
    )
    [row] = usage.snapshot()
    assert (row.calls, row.prompt_tokens, row.completion_tokens) == (1, 3, 15)
    await backend.aclose()
    assert engine.shut_down


@pytest.mark.parametrize(
    ("failure", "kind"),
    [(ValueError("prompt is too long"), "client_error"), (RuntimeError("engine dead"), "server_error")],
)
async def test_engine_failures_are_classified(
    fake_vllm: types.ModuleType, failure: BaseException, kind: str
) -> None:
    backend = _backend()
    fake_vllm.engine.fail_with = failure
    with pytest.raises(LLMError) as info:
        await backend.complete([{"role": "user", "content": "x"}], temperature=0.0, max_tokens=4)
    assert info.value.kind == kind and info.value.attempts == 1


async def test_invalid_sampling_parameters_are_client_errors(fake_vllm: types.ModuleType) -> None:
    with pytest.raises(LLMError) as info:
        await _backend().complete([{"role": "user", "content": "x"}], temperature=-1.0, max_tokens=4)
    assert info.value.kind == "client_error"
