"""What the simulator's deterministic answers imply for a finished build, so tests can compare it with what
the pipeline stored.

The judgments come from the simulator alone (``reasonmed.sim.behaviour``: which option each request picks,
which score the ranker gives); the tier rules that turn judgments into a decision are the pipeline's own
(``reasonmed.tiers`` and ``reasonmed.pipeline.routing``), and so are the keys (``reasonmed.pipeline.keys``),
so the oracle cannot drift from the rules it checks. The simulator's verifier is exact here (no error
rate), so a path passes when the option the simulator picked for it is the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from reasonmed.config import PipelineConfig
from reasonmed.pipeline import keys, routing
from reasonmed.sim.behaviour import choose_label, rank_score
from reasonmed.tiers import Tier, assign_tier


@dataclass
class Expected:
    n_correct: int
    tier: Tier
    status: str  # accepted | rejected
    accepted_keys: list[str] = field(default_factory=list)  # path_keys of the accepted paths, in rank order


@dataclass(frozen=True)
class _Path:
    """A path as the simulator answers it: the option it concludes with is its extracted answer."""

    id: int
    generation_order: int
    extracted_answer: str
    key: str


def _paths(engine: Engine, qid: int) -> dict[str, str]:
    with engine.connect() as c:
        return dict(c.execute(text("select path_key, clean_text from reasoning_paths where question_id = :q"), {"q": qid}).all())


def expected_for(engine: Engine, cfg: PipelineConfig, qid: int, *, accuracy: float, refine_accuracy: float) -> Expected:
    with engine.connect() as c:
        row = c.execute(text("select content_hash, question, options, answer from questions where id = :q"), {"q": qid}).one()
    content_hash, question, options_json, answer = row
    labels = [label for label, _ in options_json]
    texts = _paths(engine, qid)
    ids = iter(range(1_000_000))

    def written(role: str, seed: int, key: str, source_key: str, order: int) -> _Path:
        agent = cfg.agents.refiner if role == "refine" else cfg.agents.regenerator
        label = choose_label(model=cfg.endpoints[agent.endpoint].model, temperature=agent.temperature, seed=seed,
                             question=question, options=labels, correct=answer, accuracy=refine_accuracy,
                             salt=f"{role}/{texts[source_key]}")
        return _Path(next(ids), order, label, key)

    generated: list[_Path] = []
    order = 0
    for g in cfg.agents.generators:
        model = cfg.endpoints[g.endpoint].model
        for t in g.temperatures:
            base = keys.generate_seed(cfg.seed, content_hash, g.endpoint, t)
            for s in range(g.paths_per_temperature):
                label = choose_label(model=model, temperature=t, seed=base + s, question=question, options=labels,
                                     correct=answer, accuracy=accuracy)
                generated.append(_Path(next(ids), order + s, label, keys.generated_path(g.endpoint, t, s)))
            order += g.paths_per_temperature

    def ok(p: _Path) -> bool:
        return p.extracted_answer == answer

    correct = [p for p in generated if ok(p)]
    tiers = cfg.tiers
    tier = assign_tier(len(correct), easy_min_correct=tiers.easy_min_correct, medium_min_correct=tiers.medium_min_correct)
    ranker_model = cfg.endpoints[cfg.agents.ranker.endpoint].model
    scores = {p.id: rank_score(model=ranker_model, question=question, path=texts[p.key]) for p in correct}

    if tier is Tier.EASY:
        kept = routing.ranked(correct, scores, tiers.keep_top)
    elif tier is Tier.MEDIUM:
        best = routing.ranked(correct, scores, cfg.agents.refiner.max_paths)
        refined = {
            p.id: written("refine", keys.path_seed(cfg.seed, content_hash, "refine", p.key), keys.refined_path(p.key), p.key, 1000 + i)
            for i, p in enumerate(best)
        }
        kept = routing.medium_keep(best, refined, ok, tiers.keep_top)
    else:
        base, attempt = routing.difficult_sources(generated, ok)
        refined_path = written("refine", keys.path_seed(cfg.seed, content_hash, "refine", base.key),
                               keys.refined_path(base.key), base.key, 1000)
        regenerated = [
            written("regenerate", keys.regenerate_seed(cfg.seed, content_hash, i), keys.regenerated_path(i), attempt.key, 1000 + i)
            for i in range(cfg.agents.regenerator.paths)
        ]
        kept = routing.difficult_keep([refined_path], base, regenerated, ok, tiers.keep_top)
    return Expected(len(correct), tier, "accepted" if kept else "rejected", [p.key for p in kept])
