"""The in-process vLLM backend's own logic (chat template, sampling parameters, outputs, errors),
against a stand-in ``vllm`` module: the real engine needs a GPU and weights (see test_llm_vllm.py)."""

from __future__ import annotations

import enum
import sys
import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from reasonmed.config import EndpointConfig
from reasonmed.llm import LLMError
from reasonmed.llm.usage import UsageTracker
from reasonmed.structured_output import SCORE_SCHEMA, VERDICT_SCHEMA, response_format


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
    ) -> list[int]:
        """Token ids of ``<|role|>content...<|assistant|>`` (one id per character, for the test)."""
        assert tokenize is True and add_generation_prompt is True
        return [ord(c) for c in "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + "<|assistant|>"]


@dataclass
class _Engine:
    args: Any
    fail_with: BaseException | None = None
    seen: list[tuple[str, Any, str]] = field(default_factory=list)
    shut_down: bool = False

    def get_tokenizer(self) -> _Tokenizer:
        return _Tokenizer()

    async def generate(self, prompt: Any, params: Any, request_id: str) -> AsyncIterator[_RequestOutput]:
        """Like vLLM V1 with n > 1: each output carries ONE child's cumulative completion, children
        interleaved and finishing out of order; the last output holds only the last child to finish."""
        self.seen.append((prompt, params, request_id))
        if self.fail_with is not None:
            raise self.fail_with
        n = params.kwargs["n"]
        prompt_ids = [1, 2, 3]
        for i in range(n):
            yield _RequestOutput([_Out(i, "par", [1], None)], prompt_ids, finished=False)  # type: ignore[arg-type]
        for i in reversed(range(n)):
            yield _RequestOutput(
                [_Out(i, f"choice {i} text", [1] * (4 + i), "stop")], prompt_ids, finished=i == 0
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

    sampling = types.ModuleType("vllm.sampling_params")
    sampling.RequestOutputKind = enum.Enum("RequestOutputKind", ["CUMULATIVE", "DELTA", "FINAL_ONLY"])  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling)
    module.sampling_params = sampling  # type: ignore[attr-defined]
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
    # Token ids straight from the chat template: the engine must not tokenise (and add BOS) again.
    assert prompt == {"prompt_token_ids": [ord(c) for c in "<|system|>S<|user|>U<|assistant|>"]}
    assert params.kwargs == {
        "n": 3,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 64,
        "seed": 5,
        "stop": ["END"],
        "output_kind": fake_vllm.sampling_params.RequestOutputKind.FINAL_ONLY,
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


async def test_max_tokens_is_fitted_to_the_engines_max_model_len_by_exact_count(
    fake_vllm: types.ModuleType,
) -> None:
    """The prompt's token ids are at hand: ``<|system|>S<|user|>U<|assistant|>`` is 33 ids in the fake, so a
    300-token context leaves 267."""
    from reasonmed.llm.vllm_backend import VLLMEngineBackend

    cfg = EndpointConfig(kind="vllm", model="org/tiny-model", engine_args={"max_model_len": 300})
    backend = VLLMEngineBackend("local", cfg)
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    fits = await backend.complete(messages, temperature=0.0, max_tokens=200)
    lowered = await backend.complete(messages, temperature=0.0, max_tokens=400)
    assert [p.kwargs["max_tokens"] for _, p, _ in fake_vllm.engine.seen] == [200, 267]
    assert (fits[0].max_tokens, lowered[0].max_tokens) == (200, 267)
    long_prompt = [{"role": "user", "content": "x" * 250}]  # 271 ids: 29 left, fewer than the 64 asked
    with pytest.raises(LLMError) as info:
        await backend.complete(long_prompt, temperature=0.0, max_tokens=64)
    assert (info.value.kind, info.value.attempts) == ("context_exceeded", 0)
    assert len(fake_vllm.engine.seen) == 2  # never submitted


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


async def test_an_engine_answer_short_of_n_choices_is_a_bad_response(fake_vllm: types.ModuleType) -> None:
    backend = _backend()

    async def one_choice(prompt: Any, params: Any, request_id: str) -> AsyncIterator[_RequestOutput]:
        yield _RequestOutput([_Out(0, "only one", [1, 2], "stop")], [1])

    fake_vllm.engine.generate = one_choice
    with pytest.raises(LLMError) as info:
        await backend.complete([{"role": "user", "content": "x"}], temperature=0.7, max_tokens=4, n=3)
    assert info.value.kind == "bad_response" and "1 of 3" in str(info.value)


async def test_json_schema_response_format_becomes_vllm_structured_outputs(
    fake_vllm: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    class StructuredOutputsParams:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    monkeypatch.setattr(
        fake_vllm.sampling_params, "StructuredOutputsParams", StructuredOutputsParams, raising=False
    )
    backend = _backend()
    fmt = response_format("json_schema", "verdict", VERDICT_SCHEMA)
    await backend.complete(
        [{"role": "user", "content": "U"}], temperature=0.0, max_tokens=8, response_format=fmt
    )
    _, params, _ = fake_vllm.engine.seen[-1]
    assert params.kwargs["structured_outputs"].kwargs == {"json": VERDICT_SCHEMA}


async def test_older_vllm_gets_guided_decoding_and_a_schemaless_format_is_refused(
    fake_vllm: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    class GuidedDecodingParams:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    monkeypatch.setattr(
        fake_vllm.sampling_params, "GuidedDecodingParams", GuidedDecodingParams, raising=False
    )
    backend = _backend()
    fmt = response_format("llamacpp", "score", SCORE_SCHEMA)  # either dialect carries the schema
    await backend.complete(
        [{"role": "user", "content": "U"}], temperature=0.0, max_tokens=8, response_format=fmt
    )
    _, params, _ = fake_vllm.engine.seen[-1]
    assert params.kwargs["guided_decoding"].kwargs == {"json": SCORE_SCHEMA}
    with pytest.raises(LLMError) as err:
        await backend.complete(
            [{"role": "user", "content": "U"}],
            temperature=0.0,
            max_tokens=8,
            response_format={"type": "json_object"},
        )
    assert err.value.kind == "client_error" and "JSON-schema" in str(err.value)
