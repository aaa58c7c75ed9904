"""Which request fails, and how: a seeded draw per request, so a fault mix is reproducible."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

FAULT_KINDS = ("429", "500", "hang", "drop", "malformed", "truncate", "noanswer")  # drawn at random
# "400": the request is refused for good (as vLLM answers an over-long prompt); only by a targeted rule.
TARGETED_KINDS = (*FAULT_KINDS, "400")


@dataclass(frozen=True)
class TargetedFault:
    """``ROLE:MARKER=KIND``: every request of ROLE (``*`` = any) whose user message contains MARKER
    (``*`` = any) gets KIND, always: a question that is refused for good, a stage that is always truncated."""

    role: str
    marker: str
    kind: str

    @classmethod
    def parse(cls, rule: str) -> TargetedFault:
        target, sep, kind = rule.rpartition("=")
        role, colon, marker = target.partition(":")
        if not sep or not colon or not role or not marker:
            raise ValueError(f"targeted fault {rule!r}: expected ROLE:MARKER=KIND (ROLE or MARKER may be *)")
        if kind not in TARGETED_KINDS:
            raise ValueError(
                f"targeted fault {rule!r}: unknown kind {kind!r} (known: {', '.join(TARGETED_KINDS)})"
            )
        return cls(role, marker, kind)

    def matches(self, role: str, user: str) -> bool:
        return self.role in ("*", role) and (self.marker == "*" or self.marker in user)


class FaultPlan:
    """``rate`` spread evenly over ``kinds``, plus per-kind rates; at most one fault per request.

    A ``script`` (``["500", "ok", "drop", ...]``) fixes the outcome of the first requests in arrival
    order, before the seeded draws take over: tests use it to stage an exact failure sequence.
    """

    def __init__(
        self,
        rate: float = 0.0,
        kinds: Iterable[str] = FAULT_KINDS,
        per_kind: Mapping[str, float] | None = None,
        seed: int = 0,
        script: Iterable[str] = (),
    ) -> None:
        kinds = [k.strip() for k in kinds if k.strip()]
        self._script = deque(None if s.strip() == "ok" else s.strip() for s in script if s.strip())
        unknown = sorted({*kinds, *(per_kind or {}), *(s for s in self._script if s)} - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kind(s) {', '.join(unknown)} (known: {', '.join(FAULT_KINDS)})")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate {rate} is outside 0..1")
        rates = dict.fromkeys(FAULT_KINDS, 0.0)
        for k in kinds:
            rates[k] += rate / len(kinds) if kinds else 0.0
        for k, r in (per_kind or {}).items():
            if r < 0:
                raise ValueError(f"fault rate for {k} is negative")
            rates[k] += r
        total = sum(rates.values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total:.3f} > 1")
        self.rates = {k: r for k, r in rates.items() if r > 0}
        self._rng = random.Random(seed)

    def draw(self) -> str | None:
        """The fault for the next request, or None for a normal reply."""
        if self._script:
            return self._script.popleft()
        if not self.rates:
            return None
        u = self._rng.random()
        acc = 0.0
        for kind, r in self.rates.items():
            acc += r
            if u < acc:
                return kind
        return None
