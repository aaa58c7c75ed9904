"""What a run will cost before it starts: calls, tokens, wall time and money per stage (``--dry-run``).

Per question and per (role, endpoint), the figures come from the stored history of finished questions
when there is one (calls per finished question, mean tokens and latency per call; a role no finished
question needed counts zero calls), else from the pipeline file's limits: an upper bound (every path ranked, the larger of the medium and difficult
branches taken, every completion at ``max_tokens``). Wall time is each endpoint's calls x mean latency
spread over its ``max_in_flight`` slots, the busiest endpoint setting the pace; it needs stored
latencies. Money comes from the endpoint prices in the pipeline file (``price_input_per_mtok``,
``price_output_per_mtok``, in $ per million tokens).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from reasonmed.config import PipelineConfig
from reasonmed.db.inspect_repo import CallHistory
from reasonmed.llm.registry import price_of
from reasonmed.roles import Role

CHARS_PER_TOKEN = 4.0  # for prompt sizes without history: the usual rule of thumb for English text
ROLES = tuple(Role)  # every role, in pipeline order


@dataclass(frozen=True, slots=True)
class StageEstimate:
    role: str
    endpoint: str
    model: str
    basis: Literal["history", "config"]
    calls_per_question: float
    calls: int
    prompt_tokens: int
    completion_tokens: int
    busy_s: float | None  # calls x mean latency (None without stored latencies)
    cost_usd: float | None  # None when the endpoint has no price; at the batch price for mode batch
    batch_price_factor: float | None = None  # the endpoint's batch share of the price (mode batch)

    @property
    def interactive_cost_usd(self) -> float | None:
        """What the stage would cost sent one request at a time."""
        if self.cost_usd is None or self.batch_price_factor is None:
            return self.cost_usd
        return self.cost_usd / self.batch_price_factor


@dataclass(frozen=True)
class RunEstimate:
    pending: int  # questions the run would take
    finished_history: int  # finished questions the history figures come from (0: config limits)
    stages: list[StageEstimate] = field(default_factory=list)
    wall_s: float | None = None  # at the configured caps; None when a stage has no stored latency

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.stages)

    @property
    def tokens(self) -> int:
        return sum(s.prompt_tokens + s.completion_tokens for s in self.stages)

    @property
    def cost_usd(self) -> float | None:
        priced = [s.cost_usd for s in self.stages if s.cost_usd is not None]
        return sum(priced) if priced else None

    @property
    def interactive_cost_usd(self) -> float | None:
        priced = [s.interactive_cost_usd for s in self.stages if s.interactive_cost_usd is not None]
        return sum(priced) if priced else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "calls": self.calls,
            "tokens": self.tokens,
            "cost_usd": self.cost_usd,
            "interactive_cost_usd": self.interactive_cost_usd,
        }


def _config_rows(cfg: PipelineConfig, prompt_chars: float) -> list[tuple[str, str, float, float, float]]:
    """(role, endpoint, calls per question, prompt tokens per call, completion tokens per call): upper bounds."""
    a = cfg.agents
    paths = cfg.paths_per_question
    question = prompt_chars / CHARS_PER_TOKEN
    longest_path = max(g.max_tokens for g in a.generators)
    rows: list[tuple[str, str, float, float, float]] = []
    for g in a.generators:
        rows.append(
            ("generator", g.endpoint, len(g.temperatures), question, g.max_tokens * g.paths_per_temperature)
        )
    rewrites = max(
        a.refiner.max_paths, 1 + a.regenerator.paths
    )  # medium refines; difficult refines + regenerates
    rows += [
        ("verifier", a.verifier.endpoint, paths + rewrites, question + longest_path, a.verifier.max_tokens),
        ("ranker", a.ranker.endpoint, paths, question + longest_path, a.ranker.max_tokens),
        (
            "refiner",
            a.refiner.endpoint,
            a.refiner.max_paths,
            question + longest_path + paths * a.verifier.max_tokens,
            a.refiner.max_tokens,
        ),
        (
            "regenerator",
            a.regenerator.endpoint,
            a.regenerator.paths,
            question + longest_path + paths * a.verifier.max_tokens,
            a.regenerator.max_tokens,
        ),
        (
            "summarizer",
            a.summarizer.endpoint,
            cfg.tiers.keep_top,
            question + longest_path,
            a.summarizer.max_tokens,
        ),
    ]
    return rows


def estimate(
    cfg: PipelineConfig,
    *,
    pending: int,
    finished: int,
    history: list[CallHistory],
    prompt_chars: float,
) -> RunEstimate:
    """The run's expected calls, tokens, wall time and cost for ``pending`` questions."""
    by_key = {(h.role, h.endpoint): h for h in history} if finished else {}
    seen_roles = {role for role, _ in by_key}
    stages: list[StageEstimate] = []
    for role, endpoint, cpq, p_tok, c_tok in _config_rows(cfg, prompt_chars):
        h = by_key.get((role, endpoint))
        basis: Literal["history", "config"] = "config"
        latency = None
        if h is not None:
            basis, cpq, p_tok, c_tok, latency = (
                "history",
                h.calls / finished,
                h.prompt_tokens,
                h.completion_tokens,
                h.latency_ms,
            )
        elif by_key and role not in seen_roles:
            # No finished question needed this role (e.g. no difficult one: no regeneration): none expected.
            basis, cpq, latency = "history", 0.0, 0.0
        calls = round(cpq * pending)
        prompt_total, completion_total = round(calls * p_tok), round(calls * c_tok)
        ep = cfg.endpoints[endpoint]
        price = price_of(ep)  # at the batch share for an endpoint with mode batch
        cost = None
        if price.input_per_mtok is not None or price.output_per_mtok is not None:
            cost = (
                prompt_total * (price.input_per_mtok or 0.0)
                + completion_total * (price.output_per_mtok or 0.0)
            ) / 1e6
        stages.append(
            StageEstimate(
                role=role,
                endpoint=endpoint,
                model=ep.model,
                basis=basis,
                calls_per_question=round(cpq, 3),
                calls=calls,
                prompt_tokens=prompt_total,
                completion_tokens=completion_total,
                busy_s=None if latency is None else calls * latency / 1000.0,
                cost_usd=cost,
                batch_price_factor=ep.batch_price_factor if ep.mode == "batch" else None,
            )
        )
    return RunEstimate(
        pending=pending,
        finished_history=finished if by_key else 0,
        stages=stages,
        wall_s=wall_time(cfg, stages),
    )


def wall_time(cfg: PipelineConfig, stages: list[StageEstimate]) -> float | None:
    """The busiest endpoint's busy time over its slots (``max_in_flight``, of all its replicas; endpoints work in parallel)."""
    if not stages or any(s.busy_s is None for s in stages if s.calls):
        return None
    per_endpoint: dict[str, float] = {}
    for s in stages:
        per_endpoint[s.endpoint] = per_endpoint.get(s.endpoint, 0.0) + (s.busy_s or 0.0)
    # Endpoints that share one server (same base_url) share its slots too; a replicated endpoint has the
    # slots of all its replicas.
    per_server: dict[str, tuple[float, int]] = {}
    for name, busy in per_endpoint.items():
        ep = cfg.endpoints[name]
        key = ep.base_url or name
        total, slots = per_server.get(key, (0.0, 0))
        per_server[key] = (total + busy, max(slots, ep.total_in_flight))
    return max(busy / slots for busy, slots in per_server.values())
