"""Input listing cannot reach outside its folder: S3 keys with '..' or a leading '/', and local symlinks
out of the input folder, are skipped and reported, never downloaded or read (S3 through moto's server)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from reasonmed.nightly import inputs

# moto keeps every bucket in process memory, shared by every moto server of the test session: a bucket
# of this test's own, so objects other tests stored cannot show up in its listing.
BUCKET = f"containment-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[object, str]]:
    import boto3
    from moto.server import ThreadedMotoServer

    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket=BUCKET)
        yield client, endpoint
    finally:
        server.stop()


HOSTILE_KEYS = {
    "../escape.json": "key has an empty, '.' or '..' path segment",
    "../../escape2.json": "key has an empty, '.' or '..' path segment",
    "ok/../../../escape3.json": "key has an empty, '.' or '..' path segment",
    "/abs.json": "key is empty, absolute or holds a NUL",
    "//double.json": "key is empty, absolute or holds a NUL",
    "ok//empty-segment.json": "key has an empty, '.' or '..' path segment",
    "ok/./dot.json": "key has an empty, '.' or '..' path segment",
}


def test_s3_keys_that_leave_the_staging_folder_are_skipped_and_reported(s3: tuple, tmp_path: Path) -> None:
    client, endpoint = s3
    client.put_object(Bucket=BUCKET, Key="ok/a.json", Body=b"{}")  # type: ignore[attr-defined]
    for key in HOSTILE_KEYS:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"PWNED")  # type: ignore[attr-defined]
    listed = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]}  # type: ignore[attr-defined]
    assert set(HOSTILE_KEYS) <= listed  # the store really holds them

    staging = tmp_path / "a" / "b" / "staging"  # deep, so '../..' would still land inside tmp_path
    staging.mkdir(parents=True)
    skipped: list[tuple[str, str]] = []
    files = inputs.list_inputs(
        f"s3://{BUCKET}",
        pattern="*.json",
        staging_dir=staging,
        endpoint_url=endpoint,
        on_skip=lambda uri, why: skipped.append((uri, why)),
    )
    assert [f.uri for f in files] == [f"s3://{BUCKET}/ok/a.json"]
    assert files[0].local == staging / BUCKET / "ok" / "a.json" and files[0].local.read_bytes() == b"{}"
    got = dict(skipped)
    for key, why in HOSTILE_KEYS.items():
        assert got[f"s3://{BUCKET}/{key}"] == f"{why}; not downloaded"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [files[0].local] or sorted(written) == sorted(
        [files[0].local, files[0].local.with_name("a.json.etag")]
    )
    assert not any(b"PWNED" in p.read_bytes() for p in written)


def test_fetch_refuses_a_hostile_key_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(inputs.UnsafeInput, match="'..' path segment"):
        inputs.fetch(
            "s3://questions/ids/../../x.json", staging_dir=tmp_path, endpoint_url="http://127.0.0.1:9"
        )
    with pytest.raises(inputs.UnsafeInput, match="not a valid S3 bucket name"):
        inputs.fetch("s3://../x.json", staging_dir=tmp_path, endpoint_url="http://127.0.0.1:9")


def test_local_symlinks_out_of_the_input_folder_are_skipped_and_reported(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text("{}")
    (outside / "dir").mkdir()
    (outside / "dir" / "inner.json").write_text("{}")
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (root / "real.json").write_text("{}")
    (root / "sub" / "nested.json").write_text("{}")
    os.symlink(root / "real.json", root / "alias.json")  # inside: fine
    os.symlink(outside / "secret.json", root / "leak.json")
    os.symlink(outside / "dir", root / "linked_dir")
    os.symlink("/etc/hostname", root / "etc.json")
    skipped: list[tuple[str, str]] = []
    files = inputs.list_inputs(
        str(root),
        pattern="*.json",
        staging_dir=tmp_path / "st",
        on_skip=lambda uri, why: skipped.append((uri, why)),
    )
    assert sorted(Path(f.uri).name for f in files) == ["alias.json", "nested.json", "real.json"]
    reasons = {Path(uri).name: why for uri, why in skipped}
    assert reasons.get("leak.json") == "links outside the input folder; not read"
    assert reasons.get("etc.json") == "links outside the input folder; not read"
    # a linked folder is either not descended into or its files are refused: never read
    assert "inner.json" not in {Path(f.uri).name for f in files}
