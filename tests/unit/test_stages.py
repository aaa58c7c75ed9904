"""Every stage and tier branch, run against a scripted chat backend on SQLite: no Prefect, no HTTP, seconds.

Each case is one question (key C) whose nine generated paths, verdicts, scores, rewrites and summaries are
written by hand in ``CASES``. The expected tier, kept paths (in rank order), rejection reason, the paths the
rewriters were asked about and the number of requests per role were worked out on paper from that table and
the paper's rules (9 paths; easy at 5+ passing, medium at 2-4, difficult at 0-1; keep the top 2; the ranker's
ties keep generation order; medium refines its best 2 and keeps a rewrite that passes, else its parent;
difficult refines once and regenerates twice from the lone passing path, else the first failed attempt that
reached an answer, and keeps the passing refinement, else the lone passing path, then passing regenerations;
a verdict that never parses is asked 3 times and counts as not Correct; a summary that stays unusable after
2 re-asks drops its path). Every stage runs twice, as a retried or resumed run would, and the second run
asks for nothing. No project function computes an expectation.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from reasonmed.config import load_pipeline_config
from reasonmed.db import migrate
from reasonmed.db.engine import make_engine
from reasonmed.ingest.service import ingest_file
from reasonmed.llm.types import LLMError
from reasonmed.pipeline import stages
from reasonmed.pipeline.context import StageContext
from reasonmed.pipeline.failures import StageIncomplete
from reasonmed.provenance import Provenance
from reasonmed.sim.behaviour import ParsedPrompt, Role
from tests.scripted_chat import Script, ScriptedBackends

PIPELINE = Path(__file__).resolve().parents[2] / "reasonmed" / "default_pipeline.yaml"
KEY = "C"
QUESTION = {
    "question": "ST elevation in II, III and aVF: which coronary artery is most likely occluded?",
    "options": {
        "A": "Left anterior descending",
        "B": "Left circumflex",
        "C": "Right coronary",
        "D": "Left main",
    },
    "answer_idx": KEY,
}
# The generation slots of the default pipeline in generation order (model order, then temperature): p0..p8.
SLOTS = [(ep, t) for ep in ("sim-qwen", "sim-r1-distill", "sim-huatuo") for t in (0.7, 0.9, 1.0)]
VERDICTS = {"C": "Correct", "E": "Error"}


@dataclass(frozen=True)
class Case:
    """answers: the option each generated path concludes with ('-': none); verdicts: C(orrect), E(rror) or
    U(nparseable: the verifier never answers in a readable form); scores: the ranker's, 3 where not given.
    refine / regenerate: the option a rewrite concludes with and its verdict letter."""

    answers: str
    verdicts: str
    scores: dict[int, int] = field(default_factory=dict)
    refine: str = "CC"
    regenerate: str = "CC"
    unusable_summaries: frozenset[str] = frozenset()  # tags whose summarizer answers with nothing


@dataclass(frozen=True)
class Expected:
    tier: str
    n_correct: int
    status: str
    kept: list[str]  # tags of the accepted paths in rank order ([g]: a regenerated path)
    requests: dict[str, int]  # role -> requests sent (re-asks included)
    rewritten_from: list[str] = field(default_factory=list)  # tags the refiner and regenerator were shown
    rejection_reason: str | None = None


CASES: dict[str, tuple[Case, Expected]] = {
    # 6 pass: easy; the six are ranked and the two 5s kept, p3 before p5 (generation order).
    "easy-ranker-keeps-best": (
        Case("CCCCCCBBB", "CCCCCCEEE", {3: 5, 5: 5}),
        Expected(
            "easy", 6, "accepted", ["[p3]", "[p5]"], {"generate": 9, "verify": 9, "rank": 6, "summarize": 2}
        ),
    ),
    # The same, but p3's summarizer answers with nothing, 3 times: p3 is dropped, p5 goes on alone.
    "easy-unusable-summary-drops-path": (
        Case("CCCCCCBBB", "CCCCCCEEE", {3: 5, 5: 5}, unusable_summaries=frozenset({"[p3]"})),
        Expected("easy", 6, "accepted", ["[p5]"], {"generate": 9, "verify": 9, "rank": 6, "summarize": 4}),
    ),
    # 3 pass (p0, p4, p8): medium; best two: p8 (5), then p0 (4, before p4); both refinements pass and
    # replace their parents. Verified: 9 generated + 2 refined.
    "medium-refined-passes": (
        Case("CBBBCBBBC", "CEEECEEEC", {0: 4, 4: 4, 8: 5}, refine="CC"),
        Expected(
            "medium",
            3,
            "accepted",
            ["[r8]", "[r0]"],
            {"generate": 9, "verify": 11, "rank": 3, "refine": 2, "summarize": 2},
            ["[p0]", "[p8]"],
        ),
    ),
    # 2 pass (p1, p2): medium; both refinements conclude B and fail, so the parents are kept.
    "medium-refined-fails": (
        Case("BCCBBBBBB", "ECCEEEEEE", refine="BE"),
        Expected(
            "medium",
            2,
            "accepted",
            ["[p1]", "[p2]"],
            {"generate": 9, "verify": 11, "rank": 2, "refine": 2, "summarize": 2},
            ["[p1]", "[p2]"],
        ),
    ),
    # 1 pass (p6): difficult; refined once and regenerated twice from p6; the refinement passes, the
    # regenerations fail. Verified: 9 + 1 + 2.
    "difficult-lone-path-refined": (
        Case("BBBBBBCBB", "EEEEEECEE", refine="CC", regenerate="BE"),
        Expected(
            "difficult",
            1,
            "accepted",
            ["[r6]"],
            {"generate": 9, "verify": 12, "refine": 1, "regenerate": 2, "summarize": 1},
            ["[p6]", "[p6]", "[p6]"],
        ),
    ),
    # 1 pass (p6): difficult; nothing rewritten passes, so the lone passing path itself is kept.
    "difficult-lone-path-kept": (
        Case("BBBBBBCBB", "EEEEEECEE", refine="BE", regenerate="BE"),
        Expected(
            "difficult",
            1,
            "accepted",
            ["[p6]"],
            {"generate": 9, "verify": 12, "refine": 1, "regenerate": 2, "summarize": 1},
            ["[p6]", "[p6]", "[p6]"],
        ),
    ),
    # 0 pass: difficult; p0 reaches no answer (asked again twice: 9 + 2 generation requests), so the rewrites
    # start from p1; the refinement fails, both regenerations pass and are kept.
    "difficult-accepted-by-regeneration": (
        Case("-BBBBBBBB", "EEEEEEEEE", refine="BE", regenerate="CC"),
        Expected(
            "difficult",
            0,
            "accepted",
            ["[g]", "[g]"],
            {"generate": 11, "verify": 12, "refine": 1, "regenerate": 2, "summarize": 2},
            ["[p1]", "[p1]", "[p1]"],
        ),
    ),
    # 0 pass: difficult; nothing rewritten passes: rejected with the tier's reason, nothing summarised.
    "difficult-rejected": (
        Case("BBBBBBBBB", "EEEEEEEEE", refine="AE", regenerate="DE"),
        Expected(
            "difficult",
            0,
            "rejected",
            [],
            {"generate": 9, "verify": 12, "refine": 1, "regenerate": 2},
            ["[p0]", "[p0]", "[p0]"],
            "difficult tier: neither the refined path nor any of the 2 regenerated paths was verified correct",
        ),
    ),
    # p4 and p5 conclude C but their verdicts never parse (3 asks each): not Correct, so 4 pass (p0-p3),
    # medium (easy if they counted); p0 and p1 (all scores 3: generation order) are refined and pass.
    # Verified: 9 + 2 x 2 re-asks + 2 refined.
    "unparseable-verdict-is-not-correct": (
        Case("CCCCCCBBB", "CCCCUUEEE", refine="CC"),
        Expected(
            "medium",
            4,
            "accepted",
            ["[r0]", "[r1]"],
            {"generate": 9, "verify": 15, "rank": 4, "refine": 2, "summarize": 2},
            ["[p0]", "[p1]"],
        ),
    ),
}


def _tag(path: str | None) -> str:
    assert path is not None and path.startswith("["), path
    return path.split("]")[0] + "]"


def _script(case: Case) -> Script:
    def answer(endpoint: str, role: Role, prompt: ParsedPrompt, temperature: float) -> str:
        if role == "generate":
            i = SLOTS.index((endpoint, temperature))
            option = case.answers[i]
            return f"[p{i}] Reading the leads." + ("" if option == "-" else f"\nFinal answer: {option}")
        tag = _tag(prompt.path)
        if role == "refine":
            return f"[r{tag[2:-1]}] Revised.\nFinal answer: {case.refine[0]}"
        if role == "regenerate":
            return f"[g] Deeper.\nFinal answer: {case.regenerate[0]}"
        if role == "verify":
            if tag.startswith("[p"):
                i = int(tag[2:-1])
                option, verdict = case.answers[i], case.verdicts[i]
            else:
                rewrite = case.refine if tag.startswith("[r") else case.regenerate
                option, verdict = rewrite[0], rewrite[1]
            if verdict == "U":
                return "The reasoning looks thorough to me."
            return json.dumps(
                {"verdict": VERDICTS[verdict], "path_answer": option, "reason": f"{tag} says {option}."}
            )
        if role == "rank":
            return json.dumps({"score": case.scores.get(int(tag[2:-1]), 3), "justification": "Scripted."})
        if role == "summarize":
            return "" if tag in case.unusable_summaries else f"{tag} In short: the right coronary artery."
        raise AssertionError(f"no script for {role}")

    return answer


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head per module; each test gets a copy (migrating takes seconds)."""
    path = tmp_path_factory.mktemp("schema") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def stage_db(migrated_template: Path, tmp_path: Path) -> Iterator[Engine]:
    path = tmp_path / "reasonmed.db"
    with sqlite3.connect(migrated_template) as source, sqlite3.connect(path) as copy:
        source.backup(copy)  # a consistent copy, whatever the template's WAL still holds
    engine = make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


def _ingest(engine: Engine, tmp_path: Path) -> int:
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps(QUESTION) + "\n")
    ingest_file(engine, f, "medqa")
    with engine.connect() as c:
        return int(c.execute(text("select id from questions")).scalar_one())


async def _run_stages(ctx: StageContext, qid: int) -> tuple[list[str], list[str | None]]:
    """Each stage twice in a row, as a retried or resumed run would run it: the second asks for nothing."""
    prov = Provenance()
    for stage in (stages.generate, stages.generate, stages.verify, stages.verify):
        await stage(ctx, qid, prov)
    resolved = [await stages.resolve(ctx, qid, prov) for _ in range(2)]
    return resolved, [await stages.summarize(ctx, qid, prov) for _ in range(2)]


@pytest.mark.parametrize("name", list(CASES))
def test_stage_outcomes_follow_the_hand_worked_table(stage_db: Engine, tmp_path: Path, name: str) -> None:
    case, want = CASES[name]
    qid = _ingest(stage_db, tmp_path)
    cfg = load_pipeline_config(PIPELINE)
    backends = ScriptedBackends(cfg, _script(case))
    ctx = StageContext(engine=stage_db, cfg=cfg, backends=backends, run_id=None)

    resolved, summarized = asyncio.run(_run_stages(ctx, qid))

    with stage_db.connect() as c:
        outcome = c.execute(
            text(
                "select tier, n_correct, status, rejection_reason from question_outcomes where question_id = :q"
            ),
            {"q": qid},
        ).one()
        kept = [
            _tag(t)
            for t in c.execute(
                text("""select p.clean_text from accepted_paths a join reasoning_paths p on p.id = a.path_id
                        where a.question_id = :q and a.superseded_at is null and a.dropped_reason is null
                        order by a.rank"""),
                {"q": qid},
            ).scalars()
        ]
        kept_ids = list(
            c.execute(
                text("""select path_id from accepted_paths where question_id = :q and superseded_at is null
                        and dropped_reason is null"""),
                {"q": qid},
            ).scalars()
        )
        summarised = c.execute(text("select count(*) from summaries")).scalar_one()
        stored = c.execute(
            text("""select clean_text, origin, parent_path_id is not null, generation_order
                    from reasoning_paths where question_id = :q"""),
            {"q": qid},
        ).all()
    # One stored path per rewrite asked for, with its parent; the generated ones in generation order.
    assert Counter(origin for _t, origin, _p, _o in stored) == Counter(
        generated=9, refined=want.requests.get("refine", 0), regenerated=want.requests.get("regenerate", 0)
    )
    assert all(has_parent == (origin != "generated") for _t, origin, has_parent, _o in stored)
    generated = sorted((order, _tag(t)) for t, origin, _p, order in stored if origin == "generated")
    assert generated == [(i, f"[p{i}]") for i in range(9)]
    assert resolved == ["resolved" if want.status == "accepted" else "rejected"] * 2
    assert summarized == [want.status] * 2
    assert tuple(outcome) == (want.tier, want.n_correct, want.status, want.rejection_reason)
    assert kept == want.kept
    assert len(set(kept_ids)) == len(kept_ids)  # two regenerated paths with the same text are two paths
    assert summarised == len(want.kept)
    assert dict(Counter(a.role for a in backends.log)) == want.requests
    assert (
        sorted(_tag(a.path) for a in backends.log if a.role in ("refine", "regenerate"))
        == want.rewritten_from
    )


def test_unparseable_verdicts_are_stored_as_such(stage_db: Engine, tmp_path: Path) -> None:
    """The verifier's unreadable replies are kept as 'unparseable' verdicts after its 3 asks, and the error
    analyses handed to the refiner are the Error verdicts' reasons only (p6-p8), in generation order."""
    case, _ = CASES["unparseable-verdict-is-not-correct"]
    qid = _ingest(stage_db, tmp_path)
    cfg = load_pipeline_config(PIPELINE)
    errors: list[tuple[str, ...]] = []
    script = _script(case)

    def recording(endpoint: str, role: Role, prompt: ParsedPrompt, temperature: float) -> str:
        if role == "refine":
            errors.append(prompt.errors)
        return script(endpoint, role, prompt, temperature)

    ctx = StageContext(engine=stage_db, cfg=cfg, backends=ScriptedBackends(cfg, recording), run_id=None)
    asyncio.run(_run_stages(ctx, qid))
    with stage_db.connect() as c:
        unparseable = c.execute(
            text("""select p.clean_text, v.reason, v.parse_attempts from verdicts v
                    join reasoning_paths p on p.id = v.path_id where v.outcome = 'unparseable'""")
        ).all()
    assert sorted((_tag(t), r, n) for t, r, n in unparseable) == [
        ("[p4]", "unparseable", 3),
        ("[p5]", "unparseable", 3),
    ]
    assert errors == [("[p6] says B.", "[p7] says B.", "[p8] says B.")] * 2


def test_a_failed_request_is_asked_again_and_nothing_else(stage_db: Engine, tmp_path: Path) -> None:
    """The easy case, with the first request of each judged role about one path timing out (verify p2,
    rank p4, summarize p5; generate p8 too): each stage saves what succeeded and fails; run again, it asks
    for the failed path only. Requests: generate 9 + 1, verify 9 + 1, rank 6 + 1, summarize 2 + 1."""
    case, _ = CASES["easy-ranker-keeps-best"]
    qid = _ingest(stage_db, tmp_path)
    cfg = load_pipeline_config(PIPELINE)
    script = _script(case)
    failing = {("generate", "[p8]"), ("verify", "[p2]"), ("rank", "[p4]"), ("summarize", "[p5]")}

    def flaky(endpoint: str, role: Role, prompt: ParsedPrompt, temperature: float) -> str:
        about = f"[p{SLOTS.index((endpoint, temperature))}]" if role == "generate" else _tag(prompt.path)
        if (role, about) in failing:
            failing.remove((role, about))
            raise LLMError(f"{endpoint}: timed out", kind="timeout", endpoint=endpoint)
        return script(endpoint, role, prompt, temperature)

    backends = ScriptedBackends(cfg, flaky)
    ctx = StageContext(engine=stage_db, cfg=cfg, backends=backends, run_id=None)
    prov = Provenance()

    async def twice(stage: Callable[..., Awaitable[object]]) -> object:
        with pytest.raises(StageIncomplete, match="1 request\\(s\\) failed; first: .*timeout"):
            await stage(ctx, qid, prov)
        return await stage(ctx, qid, prov)

    async def run() -> list[object]:
        return [await twice(s) for s in (stages.generate, stages.verify, stages.resolve, stages.summarize)]

    assert asyncio.run(run()) == [1, None, "resolved", "accepted"]
    assert dict(Counter(a.role for a in backends.log)) == {
        "generate": 10,
        "verify": 10,
        "rank": 7,
        "summarize": 3,
    }
    assert failing == set()
    with stage_db.connect() as c:
        kept = c.execute(
            text("""select p.clean_text from accepted_paths a join reasoning_paths p on p.id = a.path_id
                    where a.superseded_at is null order by a.rank""")
        ).scalars()
        assert [_tag(t) for t in kept] == ["[p3]", "[p5]"]
