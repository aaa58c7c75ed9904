"""Context budgets: a request's prompt plus ``max_tokens`` must fit the server's context length.

vLLM refuses (HTTP 400) any request whose prompt plus ``max_tokens`` exceeds its ``--max-model-len``, and
that refusal is final for the question. So every backend lowers ``max_tokens`` to the room the prompt
leaves (``fit_max_tokens``), and refuses a request itself, unsent, when the room is less than a minimal
completion: ``context_exceeded``, a final error kind (llm/types.py). The context length of an endpoint is
what its server reports or what the pipeline file declares (``context_tokens``); when both are known the
smaller is used (``ContextLength``).

The prompt is counted by an estimate, not by the server's tokenizer, by measurement (bench/token_estimate.py,
2 cores, loopback). Estimate: a token per ASCII digit (Qwen2.5's and SmolLM2's tokenizers split numbers into
single digits), one per 3 other UTF-8 bytes (bytes, not characters: a micro sign or a CJK character costs a
tokenizer more than a letter), plus 8 tokens per message and 32 per request for the chat template. Over
12,000 prompts (the 1,000 bundled PubMedQA questions, six roles, both prompt profiles, real SmolLM2 outputs
as paths), SmolLM2's own tokenizer with its chat template counted at most 0.88 of the estimate, 0.65 on
average; bytes / 3 alone undercounted the number-heavy abstracts by up to 4%, hence the digit rule. SmolLM2's
49k vocabulary is coarser than Qwen2.5's 152k and Llama 3's 128k (which spend fewer tokens on the same
text), so the estimate is larger still than theirs. It costs 10 us a prompt. Asking the server instead
(llama-cpp-python's ``/extras/tokenize/count``, vLLM's ``/tokenize``) is exact but costs a round trip per
request, 2.8 ms median and 5.1 ms p95 on loopback (llama.cpp, 135M model), and one more request per
completion on a server busy with 256 of them. The estimate's surplus (about half the real count) is taken
from the completion budget only on requests that are lowered; asking the server on those alone would win
it back, but each engine names and shapes that route differently (vLLM's takes the messages, llama-cpp-
python's raw text), so it is not done.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reasonmed.llm.types import LLMError

if TYPE_CHECKING:
    from reasonmed.config import EndpointConfig

BYTES_PER_TOKEN = 3  # of text other than digits (see the module docstring)
_DIGITS = "0123456789"  # Qwen2.5's and SmolLM2's tokenizers split numbers into single digits
MESSAGE_OVERHEAD_TOKENS = 8  # role markers around each message (<|im_start|>user ... <|im_end|>)
REQUEST_OVERHEAD_TOKENS = 32  # BOS, the generation prompt, a default system line some templates add
# Less room than this is not worth a request: a path or a summary comes back truncated and is asked again
# in vain, while a verdict or a score still fits (the bundled profiles' smallest budget is the llama.cpp
# ranker's 96 tokens). A role whose own max_tokens is smaller is never lowered, only refused.
MIN_COMPLETION_TOKENS = 128


def estimate_tokens(text: str) -> int:
    """An upper estimate of the tokens ``text`` takes: a token per ASCII digit, one per 3 other UTF-8 bytes."""
    digits = sum(text.count(d) for d in _DIGITS)
    return digits + math.ceil((len(text.encode("utf-8")) - digits) / BYTES_PER_TOKEN)


def estimate_prompt_tokens(messages: Sequence[Mapping[str, str]]) -> int:
    """An upper estimate of a chat request's prompt tokens, chat template included."""
    return REQUEST_OVERHEAD_TOKENS + sum(
        estimate_tokens(m.get("content") or "") + MESSAGE_OVERHEAD_TOKENS for m in messages
    )


class ContextExceeded(ValueError):
    """Not even a minimal completion fits beside the prompt: the request must not be sent."""

    def __init__(self, prompt_tokens: int, max_tokens: int, context: int) -> None:
        self.prompt_tokens, self.max_tokens, self.context = prompt_tokens, max_tokens, context
        super().__init__(
            f"a prompt of about {prompt_tokens:,} tokens leaves {max(context - prompt_tokens, 0):,} of the "
            f"{context:,}-token context, fewer than the {min(max_tokens, MIN_COMPLETION_TOKENS):,} a completion "
            "needs; raise the server's context (--max-model-len) or context_tokens, or shorten the inputs"
        )

    def error(self, endpoint: str) -> LLMError:
        """The request's final error: kind ``context_exceeded``, no attempt made."""
        return LLMError(
            f"endpoint {endpoint}: context_exceeded ({self}); not sent",
            kind="context_exceeded",
            attempts=0,
            endpoint=endpoint,
        )


def fit_max_tokens(prompt_tokens: int, max_tokens: int, context: int | None) -> int:
    """``max_tokens``, lowered to the room ``prompt_tokens`` leaves in ``context`` (None: unknown, unchanged).

    Raises ContextExceeded when the room is below ``min(max_tokens, MIN_COMPLETION_TOKENS)``.
    """
    if context is None:
        return max_tokens
    room = context - prompt_tokens
    if max_tokens <= room:
        return max_tokens
    if room < min(max_tokens, MIN_COMPLETION_TOKENS):
        raise ContextExceeded(prompt_tokens, max_tokens, context)
    return room


@dataclass(frozen=True, slots=True)
class ContextLength:
    """An endpoint's context length as the server reports it and as the pipeline file declares it."""

    declared: int | None = None  # context_tokens in the pipeline file
    # vLLM's max_model_len, llama.cpp's n_ctx, an in-process engine's max_model_len
    reported: int | None = None

    @property
    def tokens(self) -> int | None:
        """The one budgets use: the smaller of the two when both are known (a larger one would draw 400s)."""
        known = [v for v in (self.declared, self.reported) if v is not None]
        return min(known) if known else None

    def describe(self) -> str:
        d, r = self.declared, self.reported
        if d is None and r is None:
            return "context unknown (the server reports none; set context_tokens to fit max_tokens to it)"
        if d is None:
            return f"context {r:,} tokens (reported by the server)"
        if r is None:
            return f"context {d:,} tokens (context_tokens; the server reports none)"
        if d == r:
            return f"context {d:,} tokens (reported by the server, as context_tokens says)"
        return (
            f"context {min(d, r):,} tokens: the server reports {r:,}, context_tokens says {d:,}; "
            "the smaller is used"
        )


def declared_context(cfg: EndpointConfig) -> ContextLength:
    """What is known of an endpoint's context without asking its server: ``context_tokens``, and an
    in-process engine's ``max_model_len`` (its engine_args are the server's flags)."""
    return ContextLength(declared=cfg.context_tokens, reported=cfg.engine_max_model_len)
