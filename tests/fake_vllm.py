"""A stand-in ``vllm`` package for the in-process backend's tests, shaped like vLLM 0.34.0.

vLLM needs a GPU, so the suite never imports the real one. This module mirrors the names, parameters
and attributes that ``reasonmed/llm/vllm_backend.py`` touches as vLLM 0.34.0 defines them (commit
62d4bc3c7, read from its source on 2026-12-06; file:line below are that release's), so a backend that
drifts from that API fails here and not only on a GPU machine. ``USED`` lists the same things for
``test_vllm_api_shape.py``, which checks them against this module always and against the real vllm
where it is installed. Behaviour is kept to what the backend relies on; everything else is left out.
"""

from __future__ import annotations

import enum
import sys
import types
from collections.abc import AsyncGenerator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

import pytest

VLLM_VERSION = "0.34.0"
VLLM_COMMIT = "62d4bc3c7"

# What the backend uses: entry point -> the parameters (or attributes) it passes (or reads). Engine
# args come from the deploy files and the integration test, checked by test_vllm_api_shape.py.
USED: dict[str, tuple[str, ...]] = {
    "AsyncLLMEngine.from_engine_args": ("engine_args",),
    "AsyncLLMEngine.generate": ("prompt", "sampling_params", "request_id"),
    "AsyncLLMEngine.get_tokenizer": (),
    "AsyncLLMEngine.shutdown": (),
    "SamplingParams": (
        "n",
        "temperature",
        "top_p",
        "max_tokens",
        "seed",
        "stop",
        "output_kind",
        "structured_outputs",
    ),
    "StructuredOutputsParams": ("json",),
    "RequestOutputKind": ("FINAL_ONLY",),
    "RequestOutput": ("outputs", "prompt_token_ids", "finished"),
    "CompletionOutput": ("index", "text", "token_ids", "finish_reason"),
    "TokensPrompt": ("prompt_token_ids",),
}


# vllm/exceptions.py:10-28, :131, :147, :162; vllm/v1/engine/exceptions.py:6, :12
class VLLMError(Exception):
    pass


class VLLMClientError(VLLMError):
    pass


class VLLMServerError(VLLMError):
    pass


class VLLMValidationError(VLLMClientError):
    def __init__(self, message: str, *, parameter: str | None = None, value: Any = None) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.value = value


class GenerationError(VLLMServerError):
    pass


class GracefulHTTPError(VLLMError):
    def __init__(self, message: str, http_status: int) -> None:
        super().__init__(message)
        self.http_status = http_status


class QueueOverflowError(GracefulHTTPError):
    def __init__(self) -> None:
        super().__init__("The engine is currently busy and cannot accept new requests.", 503)


class EngineGenerateError(VLLMServerError):
    pass


class EngineDeadError(VLLMServerError):
    def __init__(self) -> None:
        super().__init__("EngineCore encountered an issue. See stack trace (above) for the root cause.")


class RequestOutputKind(enum.Enum):  # vllm/sampling_params.py:208
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


@dataclass
class StructuredOutputsParams:  # vllm/sampling_params.py:102 (a pydantic dataclass)
    json: str | dict[str, Any] | None = None
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    structural_tag: str | None = None

    def __post_init__(self) -> None:
        constraints = (
            self.json,
            self.regex,
            self.choice,
            self.grammar,
            self.json_object,
            self.structural_tag,
        )
        if sum(c is not None for c in constraints) != 1:
            raise VLLMValidationError("You must use exactly one kind of structured outputs constraint")


@dataclass(kw_only=True)
class SamplingParams:
    """vllm/sampling_params.py:271 (a msgspec.Struct): the fields the backend sets, with 0.34's defaults,
    and the validation of them that ``__post_init__``/``_verify_args`` (:563, :638) does, raising
    ``VLLMValidationError``. An unknown keyword is a TypeError, as for the real struct."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: str | list[str] | None = None
    max_tokens: int | None = 16
    output_kind: RequestOutputKind = RequestOutputKind.CUMULATIVE
    structured_outputs: StructuredOutputsParams | None = None

    def __post_init__(self) -> None:
        self.stop = [] if self.stop is None else [self.stop] if isinstance(self.stop, str) else self.stop
        if self.n < 1:
            raise VLLMValidationError(f"n must be at least 1, got {self.n}.")
        if not 0.0 <= self.temperature <= 2.0:
            raise VLLMValidationError(
                f"temperature must be in [0, 2], got {self.temperature}.", parameter="temperature"
            )
        if not 0.0 < self.top_p <= 1.0:
            raise VLLMValidationError(f"top_p must be in (0, 1], got {self.top_p}.", parameter="top_p")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise VLLMValidationError(f"max_tokens must be at least 1, got {self.max_tokens}.")
        if any(s == "" for s in self.stop):
            raise VLLMValidationError("stop cannot contain an empty string.")


@dataclass
class CompletionOutput:  # vllm/outputs.py:59
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: Any
    routed_experts: Any = None
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class RequestOutput:  # vllm/outputs.py:137
    def __init__(
        self,
        request_id: str,
        prompt: str | None,
        prompt_token_ids: list[int] | None,
        prompt_logprobs: Any,
        outputs: list[CompletionOutput],
        finished: bool,
        metrics: Any = None,
        lora_request: Any = None,
        encoder_prompt: str | None = None,
        encoder_prompt_token_ids: list[int] | None = None,
        num_cached_tokens: int | None = None,
        num_cache_creation_tokens: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.request_id = request_id
        self.prompt = prompt
        self.prompt_token_ids = prompt_token_ids
        self.prompt_logprobs = prompt_logprobs
        self.outputs = outputs
        self.finished = finished
        self.num_cached_tokens = num_cached_tokens


@dataclass
class AsyncEngineArgs:
    """vllm/engine/arg_utils.py:488 ``EngineArgs`` (a dataclass; ``AsyncEngineArgs(EngineArgs)`` at :3281):
    the fields the deploy files and tests set, with 0.34's defaults. An unknown key is a TypeError."""

    model: str = "Qwen/Qwen3-0.6B"
    seed: int = 0
    max_model_len: int | None = None
    tensor_parallel_size: int = 1
    enable_prefix_caching: bool | None = None
    gpu_memory_utilization: float | None = None
    max_num_seqs: int | None = None
    disable_log_stats: bool = False
    enforce_eager: bool = False
    enable_log_requests: bool = False


class Tokenizer:
    """A Hugging Face tokenizer under transformers 5 (vLLM 0.34 requires transformers>=5.16.1):
    ``apply_chat_template(tokenize=True)`` returns a ``BatchEncoding`` (a mapping) unless told
    ``return_dict=False`` (vllm/renderers/hf.py:912-918 forces it for vLLM's own calls). One token id per
    character of ``<|role|>content...<|assistant|>``."""

    def apply_chat_template(
        self,
        conversation: list[dict[str, str]],
        tools: list[dict[str, Any]] | None = None,
        *,
        add_generation_prompt: bool = False,
        tokenize: bool = True,
        return_dict: bool = True,
        **kwargs: Any,
    ) -> str | list[int] | dict[str, list[int]]:
        text = "".join(f"<|{m['role']}|>{m['content']}" for m in conversation)
        text += "<|assistant|>" if add_generation_prompt else ""
        if not tokenize:
            return text
        ids = [ord(c) for c in text]
        return {"input_ids": ids, "attention_mask": [1] * len(ids)} if return_dict else ids


class TokensPrompt(TypedDict):  # vllm/inputs/llm.py:111 (a TypedDict: a plain dict at run time)
    prompt_token_ids: list[int]
    prompt: NotRequired[str]
    cache_salt: NotRequired[str]


def check_prompt(prompt: Any) -> list[int]:
    """The token ids of a prompt as vLLM 0.34 parses one (``PromptType``, vllm/inputs/llm.py:151, :226:
    a str, a list of ids, a ``TextPrompt`` or a ``TokensPrompt`` dict); a malformed one is refused."""
    ids = prompt.get("prompt_token_ids") if isinstance(prompt, Mapping) else prompt
    if isinstance(ids, str) or not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise VLLMValidationError(f"prompt_token_ids must be a list of token ids, got {ids!r:.80}")
    return ids


@dataclass
class AsyncLLM:
    """vllm/v1/engine/async_llm.py:94; ``vllm.AsyncLLMEngine`` is an alias of it
    (vllm/engine/async_llm_engine.py:6). The methods the backend calls, with 0.34's signatures.

    ``generate`` answers like V1 with ``n > 1`` and no ``FINAL_ONLY``: each output carries ONE child's
    cumulative completion, children interleaved and finishing out of order, the last output holding only
    the last child to finish (the backend must collect choices by index either way)."""

    engine_args: AsyncEngineArgs
    fail_with: BaseException | None = None
    seen: list[tuple[Any, SamplingParams, str]] = field(default_factory=list)
    shut_down: bool = False
    aborted: list[str] = field(default_factory=list)

    @classmethod
    def from_engine_args(  # :280
        cls,
        engine_args: AsyncEngineArgs,
        start_engine_loop: bool = True,
        usage_context: Any = None,
        stat_loggers: list[Any] | None = None,
    ) -> AsyncLLM:
        return cls(engine_args)

    async def generate(  # :740
        self,
        prompt: Any,
        sampling_params: SamplingParams,
        request_id: str,
        *,
        prompt_text: str | None = None,
        lora_request: Any = None,
        tokenization_kwargs: dict[str, Any] | None = None,
        trace_headers: Mapping[str, str] | None = None,
        priority: int = 0,
        data_parallel_rank: int | None = None,
        session_id: str | None = None,
        kv_hints: Any = None,
        reasoning_ended: bool | None = None,
        reasoning_parser_kwargs: dict[str, Any] | None = None,
    ) -> AsyncGenerator[RequestOutput, None]:
        self.seen.append((prompt, sampling_params, request_id))
        if self.fail_with is not None:
            raise self.fail_with
        prompt_ids = check_prompt(prompt)
        limit = self.engine_args.max_model_len
        if limit is not None and len(prompt_ids) >= limit:  # InputProcessor._validate_prompt_len
            raise VLLMValidationError(
                f"The decoder prompt (length {len(prompt_ids)}) is longer than the maximum model"
                f" length of {limit}."
            )
        n = sampling_params.n
        for i in range(n):
            partial = CompletionOutput(i, "par", [1], None, None)
            yield RequestOutput(request_id, None, prompt_ids, None, [partial], finished=False)
        for i in reversed(range(n)):
            done = CompletionOutput(i, f"choice {i} text", [1] * (4 + i), None, None, finish_reason="stop")
            yield RequestOutput(request_id, None, prompt_ids, None, [done], finished=i == 0)

    @property
    def tokenizer(self) -> Tokenizer:  # :1130
        return Tokenizer()

    def get_tokenizer(self) -> Tokenizer:  # :1133, a plain call since vLLM 0.10 (a coroutine before)
        return Tokenizer()

    async def abort(self, request_id: str | Iterable[str], internal: bool = False) -> None:  # :962
        self.aborted.extend([request_id] if isinstance(request_id, str) else request_id)

    def shutdown(self, timeout: float | None = None) -> None:  # :306
        self.shut_down = True


def install(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Put the stand-in in ``sys.modules`` as ``vllm`` and its submodules; the engine the backend
    creates is then ``module.engine``."""
    module = types.ModuleType("vllm")

    class RecordedAsyncLLM(AsyncLLM):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            module.engine = self  # type: ignore[attr-defined]

    RecordedAsyncLLM.__name__ = RecordedAsyncLLM.__qualname__ = "AsyncLLM"
    module.__version__ = VLLM_VERSION  # type: ignore[attr-defined]
    module.AsyncEngineArgs = AsyncEngineArgs  # type: ignore[attr-defined]
    module.AsyncLLMEngine = RecordedAsyncLLM  # type: ignore[attr-defined]
    module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    module.RequestOutput = RequestOutput  # type: ignore[attr-defined]
    module.CompletionOutput = CompletionOutput  # type: ignore[attr-defined]
    module.TokensPrompt = TokensPrompt  # type: ignore[attr-defined]
    submodules = {
        "vllm.sampling_params": {
            "SamplingParams": SamplingParams,
            "StructuredOutputsParams": StructuredOutputsParams,
            "RequestOutputKind": RequestOutputKind,
        },
        "vllm.exceptions": {
            "VLLMError": VLLMError,
            "VLLMClientError": VLLMClientError,
            "VLLMServerError": VLLMServerError,
            "VLLMValidationError": VLLMValidationError,
            "GenerationError": GenerationError,
            "GracefulHTTPError": GracefulHTTPError,
            "QueueOverflowError": QueueOverflowError,
        },
    }
    for name, attrs in submodules.items():
        sub = types.ModuleType(name)
        for attr, value in attrs.items():
            setattr(sub, attr, value)
        monkeypatch.setitem(sys.modules, name, sub)
        setattr(module, name.split(".")[1], sub)
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module
