"""The Python entry points for notebooks: ``reasonmed.build(...)`` and ``reasonmed.show(question_id)``.

They run the jobs the CLI runs (``reasonmed.jobs``: the same flows, the same checks, the same one-line
mistakes as ``reasonmed.mistake.Mistake``) and hand back Python objects, never printing a table or exiting.

    import reasonmed
    samples = reasonmed.build(questions="data/pubmedqa/ori_pqal.json", format="pubmedqa",
                              benchmark_test_ids="data/pubmedqa/test_ground_truth.json",
                              database="demo.db", limit=20)
    samples[["question_id", "model", "origin", "summary"]].head()
    reasonmed.show(int(samples.question_id[0]), database="demo.db")

``as_="datasets"`` hands the samples back as a Hugging Face ``datasets.Dataset`` instead of a DataFrame
(the [hub] extra), and ``questions`` may then be a datasets folder or ``hf://datasets/OWNER/NAME`` too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import pandas as pd
from sqlalchemy import Engine

from reasonmed.config import settings_scope
from reasonmed.db.inspect_repo import QuestionStory
from reasonmed.extras import require
from reasonmed.jobs.build import BuildIncomplete, BuildJob, Database, open_database, run_build
from reasonmed.jobs.ingest import IngestJob, ingest_files
from reasonmed.mistake import Mistake

Output = Literal["pandas", "datasets"]
OUTPUTS: tuple[str, ...] = get_args(Output)


def _check_output(as_: str) -> None:
    if as_ not in OUTPUTS:
        raise Mistake(
            f"as_={as_!r}: expected 'pandas' (a pandas DataFrame) or 'datasets' (a Hugging Face datasets.Dataset)"
        )
    if as_ == "datasets":
        require("datasets", "hub")  # said before anything runs


def _as(frame: pd.DataFrame, as_: str) -> Any:
    """The samples as asked: the DataFrame, or ``datasets.Dataset.from_pandas`` of it (no index column)."""
    if as_ == "datasets":
        return require("datasets", "hub").Dataset.from_pandas(frame, preserve_index=False)
    return frame


def database_url(database: str | Path | None) -> str | None:
    """A SQLAlchemy URL as given, or a path to a SQLite file; ``None``: REASONMED_DATABASE_URL (or the default)."""
    if database is None:
        return None
    text = str(database)
    return text if "://" in text else f"sqlite:///{Path(text).resolve()}"


def _paths(questions: str | Path | Sequence[str | Path] | None) -> list[Path] | None:
    if questions is None:
        return None
    items = [questions] if isinstance(questions, str | Path) else list(questions)
    return [Path(p) for p in items]


def build(
    config: str | Path | None = None,
    questions: str | Path | Sequence[str | Path] | None = None,
    database: str | Path | None = None,
    *,
    format: str | None = None,  # noqa: A002 - the CLI's --format
    benchmark_test_ids: str | Path | None = None,
    limit: int | None = None,
    sim_accuracy: float = 0.6,
    sim_latency_ms: float = 20.0,
    as_: Output = "pandas",
) -> Any:
    """Ingest ``questions`` (if given), run the build (``reasonmed run``) and return every accepted sample
    in the database: one row per accepted path, with its question, chain of thought and summary; a pandas
    DataFrame, or with ``as_="datasets"`` a ``datasets.Dataset`` of the same rows and columns.

    ``config``: pipeline YAML; ``None`` starts the bundled simulator (simulated output, ``sim/`` models).
    ``format``: the question file's format (guessed from the file when omitted). ``database``: a URL or a
    SQLite path; a new SQLite file is created and migrated. Raises ``reasonmed.mistake.Mistake`` (with the
    fix in its message) for a mistake, ``reasonmed.jobs.build.BuildIncomplete`` (``.result.outcome`` says
    why) when the run left work undone, ``EndpointUnavailable`` or ``PrefectDidNotStart`` when it could not
    start.
    """
    _check_output(as_)
    job = BuildJob(
        config=Path(config) if config else None,
        limit=limit,
        sim_accuracy=sim_accuracy,
        sim_latency_ms=sim_latency_ms,
    )
    with settings_scope():  # the database the run chose (the simulator's own, if none is given) is read back
        db = open_database(database_url(database), job)
        files = _paths(questions)
        if files:
            _ingest(db, files, format, benchmark_test_ids)
        result = run_build(job, db)
        if not result.outcome.ok:
            raise BuildIncomplete(result)
        return _samples(db.engine, db.url, as_)


def _ingest(db: Database, files: list[Path], format: str | None, test_ids: str | Path | None) -> None:  # noqa: A002
    """The question files into ``db``, as ``reasonmed ingest`` does; a file that failed raises."""
    from reasonmed.ingest.sniff import guess_format

    job = IngestJob(
        files=files,
        file_format=format or guess_format(files[0]) or "",
        benchmark_test_ids=Path(test_ids) if test_ids else None,
    )
    result = ingest_files(db.engine, db.url, job)
    wrong = result.wrong_format()
    if wrong is not None:
        raise wrong
    failed = [*result.file_errors, *(f"{s.file}: {s.error}" for s in result.summaries if s.error)]
    if result.failed:
        raise Mistake(f"ingest failed: {'; '.join(failed) or 'no valid record'}", exit_code=1)


def samples(database: str | Path | None = None, *, as_: Output = "pandas") -> Any:
    """Every accepted sample in the database (what ``reasonmed export`` writes, before its contamination check):
    a pandas DataFrame, or with ``as_="datasets"`` a ``datasets.Dataset`` of the same rows and columns.

    Samples of simulated models are included (a notebook on the simulator wants them); their ``model``
    column starts with ``sim/``, and ``reasonmed export`` still leaves them out unless told otherwise."""
    from reasonmed.cli.common import engine_from_settings

    _check_output(as_)
    with settings_scope():
        url, engine = engine_from_settings(database_url(database))
    return _samples(engine, url, as_)


def _samples(engine: Engine, url: str, as_: Output) -> Any:
    from reasonmed.db import export_repo, migrate

    migrate.require_current(engine, url)
    rows = [r for batch in export_repo.stream_accepted_rows(engine, include_simulated=True) for r in batch]
    frame = pd.DataFrame(rows, columns=list(export_repo.ROW_COLUMNS))
    frame["options"] = [json.loads(o) if isinstance(o, str) else o for o in frame["options"]]
    return _as(frame, as_)


def show(question_id: int, database: str | Path | None = None) -> QuestionStory:
    """Print one question's story (``reasonmed show``) and return it (``.as_dict()`` for the raw data)."""
    from reasonmed.cli.show import load_story, print_story

    with settings_scope():
        story = load_story(question_id, database_url(database))
    print_story(story)
    return story
