"""Where a finished export goes: a local folder, an S3(-compatible) bucket or a Hub dataset repository.

Every export is written to a staging folder first and published whole: a local folder by one rename,
S3 by uploading each file and the manifest last, so a reader that finds ``manifest.json`` finds every
file it lists, the Hub by one commit (``reasonmed.export.hub``). Credentials come from boto3's standard
chain, or huggingface_hub's (``HF_TOKEN``), and are never written anywhere.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reasonmed.export.staging import ExportTargetError, staged_files
from reasonmed.extras import require
from reasonmed.s3_keys import bucket_problem, key_problem

if TYPE_CHECKING:
    from reasonmed.export.hub import HubTarget


class Target(Protocol):
    def staging(self) -> Path: ...

    def location(self, version_dir: str) -> str: ...

    def publish(self, staging: Path, version_dir: str) -> str: ...

    def discard(self, staging: Path) -> None: ...


@dataclass
class LocalTarget:
    root: Path
    _made_root: bool = field(default=False, repr=False)

    def staging(self) -> Path:
        self._made_root = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f".staging-{uuid.uuid4().hex[:12]}"
        path.mkdir()
        return path

    def location(self, version_dir: str) -> str:
        return str((self.root / version_dir).resolve())

    def publish(self, staging: Path, version_dir: str) -> str:
        final = self.root / version_dir
        if final.exists():
            raise ExportTargetError(f"{final} exists already; refusing to overwrite a published version")
        staging.rename(final)
        return str(final.resolve())

    def discard(self, staging: Path) -> None:
        """Remove the staging folder, and the root too when this export made it: a failed export leaves
        the disk as it found it."""
        shutil.rmtree(staging, ignore_errors=True)
        if self._made_root:
            with contextlib.suppress(OSError):  # not empty: something else was put there meanwhile
                self.root.rmdir()

    def unpublish(self, version_dir: str) -> None:
        shutil.rmtree(self.root / version_dir, ignore_errors=True)


@dataclass
class S3Target:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    multipart_threshold: int = 64 * 1024 * 1024
    multipart_chunksize: int = 64 * 1024 * 1024
    max_concurrency: int = 4
    _client: Any = field(default=None, repr=False)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = require("boto3", "s3").client("s3", endpoint_url=self.endpoint_url)
        return self._client

    def _key(self, version_dir: str, rel: str = "") -> str:
        parts = [p for p in (self.prefix.strip("/"), version_dir, rel) if p]
        return "/".join(parts)

    def staging(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="reasonmed-export-"))

    def location(self, version_dir: str) -> str:
        return f"s3://{self.bucket}/{self._key(version_dir)}"

    def publish(self, staging: Path, version_dir: str) -> str:
        transfer = require("boto3.s3.transfer", "s3")

        existing = self.client.list_objects_v2(
            Bucket=self.bucket, Prefix=self._key(version_dir) + "/", MaxKeys=1
        )
        if existing.get("KeyCount", 0):
            raise ExportTargetError(f"{self.location(version_dir)} exists already; refusing to overwrite it")
        config = transfer.TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunksize,
            max_concurrency=self.max_concurrency,
            use_threads=self.max_concurrency > 1,
        )
        try:
            for path in staged_files(staging):
                rel = path.relative_to(staging).as_posix()
                self.client.upload_file(str(path), self.bucket, self._key(version_dir, rel), Config=config)
        except BaseException:
            self.unpublish(version_dir)  # no half-published version: the next export can take the number
            raise
        shutil.rmtree(staging, ignore_errors=True)
        return self.location(version_dir)

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def unpublish(self, version_dir: str) -> None:
        prefix = self._key(version_dir) + "/"
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})


def parse_target(
    out: str | Path,
    *,
    s3_endpoint_url: str | None = None,
    multipart_threshold: int = 64 * 1024 * 1024,
    multipart_chunksize: int = 64 * 1024 * 1024,
    hub_endpoint: str | None = None,
) -> LocalTarget | S3Target | HubTarget:
    """``s3://bucket/prefix`` becomes an S3 target (the multipart sizes apply there), ``hf://datasets/OWNER/NAME``
    a Hub dataset repository (at ``hub_endpoint``, default HF_ENDPOINT); else a local folder.

    A prefix with a ``..``, ``.`` or empty segment or a NUL is refused (``reasonmed.s3_keys``), and so is a
    local folder that is a dangling symbolic link (nothing could be written where it points)."""
    text = str(out)
    if text.startswith("s3://"):
        bucket, _, prefix = text[len("s3://") :].partition("/")
        if not bucket:
            raise ExportTargetError(f"{text}: no bucket name (expected s3://bucket/prefix)")
        problem = bucket_problem(bucket) or (key_problem(prefix.rstrip("/")) if prefix.rstrip("/") else None)
        if problem:
            raise ExportTargetError(f"{text}: {problem.replace('key', 'prefix', 1)}")
        return S3Target(
            bucket=bucket,
            prefix=prefix.strip("/"),
            endpoint_url=s3_endpoint_url,
            multipart_threshold=multipart_threshold,
            multipart_chunksize=multipart_chunksize,
        )
    if text.startswith("hf://"):
        from reasonmed.export.hub import HubTarget, parse_hub_repo

        return HubTarget(repo_id=parse_hub_repo(text), endpoint=hub_endpoint)
    if "://" in text:
        raise ExportTargetError(
            f"{text}: unsupported target (use a local folder, s3://bucket/prefix or hf://datasets/OWNER/NAME)"
        )
    path = Path(text)
    if path.is_symlink() and not path.exists():
        raise ExportTargetError(
            f"{text} is a symbolic link to {path.readlink()}, which does not exist; give an existing folder "
            "or a new path"
        )
    return LocalTarget(path)
