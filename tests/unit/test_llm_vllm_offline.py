"""The in-process vLLM backend's own logic (chat template, sampling parameters, outputs, errors),
against a stand-in ``vllm`` shaped like vLLM 0.34.0 (tests/fake_vllm.py): the real engine needs a GPU
and weights (see test_llm_vllm.py; test_vllm_api_shape.py checks the stand-in's shape against the real
one where vLLM is installed)."""

from __future__ import annotations

import types
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from reasonmed.config import EndpointConfig
from reasonmed.llm import LLMError
from reasonmed.llm.usage import UsageTracker
from reasonmed.llm.vllm_backend import VLLMEngineBackend
from reasonmed.structured_output import SCORE_SCHEMA, VERDICT_SCHEMA, response_format
from tests import fake_vllm as fv

MESSAGES = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    return fv.install(monkeypatch)


def _backend(usage: UsageTracker | None = None, **engine_args: Any) -> VLLMEngineBackend:
    """The backend on the stand-in (vllm is imported by the constructor, so the fixture comes first)."""
    cfg = EndpointConfig(
        kind="vllm", model="org/tiny-model", engine_args=engine_args or {"tensor_parallel_size": 2}
    )
    return VLLMEngineBackend("local", cfg, usage=usage)


async def test_request_is_templated_sampled_and_mapped(fake_vllm: types.ModuleType) -> None:
    usage = UsageTracker()
    backend = _backend(usage)
    engine = fake_vllm.engine
    assert (engine.engine_args.model, engine.engine_args.tensor_parallel_size) == ("org/tiny-model", 2)
    out = await backend.complete(MESSAGES, temperature=0.7, max_tokens=64, top_p=0.9, n=3, seed=5, stop="END")
    prompt, params, request_id = engine.seen[0]
    # Token ids straight from the chat template (asked for a list, not transformers 5's default
    # BatchEncoding): the engine must not tokenise (and add BOS) again.
    assert prompt == {"prompt_token_ids": [ord(c) for c in "<|system|>S<|user|>U<|assistant|>"]}
    assert {name: getattr(params, name) for name in fv.USED["SamplingParams"]} == {
        "n": 3,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 64,
        "seed": 5,
        "stop": ["END"],
        "output_kind": fv.RequestOutputKind.FINAL_ONLY,
        "structured_outputs": None,
    }
    assert [c.index for c in out] == [0, 1, 2] and out[2].text == "choice 2 text"
    assert {c.request_id for c in out} == {request_id}
    assert [c.completion_tokens for c in out] == [4, 5, 6] and out[0].prompt_tokens == 33
    assert all(
        c.finish_reason == "stop" and c.endpoint == "local" and c.model == "org/tiny-model" for c in out
    )
    [row] = usage.snapshot()
    assert (row.calls, row.prompt_tokens, row.completion_tokens) == (1, 33, 15)
    await backend.aclose()
    assert engine.shut_down


async def test_max_tokens_is_fitted_to_the_engines_max_model_len_by_exact_count(
    fake_vllm: types.ModuleType,
) -> None:
    """The prompt's token ids are at hand: ``<|system|>S<|user|>U<|assistant|>`` is 33 ids in the fake, so a
    300-token context leaves 267."""
    backend = _backend(max_model_len=300)
    fits = await backend.complete(MESSAGES, temperature=0.0, max_tokens=200)
    lowered = await backend.complete(MESSAGES, temperature=0.0, max_tokens=400)
    assert [p.max_tokens for _, p, _ in fake_vllm.engine.seen] == [200, 267]
    assert (fits[0].max_tokens, lowered[0].max_tokens) == (200, 267)
    long_prompt = [{"role": "user", "content": "x" * 250}]  # 271 ids: 29 left, fewer than the 64 asked
    with pytest.raises(LLMError) as info:
        await backend.complete(long_prompt, temperature=0.0, max_tokens=64)
    assert (info.value.kind, info.value.attempts) == ("context_exceeded", 0)
    assert len(fake_vllm.engine.seen) == 2  # never submitted


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        # vLLM 0.34: refusals are VLLMClientError, no longer ValueError; generate re-raises them as is.
        (fv.VLLMValidationError("The decoder prompt (length 40000) is longer than 32768."), "client_error"),
        # ... and wraps anything unexpected in EngineGenerateError; EngineDeadError when the core died.
        (fv.EngineGenerateError(), "server_error"),
        (fv.EngineDeadError(), "server_error"),
        (fv.QueueOverflowError(), "server_error"),  # admission control's 503
        # Older releases: a plain ValueError is the refusal.
        (ValueError("prompt is too long"), "client_error"),
        (RuntimeError("engine dead"), "server_error"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v,
)
async def test_engine_failures_are_classified(
    fake_vllm: types.ModuleType, failure: BaseException, kind: str
) -> None:
    backend = _backend()
    fake_vllm.engine.fail_with = failure
    with pytest.raises(LLMError) as info:
        await backend.complete([{"role": "user", "content": "x"}], temperature=0.0, max_tokens=4)
    assert info.value.kind == kind and info.value.attempts == 1


@pytest.mark.parametrize("bad", [{"temperature": -1.0}, {"top_p": 0.0}, {"stop": [""]}])
async def test_invalid_sampling_parameters_are_client_errors(
    fake_vllm: types.ModuleType, bad: dict[str, Any]
) -> None:
    """SamplingParams refuses them with VLLMValidationError (no longer a ValueError)."""
    args: dict[str, Any] = {"temperature": 0.5, "max_tokens": 4, **bad}
    with pytest.raises(LLMError) as info:
        await _backend().complete([{"role": "user", "content": "x"}], **args)
    assert info.value.kind == "client_error" and "invalid sampling parameters" in str(info.value)
    assert fake_vllm.engine.seen == []


async def test_an_engine_answer_short_of_n_choices_is_a_bad_response(fake_vllm: types.ModuleType) -> None:
    backend = _backend()

    async def one_choice(
        prompt: Any, sampling_params: Any, request_id: str
    ) -> AsyncIterator[fv.RequestOutput]:
        out = fv.CompletionOutput(0, "only one", [1, 2], None, None, finish_reason="stop")
        yield fv.RequestOutput(request_id, None, [1], None, [out], finished=True)

    fake_vllm.engine.generate = one_choice
    with pytest.raises(LLMError) as info:
        await backend.complete([{"role": "user", "content": "x"}], temperature=0.7, max_tokens=4, n=3)
    assert info.value.kind == "bad_response" and "1 of 3" in str(info.value)


@pytest.mark.parametrize("reason", ["abort", "error"])
async def test_a_choice_the_engine_aborted_is_a_failure_not_text(
    fake_vllm: types.ModuleType, reason: str
) -> None:
    """vLLM ends in-flight requests with finish_reason ``abort`` when it shuts down: partial text."""
    backend = _backend()

    async def cut_short(
        prompt: Any, sampling_params: Any, request_id: str
    ) -> AsyncIterator[fv.RequestOutput]:
        outs = [
            fv.CompletionOutput(0, "a whole answer", [1, 2, 3], None, None, finish_reason="stop"),
            fv.CompletionOutput(1, "half an ans", [1, 2], None, None, finish_reason=reason),
        ]
        yield fv.RequestOutput(request_id, None, [1], None, outs, finished=True)

    fake_vllm.engine.generate = cut_short
    with pytest.raises(LLMError) as info:
        await backend.complete([{"role": "user", "content": "x"}], temperature=0.7, max_tokens=4, n=2)
    assert info.value.kind == "server_error" and reason in str(info.value)


async def test_json_schema_response_format_becomes_vllm_structured_outputs(
    fake_vllm: types.ModuleType,
) -> None:
    backend = _backend()
    fmt = response_format("json_schema", "verdict", VERDICT_SCHEMA)
    await backend.complete(
        [{"role": "user", "content": "U"}], temperature=0.0, max_tokens=8, response_format=fmt
    )
    _, params, _ = fake_vllm.engine.seen[-1]
    assert params.structured_outputs == fv.StructuredOutputsParams(json=VERDICT_SCHEMA)


async def test_older_vllm_gets_guided_decoding_and_a_schemaless_format_is_refused(
    fake_vllm: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM before 0.10.2: ``GuidedDecodingParams`` and ``SamplingParams(guided_decoding=...)``."""

    @dataclass
    class GuidedDecodingParams:
        json: Any = None

    @dataclass(kw_only=True)
    class OlderSamplingParams(fv.SamplingParams):
        guided_decoding: GuidedDecodingParams | None = None

    monkeypatch.delattr(fake_vllm.sampling_params, "StructuredOutputsParams")
    monkeypatch.setattr(
        fake_vllm.sampling_params, "GuidedDecodingParams", GuidedDecodingParams, raising=False
    )
    monkeypatch.setattr(fake_vllm, "SamplingParams", OlderSamplingParams)
    backend = _backend()
    fmt = response_format("llamacpp", "score", SCORE_SCHEMA)  # either dialect carries the schema
    await backend.complete(
        [{"role": "user", "content": "U"}], temperature=0.0, max_tokens=8, response_format=fmt
    )
    _, params, _ = fake_vllm.engine.seen[-1]
    assert params.guided_decoding == GuidedDecodingParams(json=SCORE_SCHEMA)
    with pytest.raises(LLMError) as err:
        await backend.complete(
            [{"role": "user", "content": "U"}],
            temperature=0.0,
            max_tokens=8,
            response_format={"type": "json_object"},
        )
    assert err.value.kind == "client_error" and "JSON-schema" in str(err.value)


async def test_older_vllm_with_an_async_get_tokenizer_and_transformers_4(fake_vllm: types.ModuleType) -> None:
    """vLLM before 0.10: ``get_tokenizer`` is a coroutine; transformers 4 returns a plain list of ids
    (and takes ``return_dict=False`` all the same)."""
    backend = _backend()

    class Transformers4Tokenizer(fv.Tokenizer):
        def apply_chat_template(self, conversation: Any, tools: Any = None, **kwargs: Any) -> Any:
            return super().apply_chat_template(conversation, tools, **{"return_dict": False, **kwargs})

    async def get_tokenizer() -> fv.Tokenizer:
        return Transformers4Tokenizer()

    fake_vllm.engine.get_tokenizer = get_tokenizer
    [out] = await backend.complete(MESSAGES, temperature=0.0, max_tokens=8)
    prompt, _, _ = fake_vllm.engine.seen[0]
    assert prompt == {"prompt_token_ids": [ord(c) for c in "<|system|>S<|user|>U<|assistant|>"]}
    assert out.text == "choice 0 text"


async def test_a_tokenizer_answering_a_batch_encoding_or_text_is_handled(
    fake_vllm: types.ModuleType,
) -> None:
    """A tokenizer that ignores ``return_dict=False`` is unwrapped; one that returns text is refused."""
    backend = _backend()

    class IgnoresReturnDict(fv.Tokenizer):
        def apply_chat_template(self, conversation: Any, tools: Any = None, **kwargs: Any) -> Any:
            return super().apply_chat_template(conversation, tools, **{**kwargs, "return_dict": True})

    fake_vllm.engine.get_tokenizer = IgnoresReturnDict
    await backend.complete(MESSAGES, temperature=0.0, max_tokens=8)
    assert fake_vllm.engine.seen[0][0] == {
        "prompt_token_ids": [ord(c) for c in "<|system|>S<|user|>U<|assistant|>"]
    }

    class GivesText(fv.Tokenizer):
        def apply_chat_template(self, conversation: Any, tools: Any = None, **kwargs: Any) -> Any:
            return super().apply_chat_template(conversation, tools, **{**kwargs, "tokenize": False})

    other = _backend()
    fake_vllm.engine.get_tokenizer = GivesText
    with pytest.raises(LLMError) as info:
        await other.complete(MESSAGES, temperature=0.0, max_tokens=8)
    assert info.value.kind == "client_error" and "not token ids" in str(info.value)
