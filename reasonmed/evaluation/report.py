"""Accuracy tables: per benchmark and per MMLU subset, with Wilson intervals, beside the paper's figures.

Every figure is computed from stored predictions (``eval_predictions``) for an explicit set of
questions, so a table can be recomputed, audited row by row, and compared across models.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from reasonmed.csv_cells import write_csv as write_cells
from reasonmed.db.eval_repo import PredictionOutcome
from reasonmed.evaluation.benchmarks import Benchmark
from reasonmed.evaluation.stats import wilson_interval

ALL = "all"  # the subset label of a benchmark's overall row

# What the project specification (a summary of the ReasonMed paper, kept outside this repository, Stage 5)
# states about the paper's results. It gives
# only relative PubMedQA figures; every absolute accuracy is "not given" rather than guessed.
PAPER_REFERENCE: dict[str, str] = {
    "medqa": "not given",
    "medmcqa": "not given",
    "pubmedqa": "ReasonMed-7B: +4.17% over the best prior sub-10B model, +4.60% over LLaMA3.1-70B (absolute accuracy not given)",
    "mmlu-med": "not given",
}


@dataclass(frozen=True)
class AccuracyRow:
    model: str
    endpoint: str
    benchmark: str
    subset: str  # "all" for the benchmark as a whole
    selected: int  # test items chosen for this run (after --limit)
    n: int  # items with a stored prediction (== selected unless some calls failed)
    correct: int
    unanswered: int  # predictions with no extractable answer (scored wrong)
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    prompt_sha256: str

    @property
    def complete(self) -> bool:
        return self.n == self.selected

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _row(
    model: str,
    endpoint: str,
    benchmark: str,
    subset: str,
    selected: int,
    outcomes: Sequence[PredictionOutcome],
    prompt_sha256: str,
) -> AccuracyRow:
    n = len(outcomes)
    correct = sum(o.correct for o in outcomes)
    low, high = wilson_interval(correct, n) if n else (None, None)
    return AccuracyRow(
        model=model,
        endpoint=endpoint,
        benchmark=benchmark,
        subset=subset,
        selected=selected,
        n=n,
        correct=correct,
        unanswered=sum(not o.answered for o in outcomes),
        accuracy=correct / n if n else None,
        ci_low=low,
        ci_high=high,
        prompt_sha256=prompt_sha256,
    )


def accuracy_rows(
    *,
    model: str,
    endpoint: str,
    benchmark: Benchmark,
    selected: dict[int, str | None],
    outcomes: Iterable[PredictionOutcome],
    prompt_sha256: str,
) -> list[AccuracyRow]:
    """The benchmark's overall row, then one row per subset (MMLU) in the benchmark's subset order.

    ``selected`` maps each chosen question id to its subset; outcomes for other questions are ignored.
    """
    chosen = [o for o in outcomes if o.question_id in selected]
    rows = [_row(model, endpoint, benchmark.name, ALL, len(selected), chosen, prompt_sha256)]
    if benchmark.subsets:
        for subset in benchmark.subsets:
            n_sel = sum(1 for s in selected.values() if s == subset)
            if n_sel:
                rows.append(
                    _row(
                        model,
                        endpoint,
                        benchmark.name,
                        subset,
                        n_sel,
                        [o for o in chosen if selected[o.question_id] == subset],
                        prompt_sha256,
                    )
                )
    return rows


def _accuracy_cell(r: AccuracyRow) -> str | None:
    """``84.12% [80.1, 87.6] (n=500)``; ``None`` for a benchmark that was not run."""
    if r.accuracy is None or r.ci_low is None or r.ci_high is None:
        return None
    return f"{100 * r.accuracy:.2f}% [{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}] (n={r.n})"


def reference_rows(rows: Sequence[AccuracyRow]) -> list[dict[str, str]]:
    """docs/evaluation.md's table: the paper's reported figures beside this model's accuracy."""
    overall = {r.benchmark: r for r in rows if r.subset == ALL}
    out = []
    for name, paper in PAPER_REFERENCE.items():
        r = overall.get(name)
        ours = (_accuracy_cell(r) if r is not None else None) or "not run"
        out.append({"benchmark": name, "paper (ReasonMed-7B)": paper, "this model": ours})
    return out


def reference_markdown(rows: Sequence[AccuracyRow], model: str) -> str:
    """docs/evaluation.md's reference table with this model's column filled, ready to paste there."""
    lines = [
        f"| benchmark | paper: ReasonMed-7B (as stated in the spec) | this model: `{model}` |",
        "|---|---|---|",
    ]
    lines += [
        f"| {r['benchmark']} | {r['paper (ReasonMed-7B)']} | {r['this model']} |"
        for r in reference_rows(rows)
    ]
    subsets = [r for r in rows if r.subset != ALL and r.accuracy is not None]
    if subsets:
        lines += ["", "| benchmark | subset | accuracy [95% CI] (n) |", "|---|---|---|"]
        lines += [f"| {r.benchmark} | {r.subset} | {_accuracy_cell(r)} |" for r in subsets]
    return "\n".join(lines) + "\n"


def reference_path(csv_path: Path | str) -> Path:
    """Where the filled reference table goes beside ``--out``'s CSV: ``acc.csv`` -> ``acc.reference.md``."""
    p = Path(csv_path)
    return p.with_name(p.stem + ".reference.md")


CSV_FIELDS = tuple(f.name for f in fields(AccuracyRow))


def write_csv(path: Path | str, rows: Sequence[AccuracyRow]) -> Path:
    """The accuracy table as CSV; model and endpoint names are data to a spreadsheet (``reasonmed.csv_cells``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", newline="", encoding="utf-8") as f:
        write_cells(f, CSV_FIELDS, (r.as_dict() for r in rows))
    return p


def artifact_rows(rows: Sequence[AccuracyRow]) -> list[dict[str, object]]:
    """Rows for a Prefect table artifact: percentages rounded for reading, the rest as stored."""

    def pct(x: float | None) -> float | None:
        return None if x is None else round(100 * x, 2)

    return [
        {
            "benchmark": r.benchmark,
            "subset": r.subset,
            "n": r.n,
            "selected": r.selected,
            "correct": r.correct,
            "accuracy_pct": pct(r.accuracy),
            "ci95_low_pct": pct(r.ci_low),
            "ci95_high_pct": pct(r.ci_high),
            "unanswered": r.unanswered,
            "model": r.model,
            "prompt_version": r.prompt_sha256[:12],
        }
        for r in rows
    ]
