"""The records the nightly, scoring and evaluation flows hand back, built without Prefect: the same rows,
messages and results the flows returned when they built them inline."""

from __future__ import annotations

import pytest

from reasonmed.evaluation.eval_run import EvalResult
from reasonmed.evaluation.report import AccuracyRow
from reasonmed.evaluation.score_run import ScoreResult, compare_results
from reasonmed.evaluation.scoring import VariantSummary, summarise
from reasonmed.evaluation.stats import MeanCI
from reasonmed.ingest.service import IngestSummary
from reasonmed.nightly.ingest import FileOutcome
from reasonmed.nightly.report import Growth
from reasonmed.nightly.request import NightRequest


def _summary(**kw: object) -> IngestSummary:
    return IngestSummary(file="a.json", sha256="ab" * 32, source="pubmedqa", split="train", **kw)  # type: ignore[arg-type]


def test_a_files_row_has_its_sha256_only_when_it_was_read() -> None:
    new = FileOutcome.of("s3://b/a.json", _summary(inserted=5, duplicates=1, rejected=2))
    assert new.as_row() == {
        "file": "s3://b/a.json",
        "status": "new",
        "inserted": 5,
        "duplicates": 1,
        "rejected": 2,
        "sha256": "ab" * 32,
    }
    assert FileOutcome.of("a", _summary(already_ingested=True)).status == "already ingested"
    assert FileOutcome.of("a", _summary(status="failed", error="cut short")).status == "error: cut short"
    empty = FileOutcome.of("a", _summary(read=3, rejected=3, suggestion="try --format medqa"))
    assert empty.failed and empty.status == "error: no valid record (try --format medqa)"
    refused = FileOutcome.refused("x.json", "links outside the input folder; not read")
    assert refused.as_row() == {
        "file": "x.json",
        "status": "error: links outside the input folder; not read",
        "inserted": 0,
        "duplicates": 0,
        "rejected": 0,
    }


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"priority": "random"}, "priority must be one of"),
        ({"max_questions": -1}, "max_questions must be >= 0 or unset (got -1)"),
        ({"max_tokens": -5}, "max_tokens must be >= 0 or unset (got -5)"),
    ],
)
def test_a_night_asked_the_impossible_is_refused_before_it_starts(
    kw: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        NightRequest(**kw)  # type: ignore[arg-type]


def test_a_nights_outcome_names_the_export_before_the_build() -> None:
    g = Growth(nightly_run_id=7, started_at="", parameters={}, before={"samples": 1}, after={"samples": 4})
    assert g.problem is None and g.failure is None
    assert g.headline() == "Nightly growth: +3 samples, +0 questions"
    assert g.log_line() == (
        "night 7: 0 questions accepted, 0 rejected, 3 samples added, 0 tokens; export version None"
    )
    g.build_error = "1 question left undone"
    assert g.problem == "1 question left undone" and g.failure == "night 7: 1 question left undone"
    g.export_error = "OSError: disk full"
    assert g.problem == "OSError: disk full"
    assert g.failure == "night 7: the export failed (OSError: disk full); rerun the export deployment"
    assert g.result() == {"nightly_run_id": 7, **g.summary(), "export": None, "ingest": []}


def _variant(version: int, variant: str, overall: list[float]) -> VariantSummary:
    criteria = {"logical_reasoning": None, "factual_correctness": None, "completeness": None}
    rows = [{"status": "ok", "overall": o, "clinical_accuracy": o, **criteria} for o in overall]
    return summarise(
        rows,
        version=version,
        variant=variant,
        sample_seed=0,
        judge_model="judge",
        prompt_sha256="f" * 64,
        sampled=len(rows),
    )


def _scores(version: int, *summaries: VariantSummary) -> ScoreResult:
    return ScoreResult(
        run_id=1,
        version=version,
        judge_endpoint="sim",
        judge_model="judge",
        judge_mode="rubric",
        seed=0,
        sample=[3, 1, 2],
        counts={},
        failures={},
        summaries=list(summaries),
    )


def test_score_results_read_back_as_they_were_and_compare_what_both_rated() -> None:
    a = _scores(1, _variant(1, "reasonmed", [7, 8, 9]), _variant(1, "cotmed", [5, 6]))
    b = _scores(2, _variant(2, "responsemed", [4, 4]), _variant(2, "reasonmed", [8, 9, 10]))
    assert ScoreResult.from_dict(a.as_dict()) == a
    assert a.as_dict()["rows"][0]["mean_overall"] == 8.0
    assert a.lines() == [
        "v1 reasonmed: mean 8.000 over 3 rated rows",
        "v1 cotmed: mean 5.500 over 2 rated rows",
    ]
    [cmp] = compare_results(a, b)
    assert (cmp["variant"], cmp["version_a"], cmp["version_b"], cmp["difference"]) == ("reasonmed", 1, 2, 1.0)
    nothing = _variant(1, "cotmed", [])
    assert nothing.overall == MeanCI(0, None, None, None, None)
    assert _scores(1, nothing).lines() == ["v1 cotmed: mean nan over 0 rated rows"]


def test_an_eval_result_reads_back_as_it_was_and_logs_each_benchmark_once() -> None:
    def row(subset: str, correct: int) -> AccuracyRow:
        return AccuracyRow("m", "e", "mmlu-med", subset, 4, 4, correct, 0, correct / 4, 0.1, 0.9, "f" * 64)

    result = EvalResult(1, "m", "e", "f" * 64, [row("all", 3), row("anatomy", 1)], {}, {}, None, "| x |")
    assert EvalResult.from_dict(result.as_dict()) == result
    assert result.lines() == ["mmlu-med: 75.00% (3/4, 4 selected)"]
