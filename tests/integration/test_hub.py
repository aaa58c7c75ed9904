"""The Hugging Face Hub: exports as one commit per version (``--to hf://datasets/OWNER/NAME``), ingest of
``datasets`` folders and Hub datasets, and ``as_="datasets"`` from the notebook API.

The Hub is the stand-in of ``test_hub_standin.py`` (its HTTP API over real HTTP on loopback, driven by the
real ``huggingface_hub`` client); nothing here can reach the network: name resolution is refused for any
host but loopback. Expected rows come from the database by independent SQL (``EXPECTED_ROWS_SQL``).
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

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
from reasonmed.export.service import ExportOptions, export_dataset
from reasonmed.export.staging import ExportTargetError
from tests.export_helpers import expected_rows, no_contamination
from tests.integration.test_hub_standin import HubStandIn

TOKEN = "hf_PLANTEDfakeTOKEN4reasonmedTESTS0123456789"
REPO = "reasonmed-test/medical-cot"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
GENERATOR, VERIFIER, SUMMARIZER = (
    "Qwen/Qwen2.5-7B-Instruct",
    "Qwen/Qwen2.5-32B-Instruct",
    "Qwen/Qwen2.5-72B-Instruct",
)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any host but loopback fails to resolve: a test that tried to reach the Hub (or anything) fails."""
    real = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        if str(host) not in LOOPBACK:
            raise OSError(f"the tests are offline: refused to resolve {host}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, no_network: None) -> Iterator[HubStandIn]:
    """The stand-in, with HF_TOKEN planted; huggingface_hub's offline switch off (another test module may
    have set HF_HUB_OFFLINE before it was imported), Xet off (large files take LFS), no token file."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-file"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with HubStandIn(token=TOKEN) as standin:
        yield standin


@pytest.fixture
def load_local(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[..., Any]:
    """``datasets.load_dataset`` on a local folder, offline, with its own cache."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    counter = iter(range(1000))

    def load(folder: Path, *args: Any, **kwargs: Any) -> Any:
        return datasets.load_dataset(
            str(folder), *args, cache_dir=str(tmp_path / "hf-cache" / str(next(counter))), **kwargs
        )

    return load


def fill(url: str, questions: int = 7) -> str:
    """``questions`` accepted questions (PubMedQA and MedQA), the odd ones with two accepted paths, written
    by real model names; plus one rejected question and one benchmark-test item (never exported)."""
    engine = make_engine(url)
    ids = iter(range(1, 1000))
    with Session(engine) as s, s.begin():
        s.add(PipelineRun(id=1, kind="build", status="completed", parameters={}, stats={}, started_at=T0))
        for q in range(1, questions + 3):
            medqa = q % 3 == 0
            s.add(
                Question(
                    id=q,
                    content_hash=f"h{q}",
                    source="medqa" if medqa else "pubmedqa",
                    source_id=f"src-{q}",
                    split="test" if q == questions + 2 else "train",
                    is_benchmark_test=q == questions + 2,
                    question=f"Question {q}: does drug {q} help?",
                    context=None if medqa else f"Context of question {q}.",
                    options=[["A", "yes"], ["B", "no"]]
                    if medqa
                    else [["yes", "yes"], ["no", "no"], ["maybe", "maybe"]],
                    answer="A" if medqa else "yes",
                    meta={},
                    created_at=T0,
                )
            )
            s.flush()
            status = "rejected" if q == questions + 1 else "accepted"
            paths = 2 if q % 2 else 1
            for rank in range(paths):
                pid, vid = next(ids), next(ids)
                s.add(
                    ReasoningPath(
                        id=pid,
                        question_id=q,
                        path_key=f"k{pid}",
                        origin="generated",
                        role="generator",
                        run_id=1,
                        endpoint="e",
                        model=GENERATOR,
                        temperature=0.7,
                        prompt_sha256="x" * 64,
                        raw_text=f"Reasoning {pid} about question {q}. Answer: yes",
                        clean_text=f"Reasoning {pid} about question {q}. Answer: yes",
                        extracted_answer="yes",
                        created_at=T0,
                    )
                )
                s.flush()
                s.add(
                    Verdict(
                        id=vid,
                        path_id=pid,
                        question_id=q,
                        verifier_model=VERIFIER,
                        prompt_sha256="y" * 64,
                        outcome="correct",
                        reason="ok",
                        created_at=T0,
                    )
                )
                s.flush()
                if status == "accepted":
                    s.add_all(
                        [
                            AcceptedPath(
                                question_id=q, path_id=pid, verdict_id=vid, rank=rank, run_id=1, created_at=T0
                            ),
                            Summary(
                                path_id=pid,
                                question_id=q,
                                run_id=1,
                                summarizer_model=SUMMARIZER,
                                prompt_sha256="z" * 64,
                                text=f"Summary of path {pid}: yes.",
                                created_at=T0,
                            ),
                        ]
                    )
            s.add(
                QuestionOutcome(
                    question_id=q,
                    run_id=1,
                    tier="easy",
                    n_paths=paths,
                    n_correct=paths,
                    status=status,
                    n_accepted=paths if status == "accepted" else 0,
                    updated_at=T0,
                )
            )
    engine.dispose()
    return url


@pytest.fixture
def filled(sqlite_url: str) -> str:
    return fill(sqlite_url)


def export_to_hub(url: str, hub: HubStandIn, **kw: Any) -> Any:
    options = ExportOptions(out=f"hf://datasets/{REPO}", **kw)
    return export_dataset(make_engine(url), options, contamination=no_contamination, hub_endpoint=hub.url)


def versions_in_db(url: str) -> list[tuple[int, str]]:
    with make_engine(url).connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(text("SELECT version, location FROM dataset_versions ORDER BY version"))
        ]


def export_commits(hub: HubStandIn, version_dir: str | None = None) -> list[Any]:
    return [
        c
        for c in hub.commits(REPO)
        if c.title.startswith("reasonmed export ")
        and (version_dir is None or f" {version_dir} " in f"{c.title} ")
    ]


# ---------------------------------------------------------------------------------------------- export


def test_each_version_is_one_commit_and_the_repository_loads_with_datasets(
    filled: str, hub: HubStandIn, tmp_path: Path, load_local: Callable[..., Any]
) -> None:
    engine = make_engine(filled)
    expected = expected_rows(engine)
    assert len(expected) == 11  # 7 accepted questions, 4 of them with two paths (independent of the export)
    first = export_to_hub(filled, hub)
    second = export_to_hub(filled, hub)
    assert (first.version, second.version) == (1, 2)
    assert (
        first.location == f"hf://datasets/{REPO}/v0001" and second.location == f"hf://datasets/{REPO}/v0002"
    )
    assert versions_in_db(filled) == [(1, first.location), (2, second.location)]

    commits = export_commits(hub)
    assert [c.title for c in commits] == [
        "reasonmed export v0001 (11 rows per dataset)",
        "reasonmed export v0002 (11 rows per dataset)",
    ]
    assert [c.title for c in hub.commits(REPO)] == ["initial commit", *(c.title for c in commits)]
    for commit, result in zip(commits, (first, second), strict=True):
        version_dir = f"v{result.version:04d}"
        added = {path for kind, path in commit.operations if kind in ("file", "lfsFile")}
        assert added == {f"{version_dir}/{f['path']}" for f in result.manifest["files"]} | {
            f"{version_dir}/manifest.json",
            "README.md",
        }
        assert ("lfsFile", f"{version_dir}/CoTMed/data/train-00000-of-00001.parquet") in commit.operations

    files = hub.files(REPO)
    assert json.loads(files["v0002/manifest.json"]) == second.manifest
    assert second.manifest["location"] == second.location

    copy = hub.checkout(REPO, tmp_path / "copy")
    front = yaml.safe_load((copy / "README.md").read_text().split("---\n")[1])
    assert [c["config_name"] for c in front["configs"]] == list(DATASETS)
    assert front["license_link"] == "v0002/LICENSE.md" and (copy / "v0002" / "LICENSE.md").is_file()
    for name in DATASETS:
        ds = load_local(copy, name, split="train")
        assert ds.num_rows == len(expected)
        assert ds["path_id"] == [r["path_id"] for r in expected]
        want = {
            "ReasonMed": [f"{r['clean_text'].strip()}\n\n{r['summary'].strip()}" for r in expected],
            "CoTMed": [r["clean_text"].strip() for r in expected],
            "ResponseMed": [r["summary"].strip() for r in expected],
        }[name]
        assert ds["output"] == want
    default = load_local(copy, split="train")  # the default config: ReasonMed
    assert default.num_rows == len(expected)

    # The first version's commit is that version: its root card pointed into v0001/.
    old = hub.checkout(REPO, tmp_path / "old", revision=commits[0].oid)
    assert not (old / "v0002").exists()
    assert load_local(old, "CoTMed", split="train")["path_id"] == [r["path_id"] for r in expected]


@pytest.mark.postgres
@pytest.mark.slow
def test_a_database_built_by_the_pipeline_round_trips_through_the_hub(
    built_copy: str, hub: HubStandIn, tmp_path: Path, load_local: Callable[..., Any]
) -> None:
    """The Postgres database a real build filled (60 PubMedQA questions over the simulator): every config of
    the uploaded tree holds exactly the rows the independent SQL expects, in order."""
    engine = make_engine(built_copy)
    expected = expected_rows(engine)
    assert len(expected) > 50
    result = export_dataset(
        engine,
        ExportOptions(out=f"hf://datasets/{REPO}", allow_simulated=True),
        contamination=no_contamination,
        hub_endpoint=hub.url,
    )
    assert [c.title for c in export_commits(hub)] == [
        f"reasonmed export v{result.version:04d} ({len(expected)} rows per dataset)"
    ]
    copy = hub.checkout(REPO, tmp_path / "copy")
    for name in DATASETS:
        ds = load_local(copy, name, split="train")
        assert ds["path_id"] == [r["path_id"] for r in expected]
        assert ds["answer"] == [r["answer"] for r in expected]
    with engine.connect() as conn:
        location = conn.execute(
            text("SELECT location FROM dataset_versions WHERE version = :v"), {"v": result.version}
        ).scalar_one()
    assert location == f"hf://datasets/{REPO}/v{result.version:04d}"


def test_an_interrupted_upload_resumes_and_sends_nothing_twice(
    filled: str, hub: HubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.fail("commit", "before")  # the Parquet files went up to LFS, then the commit failed
    with pytest.raises(ExportTargetError) as failed:
        export_to_hub(filled, hub)
    message = str(failed.value)
    assert "\n" not in message and "500" in message and "run the export again" in message
    assert versions_in_db(filled) == []  # no version without its files
    assert export_commits(hub) == []
    sent = list(hub.lfs_uploads)
    assert len(sent) == 3  # one Parquet shard per dataset
    result = export_to_hub(filled, hub)
    assert result.version == 1 and versions_in_db(filled) == [(1, result.location)]
    assert hub.lfs_uploads == sent  # the rerun found them on the Hub: not uploaded again
    assert len(export_commits(hub, "v0001")) == 1


def test_a_commit_whose_answer_was_lost_is_taken_as_published_not_repeated(
    filled: str, hub: HubStandIn
) -> None:
    hub.fail("commit", "after")  # the commit lands; its answer does not
    with pytest.raises(ExportTargetError):
        export_to_hub(filled, hub)
    assert versions_in_db(filled) == []  # the database rolled back ...
    assert len(export_commits(hub, "v0001")) == 1  # ... but the Hub has the version
    result = export_to_hub(filled, hub)
    assert result.version == 1 and versions_in_db(filled) == [(1, f"hf://datasets/{REPO}/v0001")]
    assert len(export_commits(hub, "v0001")) == 1  # the same files: no second commit
    hub_manifest = json.loads(hub.files(REPO)["v0001/manifest.json"])
    assert hub_manifest["files"] == result.manifest["files"]


def other_database(tmp_path: Path, questions: int = 3) -> str:
    from reasonmed.db import migrate

    url = f"sqlite:///{tmp_path / 'other.db'}"
    migrate.upgrade(url)
    return fill(url, questions=questions)


def test_a_version_folder_holding_another_export_is_refused(
    filled: str, hub: HubStandIn, tmp_path: Path
) -> None:
    export_to_hub(filled, hub)
    other = other_database(tmp_path)  # its own version 1, of other rows
    with pytest.raises(ExportTargetError) as refused:
        export_to_hub(other, hub)
    assert "v0001" in str(refused.value) and "refusing to overwrite" in str(refused.value)
    assert versions_in_db(other) == []
    assert len(export_commits(hub)) == 1


def test_a_later_version_on_the_hub_is_refused(filled: str, hub: HubStandIn, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    export_to_hub(filled, hub)
    export_to_hub(filled, hub)
    HfApi(endpoint=hub.url).delete_folder("v0001", repo_id=REPO, repo_type="dataset")  # only v0002 is left
    other = other_database(tmp_path)  # its version 1 is older than the Hub's latest
    with pytest.raises(ExportTargetError) as refused:
        export_to_hub(other, hub)
    assert "v0002" in str(refused.value) and "another repository" in str(refused.value)
    assert len(export_commits(hub)) == 2


def test_a_commit_landing_meanwhile_stops_the_upload_and_the_rerun_publishes(
    filled: str, hub: HubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks read the repository at one commit and the upload names it as its parent: another commit in
    between (someone else's) makes the Hub refuse (412), nothing is published, and a rerun goes through."""
    from huggingface_hub import CommitOperationAdd, HfApi

    from reasonmed.export.hub import HubTarget

    real = HubTarget._published_before

    def and_someone_commits(self: HubTarget, *args: Any) -> bool:
        found = real(self, *args)
        HfApi(endpoint=hub.url).create_commit(
            REPO, [CommitOperationAdd("notes.txt", b"x")], commit_message="someone else", repo_type="dataset"
        )
        return found

    monkeypatch.setattr(HubTarget, "_published_before", and_someone_commits)
    with pytest.raises(ExportTargetError) as refused:
        export_to_hub(filled, hub)
    assert "another commit landed first" in str(refused.value)
    assert versions_in_db(filled) == [] and export_commits(hub) == []
    monkeypatch.setattr(HubTarget, "_published_before", real)
    assert export_to_hub(filled, hub).version == 1
    assert [c.title for c in hub.commits(REPO)][-2:] == [
        "someone else",
        "reasonmed export v0001 (11 rows per dataset)",
    ]


def test_a_failed_database_commit_takes_the_hub_commit_back(
    filled: str, hub: HubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reasonmed.export import record

    export_to_hub(filled, hub)
    after_first = hub.files(REPO)
    real_exit = record.VersionRecord.__exit__

    def database_gone(self: Any, *exc: Any) -> Any:
        real_exit(self, RuntimeError, RuntimeError("connection lost"), None)  # rolls the version back
        raise RuntimeError("the database went away at commit")

    monkeypatch.setattr(record.VersionRecord, "__exit__", database_gone)
    with pytest.raises(RuntimeError, match="went away"):
        export_to_hub(filled, hub)
    assert [c.title for c in hub.commits(REPO)][-2:] == [
        "reasonmed export v0002 (11 rows per dataset)",
        "reasonmed export v0002 withdrawn: the database did not record it",
    ]
    assert hub.files(REPO) == after_first  # v0002/ gone, the root card v0001's again
    assert [v for v, _ in versions_in_db(filled)] == [1]


def test_the_token_is_sent_to_the_hub_and_written_nowhere(
    filled: str,
    hub: HubStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from reasonmed.cli import app

    monkeypatch.setenv("REASONMED_EXPORT_DIR", str(tmp_path / "unused"))
    caplog.set_level("DEBUG")
    out = CliRunner().invoke(
        app,
        ["export", "--to", f"hf://datasets/{REPO}", "--hub-endpoint", hub.url, "--database-url", filled],
    )
    assert out.exit_code == 0, out.output
    assert f"written to hf://datasets/{REPO}/v0001" in out.output
    assert hub.authorizations == {f"Bearer {TOKEN}"}  # the token did go to the Hub, and only it
    uploaded = b"".join(hub.files(REPO).values()) + b"".join(hub.lfs.values())
    db_path = filled.removeprefix("sqlite:///")
    with sqlite3.connect(db_path) as conn:
        dump = "\n".join(conn.iterdump())
    assert TOKEN.encode() not in uploaded
    assert TOKEN not in dump
    assert TOKEN not in out.output and TOKEN not in caplog.text
    assert TOKEN.encode() not in Path(db_path).read_bytes()
    for path in tmp_path.rglob("*"):  # whatever was written under the test's folder
        if path.is_file() and path.suffix != ".db":
            assert TOKEN.encode() not in path.read_bytes(), path


def test_without_a_token_the_export_says_to_set_hf_token(
    filled: str, hub: HubStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reasonmed.cli import app

    monkeypatch.delenv("HF_TOKEN")
    out = CliRunner().invoke(
        app, ["export", "--to", f"hf://datasets/{REPO}", "--hub-endpoint", hub.url, "--database-url", filled]
    )
    assert out.exit_code == 1
    lines = [line for line in out.output.splitlines() if line.strip()]
    assert len(lines) == 1, out.output
    assert "401" in lines[0] and "HF_TOKEN" in lines[0] and "Traceback" not in out.output
    assert versions_in_db(filled) == []
    assert REPO not in hub.repos


def test_a_read_only_token_is_told_it_may_not_write(filled: str, hub: HubStandIn) -> None:
    hub.read_only = True
    with pytest.raises(ExportTargetError) as refused:
        export_to_hub(filled, hub)
    message = str(refused.value)
    assert "403" in message and "may not write" in message and "\n" not in message and TOKEN not in message
    assert versions_in_db(filled) == []


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("hf://datasets/owner", "expected hf://datasets/OWNER/NAME"),
        ("hf://datasets/owner/name/sub", "no folder inside it"),
        ("hf://owner/name", "only dataset repositories"),
        ("hf://datasets/own--er/name", "not a Hub name"),
    ],
)
def test_a_bad_hub_address_is_one_line_before_the_database_is_read(target: str, fragment: str) -> None:
    from reasonmed.cli import app

    out = CliRunner().invoke(app, ["export", "--to", target, "--database-url", "sqlite:////nonexistent/x.db"])
    assert out.exit_code == 2 and fragment in out.output and "Traceback" not in out.output
    assert len([line for line in out.output.splitlines() if line.strip()]) == 1, out.output


def test_hub_endpoint_with_credentials_or_without_a_hub_target_is_refused(tmp_path: Path) -> None:
    from reasonmed.cli import app

    db = "sqlite:////nonexistent/x.db"
    creds = CliRunner().invoke(
        app,
        [
            "export",
            "--to",
            f"hf://datasets/{REPO}",
            "--hub-endpoint",
            "https://u:p@hub.example",
            "--database-url",
            db,
        ],
    )
    local = CliRunner().invoke(
        app,
        [
            "export",
            "--to",
            str(tmp_path / "out"),
            "--hub-endpoint",
            "https://hub.example",
            "--database-url",
            db,
        ],
    )
    assert creds.exit_code == 2 and "no credentials" in creds.output
    assert local.exit_code == 2 and "applies to hf://datasets/OWNER/NAME targets only" in local.output


@pytest.fixture
def hub_online(hub: HubStandIn, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> HubStandIn:
    """``datasets`` and ``huggingface_hub`` aimed at the stand-in, as HF_ENDPOINT set before they were imported
    aims them (both read it then), with their caches in the test's folder."""
    import datasets
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", hub.url)
    monkeypatch.setattr(
        datasets.config, "HUB_DATASETS_URL", hub.url + "/datasets/{repo_id}/resolve/{revision}/{path}"
    )
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    return hub


def test_load_dataset_reads_the_export_straight_from_the_hub(
    filled: str, hub_online: HubStandIn, tmp_path: Path
) -> None:
    import datasets

    expected = expected_rows(make_engine(filled))
    export_to_hub(filled, hub_online)
    for name in DATASETS:
        ds = datasets.load_dataset(REPO, name, split="train")
        assert ds["path_id"] == [r["path_id"] for r in expected]
    assert any(path.startswith(f"/datasets/{REPO}/resolve/") for _, path, _ in hub_online.requests)


# ---------------------------------------------------------------------------------------------- ingest


def _questions() -> dict[str, list[Any]]:
    """Five MCQ rows in a custom shape; row 3's answer names no option (an error row)."""
    return {
        "qid": ["q1", "q2", "q3", "q4", "q5"],
        "stem": [f"Which drug {i}?" for i in range(1, 6)],
        "choices": [["Aspirin", "Heparin", "Warfarin"]] * 5,
        "answer": ["Aspirin", "B", "Ibuprofen", "C", "Heparin"],
        "subject": ["pharmacology"] * 5,
    }


MAP = ["--map", "id=qid", "--map", "question=stem", "--map", "options=choices"]
STORED = "SELECT source_id, question, options, answer, split, is_benchmark_test, content_hash FROM questions ORDER BY source_id"


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with make_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def _new_db(tmp_path: Path, name: str) -> str:
    from reasonmed.db import migrate

    url = f"sqlite:///{tmp_path / name}"
    migrate.upgrade(url)
    return url


def _ingest(*args: str) -> Any:
    from reasonmed.cli import app

    return CliRunner().invoke(app, ["ingest", *args])


def test_a_save_to_disk_folder_ingests_as_its_json_lines_twin_does(tmp_path: Path, no_network: None) -> None:
    """The same rows as a datasets folder and as JSON Lines, with the same --map: the same questions (content
    hashes included), the same rejected row for the same reason, the other columns kept as metadata."""
    import datasets

    rows = _questions()
    folder = tmp_path / "mcq"
    datasets.Dataset.from_dict(rows).save_to_disk(str(folder))
    twin = tmp_path / "mcq.jsonl"
    twin.write_text("".join(json.dumps({k: rows[k][i] for k in rows}) + "\n" for i in range(5)))
    a, b = _new_db(tmp_path, "a.db"), _new_db(tmp_path, "b.db")

    first = _ingest(str(folder), "--format", "datasets", *MAP, "--database-url", a)
    again = _ingest(str(folder), "--format", "datasets", *MAP, "--database-url", a)
    jsonl = _ingest(str(twin), "--format", "jsonl", *MAP, "--database-url", b)
    assert first.exit_code == again.exit_code == jsonl.exit_code == 0, first.output + jsonl.output
    assert "already ingested" in again.output
    stored = _rows(a, STORED)
    assert [r[0] for r in stored] == ["q1", "q2", "q4", "q5"]
    assert [r[3] for r in stored] == ["A", "B", "C", "B"]  # option text, label and label, option text
    assert stored == _rows(b, STORED)
    errors = _rows(a, "SELECT record_ref, reason FROM ingest_errors")
    assert errors == [("row 3", "answer 'Ibuprofen' is not among the options (A, B, C)")]
    assert [reason for _, reason in _rows(b, "SELECT record_ref, reason FROM ingest_errors")] == [
        errors[0][1]
    ]
    (meta,) = {r[0] for r in _rows(a, "SELECT metadata FROM questions")}
    assert json.loads(meta) == {"format": "datasets", "subject": "pharmacology"}
    ((path, source, status, n_read),) = _rows(a, "SELECT path, source, status, n_read FROM ingest_files")
    assert (path, source, status, n_read) == (str(folder), "datasets", "done", 5)


def test_a_datasetdict_folder_reads_the_split_asked_for(tmp_path: Path, no_network: None) -> None:
    import datasets

    rows = _questions()
    splits = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({k: v[:3] for k, v in rows.items()}),
            "validation": datasets.Dataset.from_dict({k: v[3:] for k, v in rows.items()}),
        }
    )
    splits.save_to_disk(str(tmp_path / "dd"))
    db = _new_db(tmp_path, "dd.db")
    ok = _ingest(
        str(tmp_path / "dd"), "--format", "datasets", "--split", "validation", *MAP, "--database-url", db
    )
    missing = _ingest(
        str(tmp_path / "dd"), "--format", "datasets", "--split", "test", *MAP, "--database-url", db
    )
    assert ok.exit_code == 0, ok.output
    assert [(r[0], r[4]) for r in _rows(db, STORED)] == [("q4", "validation"), ("q5", "validation")]
    assert missing.exit_code == 1
    assert "no split 'test'" in missing.output and "train, validation" in missing.output
    assert "Traceback" not in missing.output


def test_class_label_answers_and_option_columns(tmp_path: Path, no_network: None) -> None:
    import datasets

    features = datasets.Features(
        {
            "question": datasets.Value("string"),
            "opa": datasets.Value("string"),
            "opb": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["A", "B"]),
        }
    )
    data = {
        "question": ["Fever drug?", "Clot drug?"],
        "opa": ["Aspirin", "Aspirin"],
        "opb": ["Heparin", "Heparin"],
        "label": [0, 1],
    }
    datasets.Dataset.from_dict(data, features=features).save_to_disk(str(tmp_path / "cl"))
    db = _new_db(tmp_path, "cl.db")
    res = _ingest(
        str(tmp_path / "cl"),
        "--format",
        "datasets",
        "--map",
        "option:A=opa",
        "--map",
        "option:B=opb",
        "--map",
        "answer=label",
        "--database-url",
        db,
    )
    assert res.exit_code == 0, res.output
    assert [
        r[3]
        for r in _rows(db, "SELECT source_id, question, options, answer FROM questions ORDER BY question")
    ] == ["B", "A"]


def test_a_row_over_the_record_limit_is_an_error_and_the_rows_around_it_are_stored(tmp_path: Path) -> None:
    import datasets

    from reasonmed.ingest.readers import Limits
    from reasonmed.ingest.service import ingest_file

    rows = _questions()
    rows["stem"][1] = "Which drug? " + "x" * 50_000  # row 2: far over the record limit below
    datasets.Dataset.from_dict(rows).save_to_disk(str(tmp_path / "big"))
    db = _new_db(tmp_path, "big.db")
    mapping = {"id": "qid", "question": "stem", "options": "choices"}
    summary = ingest_file(
        make_engine(db), tmp_path / "big", "datasets", mapping=mapping, limits=Limits(max_record_bytes=10_000)
    )
    assert (summary.read, summary.inserted, summary.rejected) == (5, 3, 2)  # row 2 too big, row 3 no answer
    refs = dict(_rows(db, "SELECT record_ref, reason FROM ingest_errors"))
    assert set(refs) == {"row 2", "row 3"} and "record limit" in refs["row 2"]


def test_a_hub_dataset_is_read_with_its_split(tmp_path: Path, hub_online: HubStandIn) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from huggingface_hub import CommitOperationAdd, HfApi

    rows = _questions()
    api = HfApi(endpoint=hub_online.url)
    api.create_repo("medical/mcq", repo_type="dataset")
    files = []
    for split, part in (("train", slice(0, 3)), ("test", slice(3, 5))):
        buf = io.BytesIO()
        pq.write_table(pa.table({k: v[part] for k, v in rows.items()}), buf)
        files.append(CommitOperationAdd(f"data/{split}-00000-of-00001.parquet", buf.getvalue()))
    api.create_commit("medical/mcq", files, commit_message="data", repo_type="dataset")
    db = _new_db(tmp_path, "hub.db")

    res = _ingest(
        "hf://datasets/medical/mcq", "--format", "datasets", "--split", "test", *MAP, "--database-url", db
    )
    again = _ingest(
        "hf://datasets/medical/mcq", "--format", "datasets", "--split", "test", *MAP, "--database-url", db
    )
    nothing = _ingest("hf://datasets/medical/none", "--format", "datasets", "--database-url", db)
    assert res.exit_code == 0 and again.exit_code == 0, res.output + again.output
    assert [(r[0], r[4], r[5]) for r in _rows(db, STORED)] == [("q4", "test", True), ("q5", "test", True)]
    assert _rows(db, "SELECT path, source FROM ingest_files") == [("hf://datasets/medical/mcq", "datasets")]
    assert "already ingested" in again.output
    assert (
        nothing.exit_code == 1
        and "hf://datasets/medical/none" in nothing.output
        and "Traceback" not in nothing.output
    )


def test_a_datasets_folder_needs_format_datasets(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_dict(_questions()).save_to_disk(str(tmp_path / "mcq"))
    db = _new_db(tmp_path, "f.db")
    wrong = _ingest(str(tmp_path / "mcq"), "--format", "jsonl", "--database-url", db)
    not_one = _ingest(str(tmp_path), "--format", "datasets", "--database-url", db)
    hub_wrong = _ingest("hf://datasets/medical/mcq", "--format", "parquet", "--database-url", db)
    assert (
        wrong.exit_code == 2
        and "is a datasets folder (save_to_disk): ingest it with --format datasets" in wrong.output
    )
    assert not_one.exit_code == 2 and "not a datasets folder" in not_one.output
    assert hub_wrong.exit_code == 2 and "--format datasets" in hub_wrong.output


# ---------------------------------------------------------------------------------------------- the notebook API


def test_samples_as_datasets_are_the_dataframes_rows(filled: str) -> None:
    import datasets

    import reasonmed

    frame = reasonmed.samples(filled.removeprefix("sqlite:///"))
    ds = reasonmed.samples(filled.removeprefix("sqlite:///"), as_="datasets")
    assert isinstance(ds, datasets.Dataset)
    assert ds.num_rows == len(frame) == len(expected_rows(make_engine(filled))) == 11
    assert ds.column_names == list(frame.columns)
    assert ds["path_id"] == frame["path_id"].tolist()
    assert ds["options"][0] == [list(pair) for pair in frame["options"].iloc[0]]


def test_an_unknown_output_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    import reasonmed
    from reasonmed.mistake import Mistake

    db = tmp_path / "never.db"
    for call in (
        lambda: reasonmed.samples(db, as_="polars"),
        lambda: reasonmed.build(questions="data/none.json", database=db, as_="polars"),
    ):
        with pytest.raises(Mistake) as caught:
            call()
        assert (
            str(caught.value)
            == "as_='polars': expected 'pandas' (a pandas DataFrame) or 'datasets' (a Hugging Face datasets.Dataset)"
        )
    assert not db.exists()


def test_without_the_hub_extra_everything_else_imports_and_hub_use_names_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "for name in ('datasets', 'huggingface_hub'):\n"
        "    sys.modules[name] = None\n"
        "import reasonmed.cli, reasonmed.api, reasonmed.export.hub, reasonmed.ingest.loaders, reasonmed.flows.export\n"
        "from typer.testing import CliRunner\n"
        "out = CliRunner().invoke(reasonmed.cli.app, ['export', '--to', 'hf://datasets/a/b', '--database-url', "
        "'sqlite:////nonexistent/x.db'])\n"
        "print(out.exit_code, out.output.strip())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == (
        "2 error: huggingface_hub is not installed; it comes with the [hub] extra: pip install 'reasonmed[hub]'"
    )


def test_a_datasets_source_is_guessed_as_format_datasets(tmp_path: Path) -> None:
    import datasets

    from reasonmed.ingest.sniff import guess_format

    datasets.Dataset.from_dict(_questions()).save_to_disk(str(tmp_path / "mcq"))
    assert guess_format(tmp_path / "mcq") == "datasets"
    assert guess_format(Path("hf://datasets/owner/name")) == "datasets"
    assert guess_format(tmp_path / "mcq", besides="datasets") is None


def test_the_hub_docs_commands_parse() -> None:
    """docs/hub.md and README write the networked commands as `python -m reasonmed ...` (the docs' runner
    would run a `reasonmed ...` line offline): each is still a valid command line for the current CLI."""
    import re
    import shlex

    import typer

    from reasonmed.cli import app

    repo = Path(__file__).resolve().parents[2]
    lines = [
        line.strip().removeprefix("python -m reasonmed ")
        for doc in (repo / "docs" / "hub.md", repo / "README.md")
        for body in re.findall(r"```bash\n(.*?)```", doc.read_text(), re.S)
        for line in body.splitlines()
        if line.strip().startswith("python -m reasonmed ")
    ]
    assert len(lines) >= 7
    group = typer.main.get_command(app)
    for line in lines:
        name, *args = shlex.split(line, comments=True)
        command = group.get_command(group.make_context("reasonmed", [name]), name)  # type: ignore[attr-defined]
        assert command is not None, line
        command.make_context(name, [a.replace("OWNER/NAME", "owner/name") for a in args])
