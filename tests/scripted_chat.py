"""Chat backends that answer from a script, for stage tests whose every model output is written by hand.

The role and the prompt's fields are read with the simulator's own prompt reader (``detect_role``,
``parse_prompt``), so a script answers "the verifier, about this path" without string matching of its own.
Every request is recorded, so a test can count what was asked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reasonmed.config import PipelineConfig
from reasonmed.llm.types import Completion, Message
from reasonmed.sim.behaviour import ParsedPrompt, Role, detect_role, parse_prompt

# (endpoint name, role, the prompt's fields, temperature) -> the reply's text
Script = Callable[[str, Role, ParsedPrompt, float], str]


@dataclass(frozen=True)
class Asked:
    endpoint: str
    role: Role
    path: str | None
    temperature: float


@dataclass
class ScriptedChat:
    name: str
    model: str
    script: Script
    log: list[Asked]

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
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        role, prompt = detect_role(system, user), parse_prompt(user)
        self.log.append(Asked(self.name, role, prompt.path, temperature))
        text = self.script(self.name, role, prompt, temperature)
        return [Completion(text, "stop", 10, 10, 1.0, self.model, self.name, None, i) for i in range(n)]

    async def aclose(self) -> None:
        return None


@dataclass
class ScriptedBackends:
    """What ``StageContext.backends`` needs: a backend per endpoint name of ``cfg``."""

    cfg: PipelineConfig
    script: Script
    log: list[Asked] = field(default_factory=list)

    def get(self, name: str) -> ScriptedChat:
        return ScriptedChat(name, self.cfg.endpoints[name].model, self.script, self.log)
