"""Find the question files in an input location: a local folder, or an ``s3://bucket/prefix``.

Every matching file is handed to the ingestion service, which knows files by the sha256 of their bytes
and skips one it has ingested before; so this module does not track what is new, it only lists and
fetches. S3 objects are copied to a local staging folder first (the loaders read local files); with a
persistent staging folder an object whose ETag and size have not changed is not downloaded again.

Whoever can write to the input location must not be able to write or read elsewhere on the worker: an
S3 key that is absolute or has a ``..`` segment, and a local file (or symlink) whose real path leaves the
input folder, is skipped and reported through ``on_skip``, never downloaded or read.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasonmed.extras import require
from reasonmed.s3_keys import bucket_problem, key_problem

# The usual file name of each source's public release; ``pattern`` overrides it.
DEFAULT_PATTERNS = {
    "medqa": "*.jsonl",
    "medmcqa": "*.json*",
    "pubmedqa": "*.json",
    "mmlu": "*.csv",
    "jsonl": "*.jsonl",
    "csv": "*.csv",
    "parquet": "*.parquet",
}


OnSkip = Callable[[str, str], None]  # (uri, why it was not taken)


class UnsafeInput(ValueError):
    """An input name that would reach outside its folder."""


def _ignore(uri: str, why: str) -> None:
    return None


@dataclass(frozen=True)
class InputFile:
    uri: str  # where it lives: a path, or s3://bucket/key
    local: Path  # a readable copy on this machine (the file itself when local)


def is_s3(location: str) -> bool:
    return location.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``."""
    rest = uri.removeprefix("s3://")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"{uri!r}: expected s3://bucket/prefix")
    problem = bucket_problem(bucket)
    if problem:
        raise UnsafeInput(f"{uri!r}: {problem}")
    return bucket, key


def staged_path(staging_dir: Path, bucket: str, key: str) -> Path:
    """Where an object is copied, guaranteed inside ``staging_dir/bucket``; UnsafeInput for a key that
    is absolute, has an empty, ``.`` or ``..`` segment, or a NUL, or resolves outside it."""
    problem = key_problem(key)
    if problem:
        raise UnsafeInput(problem)
    base = (staging_dir / bucket).resolve()
    local = staging_dir / bucket / key
    if not local.resolve().is_relative_to(base):
        raise UnsafeInput("key resolves outside the staging folder")
    return local


def pattern_for(source: str, pattern: str | None) -> str:
    return pattern or DEFAULT_PATTERNS.get(source, "*")


def list_inputs(
    location: str,
    *,
    pattern: str,
    staging_dir: Path,
    exclude: Iterable[str] = (),
    endpoint_url: str | None = None,
    on_skip: OnSkip | None = None,
) -> list[InputFile]:
    """The files under ``location`` whose name matches ``pattern``, in name order, hidden files and
    ``exclude`` (e.g. the benchmark test-id list living in the same folder) left out; names that reach
    outside the location are left out and passed to ``on_skip`` with the reason."""
    skip = on_skip or _ignore
    if is_s3(location):
        return _list_s3(location, pattern, staging_dir, set(exclude), endpoint_url, skip)
    return _list_local(Path(location), pattern, {_norm(e) for e in exclude if not is_s3(e)}, skip)


def fetch(uri: str, *, staging_dir: Path, endpoint_url: str | None = None) -> Path:
    """A local copy of one file (itself when local), e.g. a benchmark test-id list kept in S3."""
    if not is_s3(uri):
        return Path(uri)
    bucket, key = split_s3(uri)
    staged_path(staging_dir, bucket, key)  # refused before any request
    client = _s3_client(endpoint_url)
    head = client.head_object(Bucket=bucket, Key=key)
    return _download(client, bucket, key, head["ETag"], head["ContentLength"], staging_dir)


def _norm(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def _list_local(root: Path, pattern: str, exclude: set[Path], on_skip: OnSkip) -> list[InputFile]:
    if root.is_file():  # named explicitly: taken whatever its name
        return [] if _norm(root) in exclude else [InputFile(uri=str(root), local=root)]
    if not root.is_dir():
        raise FileNotFoundError(f"input location {root}: no such file or folder")
    real_root = _norm(root)
    out = []
    for p in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not fnmatch.fnmatch(p.name, pattern):
            continue
        real = _norm(p)
        if not real.is_relative_to(real_root):  # a symlink (or a linked folder) pointing elsewhere
            on_skip(str(p), "links outside the input folder; not read")
            continue
        if real in exclude:
            continue
        out.append(InputFile(uri=str(p), local=p))
    return out


def _s3_client(endpoint_url: str | None) -> Any:
    return require("boto3", "s3").client(
        "s3", endpoint_url=endpoint_url
    )  # loaded only by nights that read S3


def _list_s3(
    location: str,
    pattern: str,
    staging_dir: Path,
    exclude: set[str],
    endpoint_url: str | None,
    on_skip: OnSkip,
) -> list[InputFile]:
    bucket, prefix = split_s3(location)
    client = _s3_client(endpoint_url)
    objects = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            name = key.rsplit("/", 1)[-1]
            if not name or name.startswith(".") or not fnmatch.fnmatch(name, pattern):
                continue
            if f"s3://{bucket}/{key}" in exclude:
                continue
            try:
                staged_path(staging_dir, bucket, key)
            except UnsafeInput as exc:
                on_skip(f"s3://{bucket}/{key}", f"{exc}; not downloaded")
                continue
            objects.append(obj)
    out = []
    for obj in sorted(objects, key=lambda o: o["Key"]):
        local = _download(client, bucket, obj["Key"], obj["ETag"], obj["Size"], staging_dir)
        out.append(InputFile(uri=f"s3://{bucket}/{obj['Key']}", local=local))
    return out


def _download(client: Any, bucket: str, key: str, etag: str, size: int, staging_dir: Path) -> Path:
    local = staged_path(staging_dir, bucket, key)
    marker = local.with_name(local.name + ".etag")
    if local.is_file() and marker.is_file() and marker.read_text() == etag and local.stat().st_size == size:
        return local
    local.parent.mkdir(parents=True, exist_ok=True)
    partial = local.with_name(local.name + ".part")
    client.download_file(bucket, key, str(partial))
    partial.replace(local)  # a killed download never leaves a half file under the real name
    marker.write_text(etag)
    return local
