"""``reasonmed eval`` (benchmark accuracy of a served model) and ``reasonmed score`` (dataset quality)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import JustifyMethod
from rich.table import Table
from rich.text import Text

from reasonmed.cli.app import INSPECT, app
from reasonmed.cli.common import console, err_console
from reasonmed.cli.outputs import check_out
from reasonmed.cli.ranges import INT64_MIN, in_range
from reasonmed.cli.safe_text import safe_text
from reasonmed.evaluation import report, scoring
from reasonmed.evaluation.benchmarks import BENCHMARKS, parse_benchmarks
from reasonmed.evaluation.judge_modes import JUDGE_MODES
from reasonmed.evaluation.score_run import ScoreResult, compare_results
from reasonmed.jobs.evaluate import EvalJob, run_eval
from reasonmed.jobs.score import ScoreJob, run_scores
from reasonmed.mistake import Mistake


def _fail(message: str) -> Mistake:
    return Mistake(message)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _incomplete(name: str, why: str) -> None:
    """A part that did not finish; ``why`` quotes the server or the model."""
    err_console.print(
        Text.assemble(("incomplete:", "yellow"), " ", safe_text(f"{name}: {why}")), soft_wrap=True
    )


def accuracy_table(rows: list[report.AccuracyRow], title: str) -> Table:
    table = Table(title=safe_text(title, style="table.title"), title_justify="left")  # names the served model
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("benchmark", "left"),
        ("subset", "left"),
        ("n", "right"),
        ("correct", "right"),
        ("accuracy %", "right"),
        ("95% CI", "right"),
        ("unanswered", "right"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for r in rows:
        n = f"{r.n}" if r.n == r.selected else f"{r.n} of {r.selected}"
        ci = "-" if r.ci_low is None else f"{_pct(r.ci_low)}–{_pct(r.ci_high)}"
        table.add_row(
            safe_text(r.benchmark),
            safe_text(r.subset),
            n,
            str(r.correct),
            _pct(r.accuracy),
            ci,
            str(r.unanswered),
        )
    return table


def reference_table(rows: list[report.AccuracyRow], model: str) -> Table:
    """The shape of docs/evaluation.md: the paper's reported figures beside this model's accuracy."""
    table = Table(title="paper vs this model (docs/evaluation.md)", title_justify="left")
    table.add_column("benchmark")
    table.add_column("paper: ReasonMed-7B", overflow="fold")
    table.add_column(safe_text(f"this model: {model}"), overflow="fold")
    for r in report.reference_rows(rows):
        table.add_row(*map(safe_text, r.values()))
    return table


@app.command("eval", rich_help_panel=INSPECT)
def evaluate(
    model_endpoint: Annotated[
        str,
        typer.Option(
            "--model-endpoint",
            metavar="NAME",
            help="An endpoint of the pipeline config: the served model to evaluate.",
        ),
    ],
    benchmarks: Annotated[
        str, typer.Option(metavar="LIST", help=f"Comma-separated: {', '.join(BENCHMARKS)}.")
    ] = ",".join(BENCHMARKS),
    limit: Annotated[
        int | None,
        typer.Option(
            callback=in_range(1),
            help="First N test items per benchmark (id order: reruns cover the same items).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Pipeline YAML (default REASONMED_PIPELINE_CONFIG, else the simulator default).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            metavar="CSV",
            help="Also write the accuracy table as CSV, and the filled paper-vs-model table beside it (NAME.reference.md).",
        ),
    ] = None,
    temperature: Annotated[
        float, typer.Option(min=0.0, max=2.0, help="Sampling temperature (0 = greedy).")
    ] = 0.0,
    max_tokens: Annotated[
        int, typer.Option(callback=in_range(16), help="Token budget for each chain of thought.")
    ] = 4096,
    structured_output: Annotated[
        bool,
        typer.Option(
            "--structured-output",
            help="Ask for a JSON reply held to a schema (reasoning, answer) in the endpoint's structured_dialect.",
        ),
    ] = False,
    database_url: Annotated[
        str | None, typer.Option("--database-url", metavar="URL", help="Overrides REASONMED_DATABASE_URL.")
    ] = None,
) -> None:
    """Accuracy of a served model on the benchmark TEST items stored in the database (flagged at ingest),
    zero-shot chain of thought, with 95% Wilson intervals per benchmark and per MMLU medical subset.

    Every prediction is stored (model, prompt version, raw output, extracted answer, correct); running
    again asks the model only for predictions not stored yet.
    """
    try:
        chosen = parse_benchmarks(benchmarks)
    except ValueError as exc:
        raise _fail(f"--benchmarks: {exc}") from None
    if out is not None:
        check_out(out)
    result = run_eval(
        EvalJob(
            model_endpoint=model_endpoint,
            benchmarks=[b.name for b in chosen],
            limit=limit,
            config=config,
            out=out,
            temperature=temperature,
            max_tokens=max_tokens,
            structured_output=structured_output,
        ),
        database_url,
    )
    console.print(
        accuracy_table(
            result.rows, f"eval run {result.run_id}: {result.model} (prompt {result.prompt_sha256[:12]})"
        )
    )
    console.print(reference_table(result.rows, result.model))
    if result.csv:
        console.print(
            safe_text(f"CSV: {result.csv}; reference table (markdown): {report.reference_path(result.csv)}")
        )
    for name, why in result.failures.items():
        _incomplete(name, why)
    if result.failures:
        raise typer.Exit(1)


def _score_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=safe_text(title, style="table.title"), title_justify="left")  # names the judge model
    cols = (
        "version",
        "variant",
        "scored",
        "mean_overall",
        "ci95_low",
        "ci95_high",
        "clinical_accuracy",
        "logical_reasoning",
        "factual_correctness",
        "completeness",
        "unparseable",
    )
    for c in cols:
        table.add_column(c.replace("_", " "), justify="left" if c == "variant" else "right")
    for r in rows:
        table.add_row(*(safe_text("-" if r[c] is None else r[c]) for c in cols))
    return table


@app.command("score", rich_help_panel=INSPECT)
def score(
    dataset: Annotated[
        int | None,
        typer.Option("--dataset", metavar="VERSION", callback=in_range(1), help="Dataset version to rate."),
    ] = None,
    compare: Annotated[
        tuple[int, int] | None,
        typer.Option(
            "--compare",
            metavar="V1 V2",
            callback=in_range(1),
            help="Rate two versions on the same terms and compare them.",
        ),
    ] = None,
    sample: Annotated[
        int, typer.Option(callback=in_range(1), help="Rows sampled per version (the paper: 3,000).")
    ] = 3000,
    variant: Annotated[
        str, typer.Option(metavar="LIST", help="reasonmed, cotmed, responsemed (comma-separated) or all.")
    ] = "reasonmed",
    judge_endpoint: Annotated[
        str | None, typer.Option(metavar="NAME", help="Judge endpoint (default: the verifier's).")
    ] = None,
    seed: Annotated[
        int,
        typer.Option(callback=in_range(INT64_MIN), help="Sample seed: the same seed rates the same rows."),
    ] = 0,
    structured_output: Annotated[
        bool,
        typer.Option(
            "--structured-output",
            help="Ask the judge for ratings held to a JSON schema in its endpoint's structured_dialect.",
        ),
    ] = False,
    judge_mode: Annotated[
        str,
        typer.Option(
            "--judge-mode",
            help="rubric: four criteria + overall, the judge sees the key, "
            "temperature 0; paper: question + response only, one holistic score, temperature 0.7.",
        ),
    ] = "rubric",
    config: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Pipeline YAML (default REASONMED_PIPELINE_CONFIG, else the simulator default).",
        ),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", metavar="URL", help="Overrides REASONMED_DATABASE_URL.")
    ] = None,
) -> None:
    """Judge-rated quality of an exported dataset version, 1-10: the project's rubric (clinical accuracy,
    logical reasoning, factual correctness, completeness, overall) or the paper's one holistic score
    (--judge-mode paper); mean overall with a 95% interval per variant. The output names the mode."""
    if judge_mode not in JUDGE_MODES:
        raise _fail(f"--judge-mode: choose from {', '.join(JUDGE_MODES)} (got {judge_mode!r})")
    if (dataset is None) == (compare is None):
        raise _fail("give either --dataset VERSION or --compare V1 V2")
    try:
        variants = scoring.parse_variants(variant)
    except ValueError as exc:
        raise _fail(f"--variant: {exc}") from None
    results = run_scores(
        ScoreJob(
            versions=[dataset] if dataset is not None else list(compare or ()),
            sample=sample,
            variants=variants,
            judge_endpoint=judge_endpoint,
            seed=seed,
            config=config,
            structured_output=structured_output,
            judge_mode=judge_mode,  # narrowed by the check above
        ),
        database_url,
    )
    for res in results:
        console.print(
            _score_table(
                res.rows,
                f"dataset version {res.version}: judge {res.judge_model} ({res.judge_mode} mode), seed {res.seed}",
            )
        )
        for name, why in res.failures.items():
            _incomplete(name, why)
    if compare is not None:
        console.print(_comparison_table(compare, results))
    if any(res.failures for res in results):
        raise typer.Exit(1)


def _comparison_table(compare: tuple[int, int], results: list[ScoreResult]) -> Table:
    table = Table(
        title=f"version {compare[1]} minus version {compare[0]} (mean overall, 95% interval)",
        title_justify="left",
    )
    for c in ("variant", "mean a", "mean b", "difference", "95% CI", "significant"):
        table.add_column(c)
    for cmp in compare_results(results[0], results[1]):
        fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
        table.add_row(
            safe_text(cmp["variant"]),
            fmt(cmp["mean_a"]),
            fmt(cmp["mean_b"]),
            fmt(cmp["difference"]),
            f"{fmt(cmp['ci95_low'])} to {fmt(cmp['ci95_high'])}",
            "yes" if cmp["significant"] else "no",
        )
    return table
