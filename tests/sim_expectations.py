"""What the simulator's deterministic answers imply for a finished build, so tests can compare it with what
the pipeline stored.

The judgments come from the simulator alone (``reasonmed.sim.behaviour``: which option each request picks,
which score the ranker gives); the tier rules that turn judgments into a decision are the pipeline's own
(``reasonmed.tiers`` and ``reasonmed.tiers``), and so are the keys (``reasonmed.pipeline.keys``),
so the oracle cannot drift from the rules it checks. The simulator's verifier is exact here (no error
rate), so a path passes when the option the simulator picked for it is the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from reasonmed import tiers as tier_rules
from reasonmed.config import PipelineConfig
from reasonmed.models import normalise_text
from reasonmed.pipeline import keys
from reasonmed.sim.behaviour import Role, choose_label, rank_score, rewrite_salt
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


@dataclass(frozen=True)
class _Question:
    """One stored question and what the simulator answers for it."""

    cfg: PipelineConfig
    content_hash: str
    question: str
    options: dict[str, str]  # as the simulator reads them from a prompt
    answer: str
    texts: dict[str, str]  # path_key -> stored clean text (what the later requests were sent)
    refine_accuracy: float

    def ok(self, p: _Path) -> bool:
        return p.extracted_answer == self.answer

    def generated(self, accuracy: float) -> list[_Path]:
        out: list[_Path] = []
        order = 0
        for g in self.cfg.agents.generators:
            model = self.cfg.endpoints[g.endpoint].model
            for t in g.temperatures:
                base = keys.generate_seed(self.cfg.seed, self.content_hash, g.endpoint, t)
                for s in range(g.paths_per_temperature):
                    label = choose_label(
                        model=model,
                        temperature=t,
                        seed=base + s,
                        question=self.question,
                        options=list(self.options),
                        correct=self.answer,
                        accuracy=accuracy,
                    )
                    out.append(_Path(len(out), order + s, label, keys.generated_path(g.endpoint, t, s)))
                order += g.paths_per_temperature
        return out

    def refined(self, parent: _Path, n: int) -> _Path:
        seed = keys.path_seed(self.cfg.seed, self.content_hash, "refine", parent.key)
        return self._written("refine", seed, keys.refined_path(parent.key), parent, 1000 + n)

    def regenerated(self, attempt: _Path, i: int) -> _Path:
        seed = keys.regenerate_seed(self.cfg.seed, self.content_hash, i)
        return self._written("regenerate", seed, keys.regenerated_path(i), attempt, 2000 + i)

    def _written(self, role: Role, seed: int, key: str, source: _Path, path_id: int) -> _Path:
        agent = self.cfg.agents.refiner if role == "refine" else self.cfg.agents.regenerator
        label = choose_label(
            model=self.cfg.endpoints[agent.endpoint].model,
            temperature=agent.temperature,
            seed=seed,
            question=self.question,
            options=list(self.options),
            correct=self.answer,
            accuracy=self.refine_accuracy,
            salt=rewrite_salt(role, self.texts[source.key], self.options),
        )
        return _Path(path_id, 1000, label, key)


def _load(engine: Engine, cfg: PipelineConfig, qid: int, refine_accuracy: float) -> _Question:
    with engine.connect() as c:
        content_hash, question, options, answer = c.execute(
            text("select content_hash, question, options, answer from questions where id = :q"), {"q": qid}
        ).one()
        texts = dict(
            c.execute(
                text("select path_key, clean_text from reasoning_paths where question_id = :q"), {"q": qid}
            ).all()
        )
    options = {label: normalise_text(option) for label, option in options}
    return _Question(cfg, content_hash, question, options, answer, texts, refine_accuracy)


def expected_for(
    engine: Engine, cfg: PipelineConfig, qid: int, *, accuracy: float, refine_accuracy: float
) -> Expected:
    sim = _load(engine, cfg, qid, refine_accuracy)
    generated = sim.generated(accuracy)
    correct = [p for p in generated if sim.ok(p)]
    tiers = cfg.tiers
    tier = assign_tier(
        len(correct), easy_min_correct=tiers.easy_min_correct, medium_min_correct=tiers.medium_min_correct
    )
    ranker = cfg.endpoints[cfg.agents.ranker.endpoint].model
    scores = {
        p.id: rank_score(model=ranker, question=sim.question, path=sim.texts[p.key], options=sim.options)
        for p in correct
    }
    if tier is Tier.EASY:
        kept = tier_rules.ranked(correct, scores, tiers.keep_top)
    elif tier is Tier.MEDIUM:
        best = tier_rules.ranked(correct, scores, cfg.agents.refiner.max_paths)
        refined = {p.id: sim.refined(p, i) for i, p in enumerate(best)}
        kept = tier_rules.medium_keep(best, refined, sim.ok, tiers.keep_top)
    else:
        base = tier_rules.difficult_source(generated, sim.ok)
        regenerated = [sim.regenerated(base, i) for i in range(cfg.agents.regenerator.paths)]
        kept = tier_rules.difficult_keep([sim.refined(base, 0)], base, regenerated, sim.ok, tiers.keep_top)
    return Expected(len(correct), tier, "accepted" if kept else "rejected", [p.key for p in kept])
