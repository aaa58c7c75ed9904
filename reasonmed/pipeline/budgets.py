"""Role budgets: the most tokens a role's request can need, read from the pipeline file alone.

A request is its prompt plus its ``max_tokens``, and it must fit its endpoint's context (llm/context.py).
The rule for the prompt: the role's template, estimated as llm/context.py estimates any prompt (its longest
re-ask variant, with every placeholder empty), plus what the role reads, each input at the most it can be:

==============  ==========================================================================================
role            reads
==============  ==========================================================================================
generator       the question
verifier        the question and one path: generated, refined or regenerated (all are verified), so the
                largest max_tokens of the generators, the refiner and the regenerator
ranker          the question and one generated path (the generators' largest max_tokens)
refiner         the question, one generated path and the error reasons
regenerator     the question, one generated path (a failed attempt) and the error reasons
summarizer      the question and one accepted path (generated, refined or regenerated, as the verifier)
==============  ==========================================================================================

The question (stem, context, options, answer) is allowed ``QUESTION_TOKENS``: the largest of the 1,000
bundled PubMedQA questions, whose abstracts make them the longest of the four sources, estimates at 1,019
(mean 533). The error reasons are one per failed path, at most every path of the question, each allowed
``REASON_TOKENS`` (both verify prompts ask for one or two sentences), or the verifier's max_tokens if that is
smaller. A longer question or reason is still served: its request's max_tokens is lowered to fit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reasonmed.config import PipelineConfig
from reasonmed.llm.context import ContextLength, estimate_prompt_tokens
from reasonmed.prompts import FIELDS, PromptTemplate

QUESTION_TOKENS = 1024
REASON_TOKENS = 256


@dataclass(frozen=True, slots=True)
class RoleBudget:
    """One role's largest request: ``prompt_tokens`` (template + inputs) plus ``max_tokens``."""

    role: str  # "generator[0]", "verifier", ...
    endpoint: str
    template_tokens: int
    input_tokens: int  # the question allowance and the role's inputs at their largest
    max_tokens: int

    @property
    def prompt_tokens(self) -> int:
        return self.template_tokens + self.input_tokens

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.max_tokens

    def describe(self, context: int) -> str:
        return (
            f"{self.role} on {self.endpoint}: a prompt of up to {self.prompt_tokens:,} tokens + max_tokens "
            f"{self.max_tokens:,} = {self.total:,} > context {context:,}"
        )


def _template_tokens(t: PromptTemplate) -> int:
    empty = dict.fromkeys(FIELDS[t.name][0], "")
    return max(
        estimate_prompt_tokens(v.render(**empty)) for v in (t, t.reask("truncated"), t.reask("unparseable"))
    )


def role_budgets(cfg: PipelineConfig) -> list[RoleBudget]:
    """Every role's largest request under the rule of the module docstring, generators first."""
    a = cfg.agents
    generated = max(g.max_tokens for g in a.generators)
    any_path = max(generated, a.refiner.max_tokens, a.regenerator.max_tokens)
    reasons = cfg.paths_per_question * min(REASON_TOKENS, a.verifier.max_tokens)
    out = [
        RoleBudget(
            f"generator[{i}]",
            g.endpoint,
            _template_tokens(cfg.prompt("generate", i)),
            QUESTION_TOKENS,
            g.max_tokens,
        )
        for i, g in enumerate(a.generators)
    ]
    for role, prompt_role, agent, inputs in (
        ("verifier", "verify", a.verifier, any_path),
        ("ranker", "rank", a.ranker, generated),
        ("refiner", "refine", a.refiner, generated + reasons),
        ("regenerator", "regenerate", a.regenerator, generated + reasons),
        ("summarizer", "summarize", a.summarizer, any_path),
    ):
        out.append(
            RoleBudget(
                role,
                agent.endpoint,
                _template_tokens(cfg.prompt(prompt_role)),
                QUESTION_TOKENS + inputs,
                agent.max_tokens,
            )
        )
    return out


def over_budget(cfg: PipelineConfig, contexts: Mapping[str, ContextLength]) -> list[tuple[RoleBudget, int]]:
    """The roles whose largest request exceeds their endpoint's known context, each with that context."""
    out = []
    for b in role_budgets(cfg):
        context = contexts[b.endpoint].tokens if b.endpoint in contexts else None
        if context is not None and b.total > context:
            out.append((b, context))
    return out
