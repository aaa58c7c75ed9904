"""The LLM layer: chat backends (vLLM's OpenAI-compatible server, in-process vLLM) behind one protocol."""

from reasonmed.llm.registry import LLMRegistry, resolve_api_key
from reasonmed.llm.types import ChatBackend, Completion, LLMError
from reasonmed.llm.usage import UsageTracker

__all__ = ["ChatBackend", "Completion", "LLMError", "LLMRegistry", "UsageTracker", "resolve_api_key"]
