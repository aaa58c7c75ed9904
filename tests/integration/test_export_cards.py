"""The dataset cards say where the rows are and under which terms (issue 24, first-hour review).

A JSON-Lines-only export wrote cards whose ``configs`` pointed at ``data/train-*`` Parquet files, so
``datasets.load_dataset()`` on the dataset folder failed; every card said ``license: other`` with nothing
to name or link the terms.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session

from reasonmed.db.engine import make_engine
from reasonmed.db.models import (
    AcceptedPath,
    PipelineRun,
    Question,
    QuestionOutcome,
    ReasoningPath,
    Summary,
    Verdict,
)
from reasonmed.export.assemble import DATASETS
from reasonmed.export.service import ExportOptions, ExportResult, export_dataset
from tests.export_helpers import no_contamination

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
GENERATOR, SUMMARIZER = "Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-72B-Instruct"


@pytest.fixture
def one_accepted(sqlite_url: str) -> str:
    """One PubMedQA training question with one accepted, summarised path written by real model names."""
    engine = make_engine(sqlite_url)
    with Session(engine) as s, s.begin():
        s.add(PipelineRun(id=1, kind="build", status="completed", parameters={}, stats={}, started_at=T0))
        s.add(
            Question(
                id=1,
                content_hash="h1",
                source="pubmedqa",
                source_id="12345",
                split="train",
                is_benchmark_test=False,
                question="Does aspirin reduce fever?",
                context=None,
                options=[["yes", "yes"], ["no", "no"], ["maybe", "maybe"]],
                answer="yes",
                meta={},
                created_at=T0,
            )
        )
        s.flush()
        s.add(
            ReasoningPath(
                id=1,
                question_id=1,
                path_key="k1",
                origin="generated",
                role="generator",
                run_id=1,
                endpoint="e",
                model=GENERATOR,
                temperature=0.7,
                prompt_sha256="x" * 64,
                raw_text="Aspirin is an antipyretic. Answer: yes",
                clean_text="Aspirin is an antipyretic. Answer: yes",
                extracted_answer="yes",
                created_at=T0,
            )
        )
        s.flush()
        s.add(
            Verdict(
                id=1,
                path_id=1,
                question_id=1,
                verifier_model="V",
                prompt_sha256="y" * 64,
                outcome="correct",
                reason="ok",
                created_at=T0,
            )
        )
        s.flush()
        s.add_all(
            [
                AcceptedPath(question_id=1, path_id=1, verdict_id=1, rank=0, run_id=1, created_at=T0),
                Summary(
                    path_id=1,
                    question_id=1,
                    run_id=1,
                    summarizer_model=SUMMARIZER,
                    prompt_sha256="z" * 64,
                    text="Aspirin lowers fever: yes.",
                    created_at=T0,
                ),
                QuestionOutcome(
                    question_id=1,
                    run_id=1,
                    tier="easy",
                    n_paths=1,
                    n_correct=1,
                    status="accepted",
                    n_accepted=1,
                    updated_at=T0,
                ),
            ]
        )
    engine.dispose()
    return sqlite_url


def _export(url: str, out: Path, formats: list[str]) -> ExportResult:
    options = ExportOptions.model_validate({"out": str(out), "formats": formats})
    return export_dataset(make_engine(url), options, contamination=no_contamination)


def _front(card: Path) -> dict[str, Any]:
    return dict(yaml.safe_load(card.read_text().split("---\n")[1]))


def _offline_datasets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(key, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    return datasets


def test_a_json_lines_only_export_loads_with_datasets(
    one_accepted: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = _offline_datasets(monkeypatch, tmp_path)
    result = _export(one_accepted, tmp_path / "out", ["jsonl"])
    root = Path(result.location)
    assert not list(root.rglob("*.parquet"))
    for name in DATASETS:
        [config] = _front(root / name / "README.md")["configs"]
        assert config["data_files"] == [{"split": "train", "path": f"{name}.jsonl"}]
        folder = datasets.load_dataset(str(root / name), split="train", cache_dir=str(tmp_path / "c" / name))
        by_config = datasets.load_dataset(
            str(root), name, split="train", cache_dir=str(tmp_path / "r" / name)
        )
        assert folder.num_rows == by_config.num_rows == 1
        assert folder[0]["source_id"] == "12345"
        assert (
            f'load_dataset("json", data_files="{name}/{name}.jsonl"'
            in (root / name / "README.md").read_text()
        )


@pytest.mark.parametrize("formats", [["parquet"], ["jsonl"], ["parquet", "jsonl"]], ids="+".join)
def test_every_card_names_and_links_its_terms(one_accepted: str, tmp_path: Path, formats: list[str]) -> None:
    result = _export(one_accepted, tmp_path / "out", formats)
    root = Path(result.location)
    for folder in (root, *(root / name for name in DATASETS)):
        front = _front(folder / "README.md")
        assert (front["license"], front["license_name"], front["license_link"]) == (
            "other",
            "reasonmed-export",
            "LICENSE.md",
        )
        terms = (folder / front["license_link"]).read_text()
        assert "| PubMedQA (PQA-L) | 1 | MIT (github.com/pubmedqa/pubmedqa) |" in terms
        assert f"- {GENERATOR}" in terms and f"- {SUMMARIZER}" in terms
        assert "Nothing here is medical advice" in terms
    listed = {f["path"] for f in result.manifest["files"]}
    assert {"LICENSE.md", *(f"{name}/LICENSE.md" for name in DATASETS)} <= listed
