"""Exports to a Hugging Face Hub dataset repository: ``hf://datasets/OWNER/NAME``.

Each version is one folder of the repository (``v0003/``, exactly as a local export writes it) and arrives in
ONE commit, made with ``huggingface_hub`` (``HfApi.create_commit``) and named after the version; the same
commit replaces the repository's root ``README.md`` with the version's root card, its configs pointing into
the version's folder, so ``load_dataset("OWNER/NAME", "CoTMed")`` reads the latest version and an earlier
one is its commit (``revision=``). A commit is atomic: readers see the whole version or none of it.

Interrupted uploads resume. ``huggingface_hub`` uploads the large files (Parquet) first, to LFS or Xet
storage, where they are kept by sha256, and commits last; a rerun uploads only the files the Hub does not
have yet. A commit that landed while its answer was lost leaves the version on the Hub but not in the
database (its transaction rolled back): the rerun reserves the same number, finds that folder with the
same files (its ``manifest.json`` lists every sha256) and takes it as published, with no second commit.
Another export already in that folder, or a later version in the repository, is refused in one line:
a published version is never overwritten. A version the database then fails to record is taken back by
one more commit (``unpublish``), which deletes its folder and restores the previous root card.

The token is ``huggingface_hub``'s own (``HF_TOKEN``, or the one ``hf auth login`` saved): never passed,
logged, or written to a file, the manifest or the database. The endpoint is ``HF_ENDPOINT`` unless given.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasonmed.export.card import hub_repo_card
from reasonmed.export.staging import MANIFEST, ExportTargetError, staged_files
from reasonmed.extras import require

HUB_PREFIX = "hf://datasets/"
ROOT_CARD = "README.md"
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?")
_VERSION_DIR = re.compile(r"v(\d{4,})")
# Exceptions of the HTTP stack under huggingface_hub (its own, httpx's, requests' in older releases): a
# network problem, said in one line; anything else is a bug and keeps its traceback.
_NETWORK_MODULES = ("httpx", "httpx2", "httpcore", "requests", "urllib3", "huggingface_hub")


def parse_hub_repo(text: str) -> str:
    """``OWNER/NAME`` from ``hf://datasets/OWNER/NAME`` (a trailing slash allowed); ExportTargetError for
    anything else, in one line."""
    if not text.startswith(HUB_PREFIX):
        raise ExportTargetError(
            f"{text}: only dataset repositories take exports: hf://datasets/OWNER/NAME"
            if text.startswith("hf://")
            else f"{text}: not a Hub dataset (expected hf://datasets/OWNER/NAME)"
        )
    parts = text[len(HUB_PREFIX) :].rstrip("/").split("/")
    if len(parts) != 2:
        raise ExportTargetError(
            f"{text}: expected hf://datasets/OWNER/NAME (each version becomes a folder v000N/ of the "
            "repository: no folder inside it can be given)"
        )
    for part in parts:
        if not _NAME.fullmatch(part) or "--" in part or ".." in part or part.endswith(".git"):
            raise ExportTargetError(
                f"{text}: {part!r} is not a Hub name (letters, digits, '-', '_', '.'; at most 96 characters; "
                "no '--' or '..')"
            )
    return "/".join(parts)


def check_endpoint(endpoint: str | None) -> str | None:
    """The Hub's address as given (no trailing slash); ExportTargetError unless it is http(s) with a host
    and no credentials in it."""
    if endpoint is None:
        return None
    if not re.fullmatch(r"https?://[^/@\s]+(/\S*)?", endpoint):
        raise ExportTargetError(
            f"--hub-endpoint {endpoint!r}: expected the Hub's http(s) address, e.g. https://huggingface.co "
            "(no credentials: the token comes from HF_TOKEN)"
        )
    return endpoint.rstrip("/")


def version_folders(paths: list[str]) -> list[str]:
    """The version folders (``v0001``...) holding any of ``paths``, in version order."""
    found = {p.split("/", 1)[0] for p in paths if "/" in p and _VERSION_DIR.fullmatch(p.split("/", 1)[0])}
    return sorted(found, key=lambda v: int(v[1:]))


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else ""


@dataclass
class HubTarget:
    """A dataset repository on the Hub; created (private) if it does not exist yet."""

    repo_id: str
    endpoint: str | None = None
    private: bool = True
    _api: Any = field(default=None, repr=False)
    # version folder -> (the commit this target made, the root card it replaced): what ``unpublish`` undoes
    _published: dict[str, tuple[str, bytes | None]] = field(default_factory=dict, repr=False)

    @property
    def api(self) -> Any:
        if self._api is None:
            from reasonmed.version import __version__

            hub = require("huggingface_hub", "hub")
            self._api = hub.HfApi(
                endpoint=self.endpoint, library_name="reasonmed", library_version=__version__
            )
        return self._api

    @property
    def where(self) -> str:
        return f"{HUB_PREFIX}{self.repo_id}"

    def staging(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="reasonmed-export-"))

    def location(self, version_dir: str) -> str:
        return f"{self.where}/{version_dir}"

    def discard(self, staging: Path) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def publish(self, staging: Path, version_dir: str) -> str:
        """One commit adding every file of ``staging`` under ``version_dir/`` and the new root card."""
        hub = require("huggingface_hub", "hub")
        with self._explained("reading the repository"):
            self.api.create_repo(self.repo_id, repo_type="dataset", private=self.private, exist_ok=True)
            head = self.api.repo_info(self.repo_id, repo_type="dataset").sha
            present = list(self.api.list_repo_files(self.repo_id, repo_type="dataset", revision=head))
            if self._published_before(staging, version_dir, head, present):
                shutil.rmtree(staging, ignore_errors=True)
                return self.location(version_dir)
            previous_card = self._read(head, ROOT_CARD) if ROOT_CARD in present else None
        card = hub_repo_card(
            (staging / ROOT_CARD).read_text(encoding="utf-8"),
            version_dir=version_dir,
            repo_id=self.repo_id,
            versions=[*version_folders(present), version_dir],
        )
        operations = [
            hub.CommitOperationAdd(
                path_in_repo=f"{version_dir}/{path.relative_to(staging).as_posix()}",
                path_or_fileobj=str(path),
            )
            for path in staged_files(staging)
        ]
        operations.append(hub.CommitOperationAdd(path_in_repo=ROOT_CARD, path_or_fileobj=card.encode()))
        counts = json.loads((staging / MANIFEST).read_text(encoding="utf-8")).get("counts", {})
        rows = max(counts.values(), default=0)
        with self._explained(f"uploading {version_dir}"):
            commit = self.api.create_commit(
                self.repo_id,
                operations,
                commit_message=f"reasonmed export {version_dir} ({rows:,} rows per dataset)",
                commit_description=(
                    f"Dataset version {version_dir} exported by reasonmed: {', '.join(sorted(counts))} under "
                    f"{version_dir}/, and the root README.md pointing at it. {version_dir}/{MANIFEST} lists "
                    "the sha256 of every file."
                ),
                repo_type="dataset",
                parent_commit=head,  # refused if anything was committed since the checks above
            )
        self._published[version_dir] = (commit.oid, previous_card)
        shutil.rmtree(staging, ignore_errors=True)
        return self.location(version_dir)

    def unpublish(self, version_dir: str) -> None:
        """Take back the commit ``publish`` made (the database did not record the version): one commit that
        deletes the folder and restores the root card. A version found already published is left alone."""
        made = self._published.pop(version_dir, None)
        if made is None:
            return
        oid, previous_card = made
        hub = require("huggingface_hub", "hub")
        operations: list[Any] = [hub.CommitOperationDelete(path_in_repo=f"{version_dir}/", is_folder=True)]
        if previous_card is None:
            operations.append(hub.CommitOperationDelete(path_in_repo=ROOT_CARD))
        else:
            operations.append(hub.CommitOperationAdd(path_in_repo=ROOT_CARD, path_or_fileobj=previous_card))
        with self._explained(f"withdrawing {version_dir}"):
            self.api.create_commit(
                self.repo_id,
                operations,
                commit_message=f"reasonmed export {version_dir} withdrawn: the database did not record it",
                repo_type="dataset",
                parent_commit=oid,
            )

    def _published_before(
        self, staging: Path, version_dir: str, head: str | None, present: list[str]
    ) -> bool:
        """Whether ``version_dir`` is on the Hub with exactly the staged files (an earlier attempt's commit
        landed); ExportTargetError when it holds anything else, or a later version exists."""
        manifest = f"{version_dir}/{MANIFEST}"
        if manifest in present:
            theirs = json.loads(self._read(head, manifest))
            ours = json.loads((staging / MANIFEST).read_text(encoding="utf-8"))
            if theirs.get("files") == ours["files"]:
                return True
            raise ExportTargetError(
                f"{self.location(version_dir)} exists already with other files (another export, e.g. from "
                "another database): refusing to overwrite a published version; export to another repository"
            )
        if any(p.startswith(f"{version_dir}/") for p in present):
            raise ExportTargetError(
                f"{self.location(version_dir)} exists already (without a {MANIFEST}): refusing to overwrite it"
            )
        later = [v for v in version_folders(present) if int(v[1:]) > int(version_dir[1:])]
        if later:
            raise ExportTargetError(
                f"{self.where} already holds {later[-1]}, later than this export's {version_dir}: its versions "
                "come from another database; export this one to another repository"
            )
        return False

    def _read(self, revision: str | None, path: str) -> bytes:
        hub = require("huggingface_hub", "hub")
        utils = require("huggingface_hub.utils", "hub")
        url = hub.hf_hub_url(
            self.repo_id, path, repo_type="dataset", revision=revision, endpoint=self.api.endpoint
        )
        response = utils.get_session().get(url, headers=utils.build_hf_headers())
        utils.hf_raise_for_status(response)
        return bytes(response.content)

    @contextmanager
    def _explained(self, doing: str) -> Iterator[None]:
        """The Hub's and the network's errors as one line that says what to do (ExportTargetError)."""
        errors = require("huggingface_hub.errors", "hub")
        try:
            yield
        except ExportTargetError:
            raise
        except errors.OfflineModeIsEnabled:
            raise ExportTargetError(
                f"{self.where}: HF_HUB_OFFLINE is set, so nothing may reach the Hub: unset it to export there"
            ) from None
        except errors.HfHubHTTPError as exc:
            raise ExportTargetError(self._refusal(exc, doing)) from None
        except Exception as exc:
            if not isinstance(exc, OSError) and type(exc).__module__.split(".")[0] not in _NETWORK_MODULES:
                raise
            raise ExportTargetError(
                f"{self.where}: the exchange with the Hub at {self.api.endpoint} failed while {doing} "
                f"({type(exc).__name__}: {_first_line(str(exc))}); check the network and HF_ENDPOINT / "
                "--hub-endpoint, then run the export again: it resumes"
            ) from None

    def _refusal(self, exc: Any, doing: str) -> str:
        status = getattr(exc.response, "status_code", None)
        said = _first_line(exc.server_message or "") or _first_line(str(exc))
        if status == 401:
            if require("huggingface_hub", "hub").get_token() is None:
                return (
                    f"{self.where}: the Hub answered 401 Unauthorized while {doing} and no token is set: export "
                    "HF_TOKEN=<a token with write access> (read from the environment, never stored)"
                )
            return (
                f"{self.where}: the Hub refused the token while {doing} (401 Unauthorized): set HF_TOKEN to a "
                "valid token with write access"
            )
        if status == 403:
            return (
                f"{self.where}: the token may not write there (403 Forbidden while {doing}): use a token with "
                "write access to it, or a namespace you own"
            )
        if status == 404:
            return (
                f"{self.where}: no such dataset repository, and it could not be created (404 while {doing}): "
                "check OWNER/NAME and the token's rights"
            )
        if status == 412:
            return (
                f"{self.where} changed while {doing} (another commit landed first): run the export again "
                "(nothing was published)"
            )
        return (
            f"{self.where}: the Hub answered {status} while {doing}" + (f" ({said})" if said else "") + "; "
            "run the export again: it resumes (files the Hub has already are not sent twice)"
        )
