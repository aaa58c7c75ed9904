"""Real answer styles end to end: the datasets do not depend on how the models state their answers.

Real models do not end with ``Final answer: X`` (``reasonmed/sim/styles.py`` lists what they write). The
same 24 questions (16 MedQA-style, 8 PubMedQA) go through the pipeline's four stages (generate, verify,
resolve, summarise: ``reasonmed.pipeline.stages`` as a build shard runs them, without Prefect) over real
HTTP to a simulator, on a SQLite copy of their own: once with the simulator's plain style under
``prompts: reasonmed``, which the pipeline's parser reads exactly (checked: for every stored path it reads
the option the simulator wrote), then with each real style for every path-writing model, and with each
model in a style of its own, under ``prompts: reasonmed`` and ``prompts: paper`` (whose prompts ask for
no answer line, so there even the plain style concludes in a sentence). Every run must give each question
the same tier, pass count and status, and accept the same paths, compared by generation slot (generator
endpoint, temperature, sample; a rewrite by the slot it came from), never by text.

Sampling noise: none; equality is exact. Every simulator decision is a hash, not a draw: the option a path
concludes with is keyed by (model, temperature, seed, question), the seed derived from the question and
the slot, never from the prompt or the style; the simulator's verifier reads that option back with the
style's own reader; the rank score and the option a refinement or regeneration picks are keyed by the
path's plain form (``styles.as_plain``). Only text differs between runs (conclusions, the verifier's
wording that rewrites quote, summaries). Re-asks are off (``output_retries: 0``): a re-ask has the same
seed, so the simulator would answer with the same text, at the cost of requests. So a difference in the
table is a path whose answer the pipeline read otherwise than it is written: the pipeline's reader
(``reasonmed.parsing.extract_answer``) misses that style. Checked the other way round: with the
simulator's reader in its place, every run equals the plain run.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from reasonmed.config import load_pipeline_config
from reasonmed.db import migrate
from reasonmed.db.engine import make_engine
from reasonmed.db.models import Question, ReasoningPath
from reasonmed.ingest.service import ingest_file
from reasonmed.llm.registry import LLMRegistry
from reasonmed.pipeline import stages
from reasonmed.pipeline.context import StageContext
from reasonmed.provenance import Provenance
from reasonmed.sim import styles
from reasonmed.sim.launcher import SimServer
from reasonmed.sim.styles import Style
from tests.fixtures_pipeline import PUBMEDQA_FILE, write_sim_config

pytestmark = [pytest.mark.slow]

# With these accuracies and the pipeline seed 3 the plain run has every tier, refinements that pass and
# fail, and rejected questions (seeds 0-2 give no rejection on these 24).
ACCURACY, REFINE_ACCURACY = 0.35, 0.3
SEED = 3
# Each path-writing model of the default pipeline with a style of its own, as a real deployment would have.
BY_MODEL: dict[str, Style] = {
    "sim/Qwen2.5-72B-Instruct": "markdown",
    "sim/DeepSeek-R1-Distill-Llama-70B": "think",
    "sim/HuatuoGPT-o1-70B": "huatuo",
    "sim/refiner-gpt-4o-class": "json",
    "sim/regenerator-o1-mini-class": "prose",
}
MEDQA = Path(__file__).resolve().parents[1] / "fixtures" / "medqa_styles.jsonl"  # 16 questions, MedQA format
PUBMEDQA_IDS = (
    "10808977",
    "23831910",
    "17113061",
    "10966337",
    "25432938",
    "18847643",
    "25957366",
    "24866606",
)


@dataclass(frozen=True)
class Run:
    profile: str  # the pipeline file's ``prompts:``
    name: str  # a style every path-writing model writes, or "by-model" (BY_MODEL)
    by_model: Mapping[str, Style] = field(default_factory=dict)
    default_style: Style = "plain"

    @property
    def label(self) -> str:
        return f"{self.profile}/{self.name}"


@dataclass
class Outcome:
    """What a run decided, keyed so that two runs compare: by question digest and path slot."""

    questions: dict[str, tuple[str, int, str]]  # content hash -> (tier, paths passed, status)
    accepted: dict[str, tuple[str, ...]]  # content hash -> accepted path keys, in rank order
    paths: int  # generated and rewritten paths
    misread: int  # paths whose stored answer is not the one the simulator wrote
    answer_lines: int  # paths with a ``Final answer:`` line

    def row(self, label: str, base: Outcome | None = None) -> str:
        tiers = Counter(tier for tier, _, _ in self.questions.values())
        rejected = sum(status == "rejected" for _, _, status in self.questions.values())
        accepted = sum(len(keys) for keys in self.accepted.values())
        same = "" if base is None else "yes" if self.same_as(base) else f"NO ({len(self.differences(base))})"
        return (
            f"{label:<22} {tiers['easy']:>4} {tiers['medium']:>6} {tiers['difficult']:>9} {rejected:>8} "
            f"{accepted:>8} {f'{self.misread}/{self.paths}':>13}  {same}"
        )

    def differences(self, base: Outcome) -> list[str]:
        """One line per question decided otherwise than in ``base``: (tier, passed, status) [accepted]."""
        return [
            f"{q[:8]}: {base.questions[q]} {list(base.accepted.get(q, ()))} -> {decided} {list(self.accepted.get(q, ()))}"
            for q, decided in sorted(self.questions.items())
            if decided != base.questions[q] or self.accepted.get(q) != base.accepted.get(q)
        ]

    def same_as(self, base: Outcome) -> bool:
        return self.misread == 0 and not self.differences(base)


PLAIN = Run("reasonmed", "plain")
HEADER = f"{'run':<22} {'easy':>4} {'medium':>6} {'difficult':>9} {'rejected':>8} {'accepted':>8} misread/paths  same"


@pytest.fixture(scope="module")
def questions_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file holding the 24 questions; every run works on a copy."""
    tmp = tmp_path_factory.mktemp("styles")
    pubmed = json.loads(PUBMEDQA_FILE.read_text())
    pqa = tmp / "pqa.json"
    pqa.write_text(json.dumps({k: pubmed[k] for k in PUBMEDQA_IDS}))
    db = tmp / "questions.db"
    migrate.upgrade(f"sqlite:///{db}")
    engine = make_engine(f"sqlite:///{db}")
    try:
        ingest_file(engine, MEDQA, "medqa")
        ingest_file(engine, pqa, "pubmedqa")
    finally:
        engine.dispose()
    return db


def _question_ids(engine: Engine) -> list[int]:
    with engine.connect() as c:
        return list(c.execute(text("select id from questions order by id")).scalars())


async def _build(engine: Engine, config: Path) -> None:
    """The pipeline's four stages for every question at once, as a build shard runs them."""
    cfg = load_pipeline_config(config)
    registry = LLMRegistry(cfg)
    ctx = StageContext(engine=engine, cfg=cfg, backends=registry, run_id=None)

    async def one(qid: int) -> None:
        for stage in (stages.generate, stages.verify, stages.resolve, stages.summarize):
            await stage(ctx, qid, Provenance())

    try:
        await asyncio.gather(*(one(qid) for qid in _question_ids(engine)))
    finally:
        await registry.aclose()


def _outcome(engine: Engine) -> Outcome:
    with engine.connect() as c:
        decided = c.execute(
            text("""select q.content_hash, o.tier, o.n_correct, o.status
                    from question_outcomes o join questions q on q.id = o.question_id""")
        ).all()
        accepted: dict[str, list[str]] = {}
        for h, key in c.execute(
            text("""select q.content_hash, p.path_key from accepted_paths a
                    join reasoning_paths p on p.id = a.path_id join questions q on q.id = a.question_id
                    where a.dropped_reason is null and a.superseded_at is null order by q.id, a.rank""")
        ):
            accepted.setdefault(h, []).append(key)
        paths = c.execute(
            select(ReasoningPath.raw_text, ReasoningPath.extracted_answer, Question.options).join(
                Question, Question.id == ReasoningPath.question_id
            )
        ).all()
    misread = sum(extracted != styles.read_answer(raw, dict(options)) for raw, extracted, options in paths)
    return Outcome(
        questions={h: (tier, n, status) for h, tier, n, status in decided},
        accepted={h: tuple(keys) for h, keys in accepted.items()},
        paths=len(paths),
        misread=misread,
        answer_lines=sum("Final answer:" in raw for raw, _, _ in paths),
    )


async def _run(run: Run, questions: Path, tmp: Path) -> Outcome:
    """One build on a copy of the questions, with a simulator of its own."""
    db = tmp / f"{run.label.replace('/', '-')}.db"
    shutil.copyfile(questions, db)
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    try:
        async with SimServer(
            questions_db=url,
            base_latency_ms=0.0,
            per_token_ms=0.0,
            default_accuracy=ACCURACY,
            refine_accuracy=REFINE_ACCURACY,
            styles=dict(run.by_model),
            default_style=run.default_style,
        ) as sim:
            config = write_sim_config(
                db.with_suffix(".yaml"), sim.base_url, prompts=run.profile, seed=SEED, output_retries=0
            )
            await _build(engine, config)
        outcome = await asyncio.to_thread(_outcome, engine)
    finally:
        engine.dispose()
    if run != PLAIN:  # the style reached the simulator: no path has the plain style's answer line
        assert outcome.answer_lines == 0, (
            f"{run.label}: {outcome.answer_lines} paths end with Final answer: lines"
        )
    return outcome


def _run_all(runs: list[Run], questions: Path, tmp: Path) -> dict[str, Outcome]:
    """The runs one after another (at once, on 2 cores, they only slow each other down)."""

    async def all_runs() -> dict[str, Outcome]:
        return {run.label: await _run(run, questions, tmp) for run in runs}

    return asyncio.run(all_runs())


@pytest.fixture(scope="module")
def plain(questions_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The plain style under the project's prompts: the datasets every style must give."""
    [base] = _run_all([PLAIN], questions_db, tmp_path_factory.mktemp("plain")).values()
    assert base.misread == 0, "the pipeline misreads the simulator's own Final answer: lines"
    tiers = {tier for tier, _, _ in base.questions.values()}
    statuses = {status for _, _, status in base.questions.values()}
    assert (
        len(base.questions) == 24 and tiers == {"easy", "medium", "difficult"} and "rejected" in statuses
    ), HEADER + "\n" + base.row("reasonmed/plain")
    return base


def _compare(plain: Outcome, runs: list[Run], questions: Path, tmp: Path) -> None:
    """Fails listing every run's tiers, and the first questions of each run that differs."""
    outcomes = _run_all(runs, questions, tmp)
    failing = [label for label, o in outcomes.items() if not o.same_as(plain)]
    table = [HEADER, plain.row("reasonmed/plain"), *(o.row(label, plain) for label, o in outcomes.items())]
    print("\n".join(table))  # the tier counts per style (pytest -s shows them)
    if not failing:
        return
    lines = [
        f"{len(failing)} of {len(runs)} runs differ from the plain run: {', '.join(failing)}. Misread: paths whose "
        "stored answer (reasonmed.parsing.extract_answer) is not the option the path concludes with.",
        *table,
        "First differences (content hash: plain run -> this run):",
    ]
    for label in failing:
        lines += [f"  {label}: {d}" for d in outcomes[label].differences(plain)[:2]]
    pytest.fail("\n".join(lines), pytrace=False)


def test_each_style_gives_the_plain_datasets_under_the_projects_prompts(
    plain: Outcome, questions_db: Path, tmp_path: Path
) -> None:
    """Every real style on its own (all path-writing models), and each model with a style of its own."""
    runs = [Run("reasonmed", s, default_style=s) for s in styles.STYLES if s != "plain"]
    _compare(plain, [*runs, Run("reasonmed", "by-model", BY_MODEL)], questions_db, tmp_path)


def test_each_style_gives_the_plain_datasets_under_the_papers_prompts(
    plain: Outcome, questions_db: Path, tmp_path: Path
) -> None:
    """The paper's prompts ask for no answer line: even the plain style concludes in a sentence."""
    runs = [Run("paper", "plain"), Run("paper", "by-model", BY_MODEL)]
    _compare(plain, runs, questions_db, tmp_path)
