"""Dataset export over a database filled by a real pipeline run (``built_pg_db``), on writable copies."""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path

import boto3
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from reasonmed.db import export_repo
from reasonmed.db.engine import make_engine
from reasonmed.export.assemble import DATASETS, BenchmarkLeakError, format_instruction
from reasonmed.export.service import ExportOptions, export_dataset
from reasonmed.export.targets import S3Target
from tests.export_helpers import clone_database, drop_database, expected_rows, moto_server, no_contamination

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def engine(built_copy: str):  # type: ignore[no-untyped-def]
    eng = make_engine(built_copy)
    yield eng
    eng.dispose()


def _export(engine, out: Path | str, **kw):  # type: ignore[no-untyped-def]
    """The database was built on the simulator: its rows are exported only when allowed (as here)."""
    contamination = kw.pop("contamination", no_contamination)
    kw.setdefault("allow_simulated", True)
    return export_dataset(engine, ExportOptions(out=str(out), **kw), contamination=contamination)


def _parquet(location: str, name: str) -> pd.DataFrame:
    return pd.read_parquet(Path(location) / name / "data")


def _jsonl(location: str, name: str) -> list[dict]:
    return [json.loads(line) for line in (Path(location) / name / f"{name}.jsonl").read_text().splitlines()]


def test_three_datasets_match_the_database(engine, tmp_path: Path) -> None:
    expected = expected_rows(engine)
    assert len(expected) > 50  # the fixture's build accepted most of its 60 questions
    result = _export(engine, tmp_path)
    assert result.counts == {name: len(expected) for name in DATASETS}
    by_source: dict[str, int] = {}
    for r in expected:
        by_source[r["source"]] = by_source.get(r["source"], 0) + 1
    assert result.manifest["by_source"] == by_source
    assert result.manifest["questions"] == len({r["question_id"] for r in expected})

    with engine.connect() as conn:
        q = dict(conn.execute(text("SELECT id, question FROM questions")).all())
    for name in DATASETS:
        df = _parquet(result.location, name)  # pandas
        table = pq.read_table(Path(result.location) / name / "data")  # pyarrow
        assert table.num_rows == len(df) == len(expected)
        assert list(df.columns[:3]) == ["instruction", "input", "output"]
        assert {
            "answer",
            "question_id",
            "source",
            "source_id",
            "path_id",
            "verdict_id",
            "summary_id",
            "run_id",
            "model",
            "temperature",
            "origin",
        } <= set(df.columns)
        # Stable order (question id, then accepted rank) and exactly the expected paths.
        assert df["path_id"].tolist() == [r["path_id"] for r in expected]
        assert df["answer"].tolist() == [r["answer"] for r in expected]
        assert (df["input"] == "").all()
        for row, exp in zip(df.itertuples(), expected, strict=True):
            assert row.instruction.startswith(q[exp["question_id"]].strip())
            assert row.instruction.endswith("Options: yes / no / maybe")  # PubMedQA's choices
            want = {
                "ReasonMed": f"{exp['clean_text'].strip()}\n\n{exp['summary'].strip()}",
                "CoTMed": exp["clean_text"].strip(),
                "ResponseMed": exp["summary"].strip(),
            }[name]
            assert row.output == want
        rows = _jsonl(result.location, name)
        assert [r["path_id"] for r in rows] == df["path_id"].tolist()
        assert rows[0]["output"] == df["output"].iloc[0]


def test_manifest_hashes_versions_and_samples(engine, tmp_path: Path) -> None:
    result = _export(engine, tmp_path)
    root = Path(result.location)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest == result.manifest
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {"manifest.json"}
    assert {f["path"] for f in manifest["files"]} == on_disk
    for f in manifest["files"]:
        data = (root / f["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"] and len(data) == f["bytes"]
    assert manifest["version"] == result.version and root.name == f"v{result.version:04d}"
    assert manifest["run_ids"] and manifest["config_hashes"]
    with engine.connect() as conn:
        run_hashes = dict(
            conn.execute(text("SELECT id, config_hash FROM pipeline_runs WHERE kind = 'build'")).all()
        )
        version_row = (
            conn.execute(
                text(
                    "SELECT version, n_samples, location, manifest, run_id FROM dataset_versions WHERE version = :v"
                ),
                {"v": result.version},
            )
            .mappings()
            .one()
        )
        export_run = conn.execute(
            text("SELECT kind, status FROM pipeline_runs WHERE id = :i"), {"i": version_row["run_id"]}
        ).one()
    assert set(manifest["run_ids"]) <= set(run_hashes)
    assert manifest["config_hashes"] == sorted({run_hashes[r] for r in manifest["run_ids"]})
    assert tuple(export_run) == ("export", "completed")
    assert version_row["n_samples"] == result.counts["ReasonMed"]
    assert version_row["location"] == result.location
    assert version_row["manifest"]["files"] == manifest["files"]
    df = _parquet(result.location, "CoTMed")
    assert export_repo.sample_path_ids(engine, result.version) == sorted(df["path_id"].tolist())
    card = (root / "ReasonMed" / "README.md").read_text()
    assert card.startswith("---\n") and f"Rows: **{len(df)}**" in card and "path: data/train-*" in card


def test_reexport_of_unchanged_database_is_byte_identical(engine, tmp_path: Path) -> None:
    first = _export(engine, tmp_path)
    second = _export(engine, tmp_path)
    assert second.version == first.version + 1
    data_files = [
        f["path"] for f in first.manifest["files"] if not f["path"].endswith(("README.md", "LICENSE.md"))
    ]
    assert len(data_files) == 2 * len(DATASETS)
    for rel in data_files:
        assert (Path(first.location) / rel).read_bytes() == (Path(second.location) / rel).read_bytes(), rel
    assert {f["path"]: f["sha256"] for f in first.manifest["files"] if f["path"] in data_files} == {
        f["path"]: f["sha256"] for f in second.manifest["files"] if f["path"] in data_files
    }


def test_chat_layout_has_system_user_assistant_messages(engine, tmp_path: Path) -> None:
    result = _export(engine, tmp_path, layout="chat")
    reasonmed = _parquet(result.location, "ReasonMed")
    cot = pq.read_table(Path(result.location) / "CoTMed" / "data").to_pylist()
    expected = expected_rows(engine)
    assert "messages" in reasonmed.columns and "instruction" not in reasonmed.columns
    for messages, exp, cot_row in zip(reasonmed["messages"], expected, cot, strict=True):
        assert [m["role"] for m in messages] == ["system", "user", "assistant"]
        assert all(isinstance(m["content"], str) and m["content"] for m in messages)
        assert messages[2]["content"] == f"{exp['clean_text'].strip()}\n\n{exp['summary'].strip()}"
        assert cot_row["messages"][2]["content"] == exp["clean_text"].strip()
        assert cot_row["messages"][1]["content"] == messages[1]["content"]
    lines = _jsonl(result.location, "ResponseMed")
    assert [m["role"] for m in lines[0]["messages"]] == ["system", "user", "assistant"]
    assert lines[0]["messages"][2]["content"] == expected[0]["summary"].strip()
    assert "sharegpt" in (Path(result.location) / "ReasonMed" / "README.md").read_text()


def test_next_version_contains_the_previous_plus_new_rows(engine, tmp_path: Path) -> None:
    with engine.connect() as conn:
        held = list(
            conn.execute(
                text(
                    "SELECT question_id FROM question_outcomes WHERE status = 'accepted' ORDER BY question_id LIMIT 3"
                )
            ).scalars()
        )
    with engine.begin() as conn:  # those questions have not finished yet
        conn.execute(
            text("UPDATE question_outcomes SET status = 'resolved' WHERE question_id = ANY(:ids)"),
            {"ids": held},
        )
    try:
        before = _export(engine, tmp_path)
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE question_outcomes SET status = 'accepted' WHERE question_id = ANY(:ids)"),
                {"ids": held},
            )
    after = _export(engine, tmp_path)
    old = _parquet(before.location, "ReasonMed")
    new = _parquet(after.location, "ReasonMed")
    assert not set(held) & set(old["question_id"])
    assert set(old["path_id"]) < set(new["path_id"])
    added = new[~new["path_id"].isin(old["path_id"])]
    assert set(added["question_id"]) == set(held)
    kept = new[new["path_id"].isin(old["path_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, old)  # the old rows are unchanged, in the same order
    assert after.version == before.version + 1


def test_benchmark_test_questions_never_exported(
    engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench_ids = export_repo.benchmark_test_ids(engine)
    assert len(bench_ids) == 500  # PubMedQA's test split, ingested and flagged
    result = _export(engine, tmp_path / "clean")
    exported = set(_parquet(result.location, "ReasonMed")["question_id"])
    assert exported and not exported & bench_ids

    victim = min(exported)
    with engine.begin() as conn:
        conn.execute(text("UPDATE questions SET is_benchmark_test = true WHERE id = :i"), {"i": victim})
    try:
        filtered = _export(engine, tmp_path / "filtered")  # the SQL filter drops it
        assert victim not in set(_parquet(filtered.location, "ReasonMed")["question_id"])
        # A regression that loses the SQL filter: the write-time guard still stops the export.
        monkeypatch.setattr(
            export_repo, "eligible_filter", lambda: text("question_outcomes.status = 'accepted'")
        )
        with engine.connect() as conn:
            versions_before = conn.execute(text("SELECT count(*) FROM dataset_versions")).scalar_one()
        out = tmp_path / "forced"
        with pytest.raises(BenchmarkLeakError, match=f"question {victim} "):
            _export(engine, out)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM dataset_versions")).scalar_one() == versions_before
            failed = conn.execute(
                text("SELECT status, error FROM pipeline_runs WHERE kind = 'export' ORDER BY id DESC LIMIT 1")
            ).one()
        assert failed.status == "failed" and "BenchmarkLeakError" in failed.error
        assert not out.exists() or not any(out.iterdir())  # nothing published, no staging left behind
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE questions SET is_benchmark_test = false WHERE id = :i"), {"i": victim})


def test_contaminated_questions_are_excluded_and_reported(engine, tmp_path: Path) -> None:
    expected = expected_rows(engine)
    target = expected[10]["question_id"]
    n_target = sum(1 for r in expected if r["question_id"] == target)
    flagged = {target: "near-duplicate of pubmedqa test item 12345", 999_999_999: "exact match, not accepted"}
    result = _export(engine, tmp_path, contamination=lambda _e: flagged)
    report = result.manifest["contamination"]
    assert report["checked"] and report["flagged"] == 2
    assert report["count"] == 1 and report["question_ids"] == [target]
    assert report["rows_excluded"] == n_target
    assert report["matches"] == {str(target): flagged[target]}
    assert result.counts["ReasonMed"] == len(expected) - n_target
    for name in DATASETS:
        assert target not in set(_parquet(result.location, name)["question_id"])


def test_questions_the_scan_never_saw_wait_for_the_next_version(engine, tmp_path: Path) -> None:
    """A question accepted by another worker after the contamination scan began is not in the scan's
    checked set: the export holds it back (and says so) rather than publish it unchecked."""
    from reasonmed.contamination import ContaminationScan

    expected = expected_rows(engine)
    all_q = sorted({r["question_id"] for r in expected})
    late = all_q[3]
    n_late = sum(1 for r in expected if r["question_id"] == late)
    first = _export(
        engine, tmp_path / "a", contamination=lambda _e: ContaminationScan({}, frozenset(all_q) - {late})
    )
    report = first.manifest["contamination"]
    assert (report["rows_deferred"], report["deferred_question_ids"]) == (n_late, [late])
    assert first.counts["ReasonMed"] == len(expected) - n_late
    assert late not in set(_parquet(first.location, "ReasonMed")["question_id"])
    # The next export's scan has seen it: it is included.
    second = _export(engine, tmp_path / "b", contamination=lambda _e: ContaminationScan({}, frozenset(all_q)))
    assert second.manifest["contamination"]["rows_deferred"] == 0 and second.counts["ReasonMed"] == len(
        expected
    )


@pytest.mark.parametrize("layout", ["instruction", "chat"])
def test_hugging_face_datasets_loads_the_export_as_it_is(
    engine, tmp_path: Path, layout: str, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:  # type: ignore[no-untyped-def]
    """The folder layout and card are what `datasets` expects (offline: nothing is fetched); the chat
    layout arrives as TRL's conversational format, a `messages` list of role/content turns."""
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(key, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    result = _export(engine, tmp_path / "out", formats=["parquet"], layout=layout)
    for name in DATASETS:
        ds = datasets.load_dataset(
            str(Path(result.location) / name), cache_dir=str(tmp_path / "hf-cache" / name)
        )
        assert list(ds) == ["train"] and ds["train"].num_rows == result.counts[name]
        if layout == "chat":
            assert ds["train"].features["messages"] == datasets.List(
                {"role": datasets.Value("string"), "content": datasets.Value("string")}
            )
            assert [m["role"] for m in ds["train"][0]["messages"]] == ["system", "user", "assistant"]
        else:
            assert ds["train"].column_names[:3] == ["instruction", "input", "output"]
    assert "malformed" not in capfd.readouterr().err  # the dataset card's metadata is read without complaint


def test_parquet_is_sharded_and_streamed_in_row_groups(engine, tmp_path: Path) -> None:
    n = len(expected_rows(engine))
    result = _export(engine, tmp_path, formats=["parquet"], shard_rows=40, batch_rows=16)
    data = Path(result.location) / "ReasonMed" / "data"
    shards = sorted(p.name for p in data.iterdir())
    total = math.ceil(n / 40)
    assert shards == [f"train-{i:05d}-of-{total:05d}.parquet" for i in range(total)]
    sizes = [pq.ParquetFile(data / s).metadata for s in shards]
    assert [m.num_rows for m in sizes] == [40] * (total - 1) + [n - 40 * (total - 1)]
    assert max(m.row_group(i).num_rows for m in sizes for i in range(m.num_row_groups)) <= 16
    assert not list((Path(result.location) / "ReasonMed").glob("*.jsonl"))
    whole = pd.read_parquet(data)
    assert whole["path_id"].tolist() == [r["path_id"] for r in expected_rows(engine)]


def test_s3_export_to_a_real_moto_server(engine, fake_aws, tmp_path: Path) -> None:
    with moto_server() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="datasets")
        result = _export(
            engine, "s3://datasets/reasonmed/", s3_endpoint_url=endpoint, multipart_threshold=1024
        )
        assert result.location == f"s3://datasets/reasonmed/v{result.version:04d}"
        prefix = f"reasonmed/v{result.version:04d}/"
        manifest = json.loads(s3.get_object(Bucket="datasets", Key=prefix + "manifest.json")["Body"].read())
        assert manifest["location"] == result.location and manifest["counts"] == result.counts
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="datasets", Prefix=prefix)["Contents"]}
        assert keys == {prefix + f["path"] for f in manifest["files"]} | {prefix + "manifest.json"}
        for f in manifest["files"]:
            obj = s3.get_object(Bucket="datasets", Key=prefix + f["path"])
            body = obj["Body"].read()
            assert hashlib.sha256(body).hexdigest() == f["sha256"]
            if f["bytes"] > 1024:  # above the threshold: a multipart upload (its ETag ends in -<parts>)
                assert obj["ETag"].strip('"').endswith("-1"), f["path"]
        table = pq.read_table(
            io.BytesIO(
                s3.get_object(Bucket="datasets", Key=prefix + "ReasonMed/data/train-00000-of-00001.parquet")[
                    "Body"
                ].read()
            )
        )
        assert table.num_rows == result.counts["ReasonMed"]
        # Credentials come from the environment chain and are written nowhere.
        assert "testing" not in json.dumps(manifest)


def test_s3_multipart_upload_of_a_large_file(fake_aws, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    (staging / "big").mkdir(parents=True)
    payload = hashlib.sha256(b"seed").digest() * (11 * 1024 * 1024 // 32)  # 11 MiB
    (staging / "big" / "blob.bin").write_bytes(payload)
    (staging / "manifest.json").write_text("{}")
    with moto_server() as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="bulk")
        target = S3Target(
            bucket="bulk",
            prefix="p",
            endpoint_url=endpoint,
            multipart_threshold=1024,
            multipart_chunksize=5 * 1024 * 1024,
        )
        assert target.publish(staging, "v0007") == "s3://bulk/p/v0007"
        obj = s3.get_object(Bucket="bulk", Key="p/v0007/big/blob.bin")
        assert obj["ETag"].strip('"').endswith("-3")  # 5 + 5 + 1 MiB parts
        assert obj["Body"].read() == payload
        with pytest.raises(Exception, match="exists already"):
            (tmp_path / "again").mkdir()
            target.publish(tmp_path / "again", "v0007")


def test_export_flow_under_prefect(
    built_copy: str, prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reasonmed.flows.export import export_dataset as export_flow

    monkeypatch.setenv("REASONMED_DATABASE_URL", built_copy)
    out = export_flow(out=str(tmp_path), formats=["parquet"], layout="chat", allow_simulated=True)
    assert {"version", "location", "counts", "manifest_path", "contamination"} <= set(out)
    manifest = json.loads(Path(out["manifest_path"]).read_text())
    assert manifest["version"] == out["version"] and manifest["layout"] == "chat"
    expected = len(expected_rows(make_engine(built_copy)))
    assert out["counts"]["ReasonMed"] == expected - manifest["contamination"]["rows_excluded"]
    assert not list(Path(out["location"]).rglob("*.jsonl"))

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(
                    any_=["dataset-export-counts", "dataset-export-manifest", "audit-report-figures"]
                )
            )
        )
    assert {a.key for a in arts} == {
        "dataset-export-counts",
        "dataset-export-manifest",
        "audit-report-figures",
    }
    figures = next(a for a in arts if a.key == "audit-report-figures")
    assert "data:image/png;base64," in str(figures.data)


def test_cli_export(built_copy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reasonmed.cli import app

    monkeypatch.setenv("REASONMED_DATABASE_URL", built_copy)
    refused = CliRunner().invoke(app, ["export", "--out", str(tmp_path), "--format", "jsonl"])
    res = CliRunner().invoke(
        app, ["export", "--out", str(tmp_path), "--format", "jsonl", "--layout", "chat", "--allow-simulated"]
    )
    bad = CliRunner().invoke(app, ["export", "--out", str(tmp_path), "--format", "csv"])
    # Every row of this database is the simulator's: without --allow-simulated nothing is written.
    assert refused.exit_code == 1 and "SIMULATED" in refused.output and "--allow-simulated" in refused.output
    assert res.exit_code == 0, res.output
    assert "ReasonMed" in res.output and "manifest:" in res.output and "SIMULATED:" in res.output
    (version_dir,) = [p for p in tmp_path.iterdir() if p.name.startswith("v")]
    assert sorted(p.name for p in version_dir.rglob("*.jsonl")) == [
        "CoTMed.jsonl",
        "ReasonMed.jsonl",
        "ResponseMed.jsonl",
    ]
    assert not list(version_dir.rglob("*.parquet"))
    assert bad.exit_code != 0


def test_instruction_formatting() -> None:
    opts = [["A", "Aspirin"], ["B", "Heparin "]]
    assert (
        format_instruction(" Which drug? ", None, opts) == "Which drug?\n\nOptions:\nA. Aspirin\nB. Heparin"
    )
    assert (
        format_instruction("Q", "  ctx ", [["yes", "yes"], ["no", "no"]])
        == "Q\n\nContext:\nctx\n\nOptions: yes / no"
    )


def test_default_contamination_guard_excludes_a_copied_test_item(engine, tmp_path: Path) -> None:
    """The real guard (reasonmed.contamination): an accepted question reworded into a test item's copy."""
    victim = expected_rows(engine)[0]["question_id"]
    with engine.connect() as conn:
        original = conn.execute(
            text("SELECT question, options FROM questions WHERE id = :i"), {"i": victim}
        ).one()
        test_item = conn.execute(
            text(
                "SELECT source_id, question, options FROM questions WHERE is_benchmark_test ORDER BY id LIMIT 1"
            )
        ).one()
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE questions SET question = :q WHERE id = :i"),
            {"q": test_item.question.upper() + "  ", "i": victim},
        )  # case and spacing do not hide it
    try:
        result = export_dataset(
            engine, ExportOptions(out=str(tmp_path), allow_simulated=True)
        )  # default contamination check
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("UPDATE questions SET question = :q WHERE id = :i"),
                {"q": original.question, "i": victim},
            )
    report = result.manifest["contamination"]
    assert victim in report["question_ids"]
    assert f"pubmedqa:{test_item.source_id}" in report["matches"][str(victim)]
    assert victim not in set(_parquet(result.location, "ReasonMed")["question_id"])
    assert result.counts["ReasonMed"] == len(expected_rows(engine)) - report["rows_excluded"]


def test_export_on_sqlite(sqlite_url: str, tmp_path: Path) -> None:
    """The embedded default works too: same query, INSERT-based samples instead of COPY."""
    from datetime import UTC, datetime

    from sqlalchemy.orm import Session

    from reasonmed.db.models import (
        AcceptedPath,
        Question,
        QuestionOutcome,
        ReasoningPath,
        Summary,
        Verdict,
    )

    eng = make_engine(sqlite_url)
    now = datetime.now(UTC)
    with Session(eng) as s, s.begin():
        for qid, bench in ((1, False), (2, True)):
            s.add(
                Question(
                    id=qid,
                    content_hash=f"h{qid}",
                    source="medqa",
                    source_id=f"m{qid}",
                    split="train",
                    is_benchmark_test=bench,
                    question=f"Which drug {qid}?",
                    context=None,
                    options=[["A", "Aspirin"], ["B", "Heparin"]],
                    answer="B",
                    meta={},
                    created_at=now,
                )
            )
            s.flush()
            for k in range(2):
                pid = qid * 10 + k
                s.add(
                    ReasoningPath(
                        id=pid,
                        question_id=qid,
                        path_key=f"k{k}",
                        origin="generated",
                        role="generator",
                        endpoint="e",
                        model="m",
                        temperature=0.7,
                        prompt_sha256="x",
                        raw_text="r",
                        clean_text=f"cot {pid}",
                        created_at=now,
                    )
                )
                s.flush()
                s.add(
                    Verdict(
                        id=pid,
                        path_id=pid,
                        question_id=qid,
                        verifier_model="V",
                        prompt_sha256="x",
                        outcome="correct",
                        created_at=now,
                    )
                )
                s.add(
                    Summary(
                        id=pid,
                        path_id=pid,
                        question_id=qid,
                        summarizer_model="S",
                        prompt_sha256="x",
                        text=f"sum {pid}",
                        created_at=now,
                    )
                )
                s.flush()
                s.add(AcceptedPath(question_id=qid, path_id=pid, verdict_id=pid, rank=1 - k, created_at=now))
            s.add(
                QuestionOutcome(
                    question_id=qid,
                    tier="easy",
                    n_paths=2,
                    n_correct=2,
                    status="accepted",
                    n_accepted=2,
                    updated_at=now,
                )
            )
    try:
        result = export_dataset(eng, ExportOptions(out=str(tmp_path)), contamination=no_contamination)
        df = _parquet(result.location, "ReasonMed")
        assert df["path_id"].tolist() == [11, 10]  # question 2 is a benchmark-test item; rank order
        assert df["instruction"].iloc[0] == "Which drug 1?\n\nOptions:\nA. Aspirin\nB. Heparin"
        assert df["output"].tolist() == ["cot 11\n\nsum 11", "cot 10\n\nsum 10"]
        assert export_repo.sample_path_ids(eng, result.version) == [10, 11]
    finally:
        eng.dispose()


def test_simulated_rows_are_refused_unless_allowed_and_then_flagged(engine, tmp_path: Path) -> None:
    """A database the simulator filled exports nothing by default; allowed, card and manifest say so."""
    from reasonmed.export.service import SimulatedOnly

    simulated, real = export_repo.count_simulated_rows(engine)
    assert simulated > 0 and real == 0
    with pytest.raises(SimulatedOnly, match="--allow-simulated"):
        _export(engine, tmp_path / "refused", allow_simulated=False)
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())
    res = _export(engine, tmp_path / "allowed", allow_simulated=True)
    assert (
        res.manifest["simulated"] is True
        and res.manifest["simulated_rows"] == res.counts["ReasonMed"] == simulated
    )
    card = (Path(res.location) / "ReasonMed" / "README.md").read_text()
    assert "simulated: true" in card and f"SIMULATED: {simulated} of {simulated} rows" in card
    assert all(r["model"].startswith("sim/") for r in _jsonl(res.location, "ReasonMed"))


def test_real_rows_beside_simulated_ones_export_alone_unless_simulated_are_allowed(
    built_pg_db, tmp_path: Path
) -> None:
    """A database holding both: the rows of five questions are made a real model's (their paths' model
    renamed), the rest stay the simulator's. Without --allow-simulated exactly those questions' accepted
    paths are exported (counted here by a query of its own) and the manifest says not simulated; allowed,
    every row is, and the card and manifest count the simulated ones."""
    url = clone_database(built_pg_db.url)
    eng = make_engine(url)
    try:
        with eng.begin() as c:
            qids = list(
                c.execute(
                    text("select distinct question_id from accepted_paths order by question_id limit 5")
                ).scalars()
            )
            c.execute(
                text("update reasoning_paths set model = 'Qwen2.5-72B-Instruct' where question_id = any(:q)"),
                {"q": qids},
            )
            accepted = {
                pid: qid
                for pid, qid in c.execute(
                    text("""select a.path_id, a.question_id from accepted_paths a
                            join question_outcomes o on o.question_id = a.question_id
                            where a.dropped_reason is null and a.superseded_at is null""")
                )
            }
        real = {pid for pid, qid in accepted.items() if qid in qids}
        assert real and len(real) < len(accepted)
        only_real = _export(eng, tmp_path / "real", allow_simulated=False)
        df = _parquet(only_real.location, "ReasonMed")
        assert set(df["path_id"]) == real and len(df) == len(real)
        assert set(df["model"]) == {"Qwen2.5-72B-Instruct"}
        assert only_real.manifest["simulated"] is False
        both = _export(eng, tmp_path / "all", allow_simulated=True)
        assert set(_parquet(both.location, "ReasonMed")["path_id"]) == set(accepted)
        n_sim = len(accepted) - len(real)
        assert both.manifest["simulated"] is True and both.manifest["simulated_rows"] == n_sim
        card = (Path(both.location) / "ReasonMed" / "README.md").read_text()
        assert f"SIMULATED: {n_sim} of {len(accepted)} rows" in card
    finally:
        eng.dispose()
        drop_database(url)


def test_hub_layout_and_card_say_what_made_the_rows(
    engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One Hub-style repository per version: the root card declares the three datasets as configs, which
    `datasets` loads by name; every card names the generating models per role with their prompt sha256s
    (each resolvable in prompt_templates), the prompt profile, the runs' config hashes, the paper, the
    sources' licences, the intended use and a medical disclaimer."""
    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(key, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets
    import yaml

    result = _export(engine, tmp_path / "out", formats=["parquet"])
    root = Path(result.location)
    card = (root / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert [c["config_name"] for c in front["configs"]] == list(DATASETS)
    assert [c.get("default", False) for c in front["configs"]] == [True, False, False]
    for name in DATASETS:
        ds = datasets.load_dataset(
            str(root), name, split="train", cache_dir=str(tmp_path / "hf-cache" / name)
        )
        assert ds.num_rows == result.counts[name]
    with engine.connect() as c:
        models = {
            r: set(ms)
            for r, ms in (
                (
                    "generator",
                    c.execute(
                        text("""select distinct p.model from accepted_paths a join reasoning_paths p
                on p.id = a.path_id join question_outcomes o on o.question_id = a.question_id
                where o.status = 'accepted' and p.role = 'generator'""")
                    ).scalars(),
                ),
                ("summarizer", c.execute(text("select distinct summarizer_model from summaries")).scalars()),
            )
        }
        shas = set(c.execute(text("select sha256 from prompt_templates")).scalars())
    for text_ in (card, (root / "CoTMed" / "README.md").read_text()):
        for model in models["generator"] | models["summarizer"]:
            assert f"| {model} |" in text_
        listed = {
            line.split("`")[1]
            for line in text_.splitlines()
            if line.startswith("| ") and "`" in line and len(line.split("`")[1]) == 64
        }
        assert listed and listed <= shas  # every prompt sha named resolves to its text
        assert "Prompt profile: `reasonmed`" in text_
        assert all(f"`{h}`" in text_ for h in result.manifest["config_hashes"])
        assert "arXiv" in text_ and "2506.09513" in text_ and "MedMCQA" in text_ and "MIT" in text_
        assert "## Intended use" in text_ and "Nothing here is medical advice" in text_
    assert "README.md" in {f["path"] for f in result.manifest["files"]}


def test_json_lines_are_json_dumps_of_each_row_byte_for_byte(tmp_path: Path) -> None:
    """The column-wise JSON Lines writer against the reference (json.dumps of each row): escapes, control
    characters, non-ASCII, nulls, Python's float repr, nested chat messages, empty and all-null columns."""
    import pyarrow as pa

    from reasonmed.export.assemble import SourceRow, build_tables
    from reasonmed.export.writers import JsonLines, json_dumps

    nasty = [
        'say "yes"\\no',
        "a\nb\r\nc\td\be\ff\x00g\x01h\x1e\x1fi\x7f",
        "ünï — “q” \u2028 😀",
        "",
        " pad \n",
    ]
    rows = [
        SourceRow(
            question_id=i,
            source="medqa",
            source_id=f"s{i}",
            question=text_,
            context=None if i % 2 else text_,
            options=[["A", text_], ["B", "b"]],
            answer="A",
            is_benchmark_test=False,
            rank=0,
            path_id=i,
            verdict_id=i,
            summary_id=i,
            run_id=None if i == 2 else i,
            model="m",
            temperature=t,
            origin="generated",
            cot=text_,
            summary=text_[::-1],
        )
        for i, (text_, t) in enumerate(zip(nasty, [1.0, 0.7, 0.1 + 0.2, 1e-7, 2.0], strict=True))
    ]
    tables = [t for layout in ("instruction", "chat") for t in build_tables(rows, layout).values()]
    tables.append(pa.table({"s": pa.array([None, None], type=pa.string()), "e": ["", ""], "n": [None, 3]}))
    for i, table in enumerate(tables):
        writer = JsonLines(tmp_path / f"{i}.jsonl")
        writer.write(table.slice(0, 0))
        writer.write(table.slice(0, 2))
        writer.write(table.slice(2))
        writer.close()
        expected = "".join(json_dumps(row) + "\n" for row in table.to_pylist())
        assert (tmp_path / f"{i}.jsonl").read_bytes() == expected.encode("utf-8")
        assert json_dumps({"k": "\x1e"}) == json.dumps(
            {"k": "\x1e"}, ensure_ascii=False, separators=(", ", ": ")
        )
