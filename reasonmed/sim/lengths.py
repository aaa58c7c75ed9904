"""Output lengths shaped like a real run's, for benchmarks: completion tokens drawn per role.

The simulator's own text is short (a path of a few dozen words), so its engine time and token counts are
far from a real run's. With a length profile the reply's text stays what it is, while the tokens the engine
emulation spends on it, and the usage the reply reports, are drawn uniformly from the role's range:

| role | tokens | why |
|---|---|---|
| generate, refine, regenerate | 500-2,000 | a chain of thought of a 70B-class model on an exam question |
| verify | 100-300 | a verdict with its reason |
| rank | 30-80 | a score with a line of reason |
| summarize | 80-200 | the summary of one path |
| evaluate, judge | 100-600 | an answer with its reasoning, a rubric's scores |

These are the ranges the benchmark states (bench/realistic_run.py); what a given model writes is in the
stored calls of a real run (``audit_token_usage``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping

REALISTIC: Mapping[str, tuple[int, int]] = {
    "generate": (500, 2000),
    "refine": (500, 2000),
    "regenerate": (500, 2000),
    "verify": (100, 300),
    "rank": (30, 80),
    "summarize": (80, 200),
    "evaluate": (100, 600),
    "judge": (100, 600),
}
PROFILES: Mapping[str, Mapping[str, tuple[int, int]]] = {"realistic": REALISTIC}


def profile_named(name: str) -> Mapping[str, tuple[int, int]]:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown length profile {name!r} (known: {', '.join(sorted(PROFILES))})") from None


class LengthDraw:
    """Completion tokens per role from a profile; roles it does not name keep their text's own count."""

    def __init__(self, profile: Mapping[str, tuple[int, int]], seed: int = 0) -> None:
        self._profile = profile
        self._rng = random.Random(seed)

    def tokens(self, role: str, own: int) -> int:
        span = self._profile.get(role)
        return own if span is None else self._rng.randint(*span)
