"""vLLM's automatic prefix caching, as far as the pipeline's routing can change it.

A request whose question this server has served recently reuses the KV blocks of the question's part of
the prompt and prefills only the rest (the path it verifies, ranks or summarises). The simulator keeps the
last ``capacity`` questions it served, and its metrics count, as vLLM does (``vllm:prefix_cache_queries`` and
``vllm:prefix_cache_hits``, in prompt tokens), the prompt tokens asked and those the cache held. The ratio
is what a replicated endpoint's routing decides (llm/replicas.py): one replica per question keeps it high,
a round-robin balancer divides it by the number of replicas. Which questions a server saw, and how often, is
what ``GET /admin/questions`` lists, so a test sees where each question's requests went.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from reasonmed.sim.behaviour import count_tokens


def question_key(question: str) -> str:
    """A question's short stable name on the simulator's admin route (never its text)."""
    return hashlib.sha256(" ".join(question.split()).encode()).hexdigest()[:16]


class PrefixCache:
    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._capacity = capacity
        self._requests: OrderedDict[str, int] = OrderedDict()  # question key -> requests, least recent first

    def serve(self, system: str, question: str, prompt_tokens: int) -> int:
        """One request's prompt tokens served from the cache: its shared prefix (the system prompt and the
        question) when this question was seen before, else none."""
        if not question:
            return 0
        key = question_key(question)
        seen = self._requests.pop(key, 0)
        self._requests[key] = seen + 1
        if len(self._requests) > self._capacity:
            self._requests.popitem(last=False)
        if not seen:
            return 0
        return min(prompt_tokens, count_tokens(system) + count_tokens(question))

    def questions(self) -> dict[str, int]:
        """The questions in the cache, by key, with the requests each had."""
        return dict(self._requests)
