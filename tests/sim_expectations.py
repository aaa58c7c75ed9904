"""What the simulator's deterministic answers imply for a finished build, computed independently of the
pipeline (from ``reasonmed.sim.behaviour``) so tests can compare it with what the pipeline stored."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, text

from reasonmed.agents.base import derive_seed
from reasonmed.config import PipelineConfig
from reasonmed.sim.behaviour import choose_label, rank_score
from reasonmed.tiers import RankCandidate, Tier, assign_tier, select_top


@dataclass
class Expected:
    n_correct: int
    tier: Tier
    status: str  # accepted | rejected
    accepted_keys: list[str] = field(default_factory=list)  # path_keys of the accepted paths, in rank order


def _paths(engine: Engine, qid: int) -> dict[str, str]:
    with engine.connect() as c:
        return dict(c.execute(text("select path_key, clean_text from reasoning_paths where question_id = :q"), {"q": qid}).all())


def expected_for(engine: Engine, cfg: PipelineConfig, qid: int, *, accuracy: float, refine_accuracy: float) -> Expected:
    with engine.connect() as c:
        row = c.execute(text("select content_hash, question, options, answer from questions where id = :q"), {"q": qid}).one()
    content_hash, question, options_json, answer = row
    labels = [label for label, _ in options_json]
    seed = cfg.seed
    correct_keys: list[tuple[int, str]] = []
    order = 0
    for g in cfg.agents.generators:
        model = cfg.endpoints[g.endpoint].model
        for t in g.temperatures:
            base = derive_seed(seed, content_hash, "gen", g.endpoint, f"{t:g}")
            for s in range(g.paths_per_temperature):
                label = choose_label(model=model, temperature=t, seed=base + s, question=question, options=labels,
                                     correct=answer, accuracy=accuracy)
                if label == answer:
                    correct_keys.append((order + s, f"gen/{g.endpoint}/{t:g}/{s}"))
            order += g.paths_per_temperature
    tiers = cfg.tiers
    tier = assign_tier(len(correct_keys), easy_min_correct=tiers.easy_min_correct, medium_min_correct=tiers.medium_min_correct)
    texts = _paths(engine, qid)
    ranker_model = cfg.endpoints[cfg.agents.ranker.endpoint].model

    def ranked(k: int) -> list[str]:
        cands = [RankCandidate(i, order_, rank_score(model=ranker_model, question=question, path=texts[key]))
                 for i, (order_, key) in enumerate(correct_keys)]
        return [correct_keys[c.path_id][1] for c in select_top(cands, k)]

    if tier is Tier.EASY:
        return Expected(len(correct_keys), tier, "accepted", ranked(tiers.keep_top))
    if tier is Tier.MEDIUM:
        rf = cfg.agents.refiner
        model = cfg.endpoints[rf.endpoint].model
        kept = []
        for key in ranked(rf.max_paths):
            label = choose_label(model=model, temperature=rf.temperature, seed=derive_seed(seed, content_hash, "refine", key),
                                 question=question, options=labels, correct=answer, accuracy=refine_accuracy,
                                 salt=f"refine/{texts[key]}")
            kept.append(f"ref/{key}" if label == answer else key)
        return Expected(len(correct_keys), tier, "accepted", kept[: tiers.keep_top])
    # Difficult: the refiner corrects the lone Correct path (else the first failed attempt), and the
    # regenerator writes from the first failed attempt; both with every error reason.
    gen_keys = [f"gen/{g.endpoint}/{t:g}/{s}" for g in cfg.agents.generators for t in g.temperatures
                for s in range(g.paths_per_temperature)]
    correct_set = {key for _, key in correct_keys}
    attempt_key = next(key for key in gen_keys if key not in correct_set)
    base_key = correct_keys[0][1] if correct_keys else attempt_key
    rf = cfg.agents.refiner
    refined_ok = choose_label(
        model=cfg.endpoints[rf.endpoint].model, temperature=rf.temperature,
        seed=derive_seed(seed, content_hash, "refine", base_key), question=question, options=labels, correct=answer,
        accuracy=refine_accuracy, salt=f"refine/{texts[base_key]}") == answer
    first = [f"ref/{base_key}"] if refined_ok else ([base_key] if correct_keys else [])
    rg = cfg.agents.regenerator
    model = cfg.endpoints[rg.endpoint].model
    kept = first + [
        f"regen/{i}" for i in range(rg.paths)
        if choose_label(model=model, temperature=rg.temperature, seed=derive_seed(seed, content_hash, "regen", i),
                        question=question, options=labels, correct=answer, accuracy=refine_accuracy,
                        salt=f"regenerate/{texts[attempt_key]}") == answer
    ]
    kept = kept[: tiers.keep_top]
    return Expected(len(correct_keys), tier, "accepted" if kept else "rejected", kept)
