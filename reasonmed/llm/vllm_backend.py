"""Chat completions from an in-process vLLM engine (``kind: vllm``), for a GPU box without a server.

vLLM is imported inside the constructor, so the base install never needs it (``pip install
'reasonmed[vllm]'`` adds it). No semaphore here: many per-question tasks submit at once and vLLM's
scheduler batches them continuously, which is the whole point of running the engine in-process.
There is no HTTP, so nothing to retry: engine failures are classified and raised once. ``max_tokens`` is
lowered to the room the prompt leaves in the engine's ``max_model_len`` (``llm/context.py``), counted exactly
here: the prompt's token ids are at hand.

Two details of the engine shape the code: the prompt goes in as token ids from the chat template
(a templated *string* would be tokenised again with special tokens, doubling the BOS of Llama-family
models), and choices are collected by index over every output the engine yields, since a streamed
V1 request with ``n > 1`` carries one child's completion per output (only ``FINAL_ONLY`` aggregates).

Checked by reading vLLM 0.34.0's source (commit 62d4bc3c7, 2026-12-06; README "The in-process vLLM
engine"), where ``AsyncLLMEngine`` is an alias of the V1 ``AsyncLLM``. What that reading changed, older
forms kept: the chat template is asked for ``return_dict=False`` (transformers 5, which vLLM 0.34
requires, returns a ``BatchEncoding`` by default); a refused request is a ``vllm.exceptions.VLLMClientError``,
no longer a ``ValueError``; a choice the engine ended unfinished (``finish_reason`` ``abort``, which 0.34
sends for requests in flight at shutdown, or ``error``) is a failure, not text.

Configuration example (pipeline YAML)::

    endpoints:
      qwen-local:
        kind: vllm
        model: Qwen/Qwen2.5-72B-Instruct        # HF id or a local path
        max_in_flight: 256                      # informational for kind=vllm; vLLM batches itself
        engine_args:                            # passed to vllm.AsyncEngineArgs
          tensor_parallel_size: 8
          max_model_len: 32768
          gpu_memory_utilization: 0.92
          max_num_seqs: 256
          enable_prefix_caching: true           # the 9 paths of a question share their prompt
"""

from __future__ import annotations

import inspect
import itertools
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from reasonmed.config import EndpointConfig
from reasonmed.llm.context import ContextExceeded, declared_context, fit_max_tokens
from reasonmed.llm.types import Completion, LLMError, Message
from reasonmed.llm.usage import UsageTracker
from reasonmed.structured_output import schema_of


def _structured_params(schema: Mapping[str, Any]) -> dict[str, Any]:
    """vLLM's own guided decoding for a JSON schema: ``structured_outputs`` since 0.10.2 (the only form
    from 0.12), ``guided_decoding`` before."""
    try:
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(json=dict(schema))}
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(json=dict(schema))}


def _refusals(*also: type[BaseException]) -> tuple[type[BaseException], ...]:
    """The exceptions by which vLLM refuses a request (its 4xx: prompt too long, bad parameters).

    ``ValueError`` in older releases (their ``VLLMValidationError`` was one); vLLM 0.34's
    ``VLLMValidationError`` derives from ``VLLMClientError(VLLMError(Exception))`` instead
    (vllm/exceptions.py), raised by ``SamplingParams`` and re-raised as is by ``generate``.
    """
    try:
        from vllm.exceptions import VLLMClientError
    except ImportError:  # releases before the client/server split
        return (ValueError, *also)
    return (ValueError, VLLMClientError, *also)


def _template_ids(tokenizer: Any, messages: Sequence[Message]) -> list[int]:
    """The chat template's token ids. ``return_dict=False``: transformers 5 made ``True`` the default,
    a ``BatchEncoding`` whose iteration yields its keys; a tokenizer that still returns one is unwrapped."""
    ids = tokenizer.apply_chat_template(
        [dict(m) for m in messages], tokenize=True, add_generation_prompt=True, return_dict=False
    )
    if isinstance(ids, Mapping):
        ids = ids["input_ids"]
    if isinstance(ids, str) or not all(isinstance(i, int) for i in ids):
        raise TypeError(f"the chat template gave {type(ids).__name__}, not token ids")
    return list(ids)


# finish_reason of a choice vLLM ended without finishing it: ``abort`` (aborted, as when the engine shuts
# down with requests in flight), ``error`` (a request-level failure; 0.34 raises it instead).
_UNFINISHED = frozenset({"abort", "error"})


class VLLMEngineBackend:
    """``AsyncLLMEngine`` (vLLM's async engine; ``AsyncLLM`` in V1) behind the ChatBackend protocol."""

    def __init__(
        self,
        name: str,
        cfg: EndpointConfig,
        *,
        usage: UsageTracker | None = None,
        context_tokens: int | None = None,
    ) -> None:
        try:
            from vllm import AsyncEngineArgs, AsyncLLMEngine, SamplingParams
        except ImportError as exc:  # pragma: no cover - depends on the optional extra
            raise ImportError(
                f"endpoint {name}: kind 'vllm' needs vLLM installed (pip install 'reasonmed[vllm]'): {exc}"
            ) from exc
        self.name = name
        self.model = cfg.model
        self._cfg = cfg
        self._usage = usage
        self.context_tokens = context_tokens if context_tokens is not None else declared_context(cfg).tokens
        self._sampling_params = SamplingParams
        self._refused = _refusals()
        self._bad_params = _refusals(TypeError)
        try:  # ask for the finished choices only: no per-token outputs to build and discard
            from vllm.sampling_params import RequestOutputKind

            self._final_only: dict[str, Any] = {"output_kind": RequestOutputKind.FINAL_ONLY}
        except ImportError:  # pragma: no cover - vLLM releases before RequestOutputKind
            self._final_only = {}
        args = {"model": cfg.model, **cfg.engine_args}
        self._engine: Any = AsyncLLMEngine.from_engine_args(AsyncEngineArgs(**args))
        self._tokenizer: Any = None
        self._ids = itertools.count()
        self._prefix = f"{name}-{uuid.uuid4().hex[:8]}"

    def __repr__(self) -> str:
        return f"VLLMEngineBackend(name={self.name!r}, model={self.model!r})"

    async def _get_tokenizer(self) -> Any:
        if self._tokenizer is None:
            tok = self._engine.get_tokenizer()  # a coroutine in vLLM < 0.10, a plain call since
            self._tokenizer = await tok if inspect.isawaitable(tok) else tok
        return self._tokenizer

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        temperature: float,
        max_tokens: int,
        top_p: float = 1.0,
        n: int = 1,
        seed: int | None = None,
        stop: str | Sequence[str] | None = None,
        response_format: Mapping[str, Any] | None = None,
        affinity: str | None = None,
    ) -> list[Completion]:
        if n < 1:
            raise ValueError(f"n must be >= 1 (got {n})")
        constraint: dict[str, Any] = {}
        if response_format is not None and response_format.get("type") not in (None, "text"):
            schema = schema_of(response_format)
            if schema is None:
                raise LLMError(
                    f"endpoint {self.name}: the in-process backend takes a JSON-schema response_format only",
                    kind="client_error",
                    endpoint=self.name,
                )
            constraint = _structured_params(schema)
        tokenizer = await self._get_tokenizer()
        try:
            prompt = {"prompt_token_ids": _template_ids(tokenizer, messages)}  # a vllm.TokensPrompt
        except TypeError as exc:
            raise LLMError(f"endpoint {self.name}: {exc}", kind="client_error", endpoint=self.name) from None
        try:
            max_tokens = fit_max_tokens(len(prompt["prompt_token_ids"]), max_tokens, self.context_tokens)
        except ContextExceeded as exc:
            raise exc.error(self.name) from None
        stops = None if stop is None else [stop] if isinstance(stop, str) else list(stop)
        try:
            params = self._sampling_params(
                n=n,
                temperature=temperature,
                top_p=top_p,
                max_tokens=max_tokens,
                seed=seed,
                stop=stops,
                **self._final_only,
                **constraint,
            )
        except self._bad_params as exc:
            raise LLMError(
                f"endpoint {self.name}: invalid sampling parameters: {exc}",
                kind="client_error",
                endpoint=self.name,
            ) from None
        request_id = f"{self._prefix}-{next(self._ids)}"
        started = time.perf_counter()
        final: Any = None
        choices: dict[int, Any] = {}  # index -> that choice's latest (cumulative) output
        try:
            async for output in self._engine.generate(prompt, params, request_id):
                final = output
                for out in output.outputs:
                    choices[out.index] = out
        except self._refused as exc:  # vLLM's validation errors (prompt too long, bad params)
            raise LLMError(
                f"endpoint {self.name}: rejected by the engine: {exc}",
                kind="client_error",
                endpoint=self.name,
            ) from None
        except Exception as exc:  # engine dead or generate failed: a server-side failure
            raise LLMError(
                f"endpoint {self.name}: engine error: {type(exc).__name__}: {exc}",
                kind="server_error",
                endpoint=self.name,
            ) from None
        latency_ms = (time.perf_counter() - started) * 1000.0
        if final is None or len(choices) < n:
            raise LLMError(
                f"endpoint {self.name}: engine returned {len(choices)} of {n} choice(s)",
                kind="bad_response",
                endpoint=self.name,
            )
        unfinished = sorted({str(out.finish_reason) for out in choices.values()} & _UNFINISHED)
        if unfinished:
            raise LLMError(
                f"endpoint {self.name}: the engine ended the request unfinished"
                f" (finish_reason {', '.join(unfinished)})",
                kind="server_error",
                endpoint=self.name,
            )
        prompt_tokens = (
            len(final.prompt_token_ids) if getattr(final, "prompt_token_ids", None) is not None else None
        )
        completions = [
            Completion(
                text=out.text,
                finish_reason=out.finish_reason,
                prompt_tokens=prompt_tokens,
                completion_tokens=len(out.token_ids),
                latency_ms=latency_ms,
                model=self.model,
                endpoint=self.name,
                request_id=request_id,
                index=out.index,
                max_tokens=max_tokens,
            )
            for _, out in sorted(choices.items())
        ]
        if self._usage is not None:
            self._usage.record(
                self.name, self.model, prompt_tokens, sum(c.completion_tokens or 0 for c in completions)
            )
        return completions

    async def aclose(self) -> None:
        shutdown = getattr(self._engine, "shutdown", None)
        if callable(shutdown):
            result = shutdown()
            if inspect.isawaitable(result):
                await result
