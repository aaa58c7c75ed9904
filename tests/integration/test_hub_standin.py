"""A stand-in for the Hugging Face Hub's HTTP API, over real HTTP on loopback, and the checks that
``huggingface_hub`` (the real client, unmodified) talks to it as it talks to the Hub.

It implements the routes ``huggingface_hub`` 2.x calls for what ``reasonmed export --to hf://...`` does
(read in ``hf_api.py``, ``_commit_api.py``, ``lfs.py``, ``file_download.py``):

    POST /api/repos/create                                   create_repo (409 when it exists)
    GET  /api/datasets/{repo}[/revision/{rev}]               repo_info / dataset_info
    GET  /api/datasets/{repo}/tree/{rev}[/{path}]            list_repo_tree / list_repo_files
    GET  /api/datasets/{repo}/commits/{rev}                  list_repo_commits (newest first)
    POST /api/validate-yaml                                  create_commit's check of a root README.md
    POST /api/datasets/{repo}/preupload/{rev}                upload mode per file: "lfs" for the patterns of the
                                                             repository's .gitattributes (*.parquet ...) or over
                                                             10 MB, else "regular" (content inline in the commit)
    POST /datasets/{repo}.git/info/lfs/objects/batch         LFS batch API (basic transfer): an upload action
                                                             only for objects the store lacks
    PUT  /lfs-upload/{sha256}                                the object itself (checked against its sha256)
    POST /api/datasets/{repo}/commit/{rev}                   NDJSON: header, file (base64), lfsFile, deletedFile,
                                                             deletedFolder; parentCommit checked (412)
    GET|HEAD /datasets/{repo}/resolve/{rev}/{path}           a file's bytes

Every request must carry ``Authorization: Bearer <token>`` when the stand-in has a token (401 otherwise,
as the Hub answers a write without one); ``read_only`` answers every write with 403 (a read token). Commits are recorded (message, description, operations, parent),
so are requests (route, whether a token came) and LFS uploads; ``fail`` makes a route fail once, before or
after it takes effect (an answer lost after the commit landed). Xet storage is not implemented: tests set
``HF_HUB_DISABLE_XET`` (``huggingface_hub.constants``) so large files take the LFS path.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml

GITATTRIBUTES = (
    b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"
)
LFS_OVER = 10 * 1024 * 1024


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class Blob:
    """A file at one commit: its bytes inline, or a reference to the LFS store."""

    data: bytes | None
    lfs_sha256: str | None = None
    size: int = 0

    @property
    def oid(self) -> str:
        if self.lfs_sha256:
            return git_blob_sha1(lfs_pointer(self.lfs_sha256, self.size))
        assert self.data is not None
        return git_blob_sha1(self.data)


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    description: str
    date: datetime
    operations: list[tuple[str, str]]  # (kind, path): file / lfsFile / deletedFile / deletedFolder
    tree: dict[str, Blob]


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: list[Commit] = field(default_factory=list)  # oldest first

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def at(self, revision: str) -> Commit | None:
        if revision in ("main", "refs/heads/main"):
            return self.head
        found = [c for c in self.commits if c.oid.startswith(revision)]
        return found[0] if len(found) == 1 else None


class HubStandIn:
    """The Hub routes above, on 127.0.0.1; ``with HubStandIn(token=...) as hub: hub.url``."""

    def __init__(self, token: str | None = None, *, read_only: bool = False) -> None:
        self.token = token
        self.read_only = read_only  # the token may read, not write: writes answer 403
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.lfs_uploads: list[str] = []  # sha256 of each PUT
        self.requests: list[tuple[str, str, bool]] = []  # (method, path, carried the token)
        self.authorizations: set[str] = (
            set()
        )  # every Authorization header seen (the tests grep for the token)
        self._failures: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._counter = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> HubStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # ---------------------------------------------------------------- what the tests use

    def fail(self, route: str, when: str = "before") -> None:
        """The next request to ``route`` (commit, preupload, lfs-batch, lfs-upload, create, info, tree)
        fails with a 500: ``before`` it takes effect, or ``after`` (the effect stays, the answer is lost)."""
        self._failures.setdefault(route, []).append(when)

    def commits(self, repo_id: str) -> list[Commit]:
        return list(self.repos[repo_id].commits)

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        commit = self.repos[repo_id].at(revision)
        assert commit is not None, revision
        return {path: self._content(blob) for path, blob in commit.tree.items()}

    def checkout(self, repo_id: str, dest: Path, revision: str = "main") -> Path:
        """The repository's tree at ``revision``, written to ``dest`` (a local copy to load)."""
        for path, data in self.files(repo_id, revision).items():
            target = dest / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return dest

    def _content(self, blob: Blob) -> bytes:
        if blob.lfs_sha256:
            return self.lfs[blob.lfs_sha256]
        assert blob.data is not None
        return blob.data

    # ---------------------------------------------------------------- the server

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                return

            def do_GET(self) -> None:
                hub._dispatch(self, "GET")

            def do_HEAD(self) -> None:
                hub._dispatch(self, "HEAD")

            def do_POST(self) -> None:
                hub._dispatch(self, "POST")

            def do_PUT(self) -> None:
                hub._dispatch(self, "PUT")

        return Handler

    def _dispatch(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        parts = urlsplit(h.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        auth = h.headers.get("Authorization") or ""
        if auth:
            self.authorizations.add(auth)
        # The LFS upload URL stands for the storage's presigned URL: no token goes there, as on the Hub.
        authorised = self.token is None or auth == f"Bearer {self.token}" or path.startswith("/lfs-upload/")
        self.requests.append((method, path, bool(auth)))
        if not authorised:
            return self._send(h, 401, {"error": "Invalid credentials in Authorization header"})
        if self.read_only and method in ("POST", "PUT") and path != "/api/validate-yaml":
            return self._send(
                h, 403, {"error": "You don't have the rights to create a dataset under this namespace"}
            )
        try:
            with self._lock:
                status, payload, headers = self._route(method, path, query, body)
        except _Fail:
            return self._send(
                h, 500, {"error": "Internal Error - We're working hard to fix this as soon as possible!"}
            )
        self._send(h, status, payload, headers, head=method == "HEAD")

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        payload: Any,
        headers: dict[str, str] | None = None,
        head: bool = False,
    ) -> None:
        if isinstance(payload, bytes):
            data, kind = payload, "application/octet-stream"
        else:
            data, kind = json.dumps(payload).encode(), "application/json"
        h.send_response(status)
        h.send_header("Content-Type", kind)
        h.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        if not head:
            h.wfile.write(data)

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and path == "/api/repos/create":
            return self._create(json.loads(body))
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body))
        if method == "PUT" and (m := re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", path)):
            return self._lfs_put(m[1], body)
        if m := re.fullmatch(r"/datasets/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path):
            return self._lfs_batch(m[1], json.loads(body))
        if m := re.fullmatch(r"/datasets/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            return self._resolve(m[1], m[2], m[3])
        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)(?:/([a-z-]+)(?:/([^/]+)(?:/(.*))?)?)?", path)
        if not m:
            return 404, {"error": f"no route {method} {path}"}, {}
        repo_id, action, revision, rest = m[1], m[2], m[3] or "main", m[4] or ""
        repo = self.repos.get(repo_id)
        if repo is None:
            return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
        if action is None or (action == "revision" and method == "GET"):
            return self._info(repo, revision if action else "main")
        commit = repo.at(revision)
        if commit is None:
            return 404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"}
        if action == "tree" and method == "GET":
            return self._tree(commit, rest, query)
        if action == "commits" and method == "GET":
            return self._commit_list(repo, commit)
        if action == "preupload" and method == "POST":
            return self._preupload(commit, json.loads(body))
        if action == "commit" and method == "POST":
            return self._commit(repo, body)
        return 404, {"error": f"no route {method} {path}"}, {}

    def _maybe_fail(self, route: str, when: str) -> None:
        plan = self._failures.get(route)
        if plan and plan[0] == when:
            plan.pop(0)
            raise _Fail

    def _create(self, payload: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        self._maybe_fail("create", "before")
        assert payload.get("type") == "dataset", payload
        repo_id = f"{payload['organization']}/{payload['name']}"
        if repo_id in self.repos:
            return 409, {"error": "You already created this dataset repo", "url": self._repo_url(repo_id)}, {}
        repo = Repo(
            repo_id,
            private=payload.get("visibility", "private" if payload.get("private") else "public") == "private",
        )
        repo.commits.append(
            self._new_commit(
                None,
                "initial commit",
                "",
                [("file", ".gitattributes")],
                {".gitattributes": Blob(GITATTRIBUTES)},
            )
        )
        self.repos[repo_id] = repo
        return 200, {"url": self._repo_url(repo_id), "name": repo_id, "id": repo_id}, {}

    def _repo_url(self, repo_id: str) -> str:
        return f"{self.url}/datasets/{repo_id}"

    def _info(self, repo: Repo, revision: str) -> tuple[int, Any, dict[str, str]]:
        self._maybe_fail("info", "before")
        commit = repo.at(revision)
        if commit is None:
            return 404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"}
        return (
            200,
            {
                "_id": repo.repo_id,
                "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": commit.oid,
                "private": repo.private,
                "lastModified": commit.date.isoformat().replace("+00:00", "Z"),
                "createdAt": repo.commits[0].date.isoformat().replace("+00:00", "Z"),
                "siblings": [{"rfilename": p} for p in sorted(commit.tree)],
                "tags": [],
            },
            {},
        )

    def _tree(
        self, commit: Commit, prefix: str, query: dict[str, list[str]]
    ) -> tuple[int, Any, dict[str, str]]:
        self._maybe_fail("tree", "before")
        recursive = (query.get("recursive") or ["false"])[0].lower() == "true"
        prefix = prefix.strip("/")
        under = [p for p in commit.tree if not prefix or p.startswith(prefix + "/")]
        if prefix and not under:
            return 404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"}
        entries: dict[str, dict[str, Any]] = {}
        for p in sorted(under):
            rel = p[len(prefix) + 1 :] if prefix else p
            parts = rel.split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(filter(None, [prefix, *parts[:depth]]))
                if recursive or depth == 1:
                    entries.setdefault(
                        folder,
                        {
                            "type": "directory",
                            "oid": hashlib.sha1(folder.encode()).hexdigest(),
                            "path": folder,
                        },
                    )
            if recursive or len(parts) == 1:
                blob = commit.tree[p]
                entry: dict[str, Any] = {"type": "file", "oid": blob.oid, "size": blob.size, "path": p}
                if blob.lfs_sha256:
                    entry["lfs"] = {
                        "oid": blob.lfs_sha256,
                        "size": blob.size,
                        "pointerSize": len(lfs_pointer(blob.lfs_sha256, blob.size)),
                    }
                entries[p] = entry
        return 200, list(entries.values()), {}

    def _commit_list(self, repo: Repo, commit: Commit) -> tuple[int, Any, dict[str, str]]:
        upto = repo.commits[: repo.commits.index(commit) + 1]
        return (
            200,
            [
                {
                    "id": c.oid,
                    "title": c.title,
                    "message": c.description,
                    "date": c.date.isoformat().replace("+00:00", "Z"),
                    "authors": [{"user": "reasonmed-test"}],
                }
                for c in reversed(upto)
            ],
            {},
        )

    def _validate_yaml(self, payload: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        content = payload.get("content", "")
        if content.startswith("---\n"):
            try:
                front = yaml.safe_load(content.split("---\n")[1])
            except yaml.YAMLError as exc:
                return 400, {"errors": [{"message": f"YAML: {exc}"}], "warnings": []}, {}
            for config in (front or {}).get("configs", []):
                if "config_name" not in config or "data_files" not in config:
                    return 400, {"errors": [{"message": "configs: config_name and data_files required"}]}, {}
        return 200, {"errors": [], "warnings": []}, {}

    def _preupload(self, commit: Commit, payload: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        self._maybe_fail("preupload", "before")
        patterns = (
            [
                line.split()[0]
                for line in self._content(commit.tree[".gitattributes"]).decode().splitlines()
                if "filter=lfs" in line
            ]
            if ".gitattributes" in commit.tree
            else []
        )
        answer = []
        for f in payload["files"]:
            name = f["path"].rsplit("/", 1)[-1]
            lfs = f["size"] > LFS_OVER or any(fnmatch.fnmatch(name, pat) for pat in patterns)
            entry: dict[str, Any] = {
                "path": f["path"],
                "uploadMode": "lfs" if lfs else "regular",
                "shouldIgnore": False,
            }
            blob = commit.tree.get(f["path"])
            if blob is not None:
                entry["oid"] = blob.lfs_sha256 or blob.oid
            answer.append(entry)
        return 200, {"files": answer, "commitOid": commit.oid}, {}

    def _lfs_batch(self, repo_id: str, payload: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        self._maybe_fail("lfs-batch", "before")
        if repo_id not in self.repos:
            return 404, {"message": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
        assert payload["operation"] == "upload" and "basic" in payload["transfers"], payload
        objects = []
        for obj in payload["objects"]:
            item: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs:
                item["actions"] = {"upload": {"href": f"{self.url}/lfs-upload/{obj['oid']}"}}
            objects.append(item)
        return (
            200,
            {"transfer": "basic", "objects": objects},
            {"Content-Type": "application/vnd.git-lfs+json"},
        )

    def _lfs_put(self, sha256: str, body: bytes) -> tuple[int, Any, dict[str, str]]:
        self._maybe_fail("lfs-upload", "before")
        if hashlib.sha256(body).hexdigest() != sha256:
            return 400, {"error": "sha256 mismatch"}, {}
        self.lfs[sha256] = body
        self.lfs_uploads.append(sha256)
        return 200, b"", {}

    def _resolve(self, repo_id: str, revision: str, path: str) -> tuple[int, Any, dict[str, str]]:
        repo = self.repos.get(repo_id)
        if repo is None:
            return 404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
        commit = repo.at(revision)
        if commit is None:
            return 404, {"error": "Invalid rev id"}, {"X-Error-Code": "RevisionNotFound"}
        blob = commit.tree.get(path)
        if blob is None:
            return 404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"}
        return 200, self._content(blob), {"X-Repo-Commit": commit.oid, "ETag": f'"{blob.oid}"'}

    def _commit(self, repo: Repo, body: bytes) -> tuple[int, Any, dict[str, str]]:
        self._maybe_fail("commit", "before")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = lines[0]
        assert header["key"] == "header", header
        value = header["value"]
        parent = value.get("parentCommit")
        if parent is not None and not repo.head.oid.startswith(parent):
            return 412, {"error": "A commit has happened since. Please refresh and try again."}, {}
        tree = dict(repo.head.tree)
        operations: list[tuple[str, str]] = []
        for line in lines[1:]:
            key, op = line["key"], line["value"]
            operations.append((key, op["path"]))
            if key == "file":
                assert op["encoding"] == "base64", op
                data = base64.b64decode(op["content"])
                tree[op["path"]] = Blob(data, size=len(data))
            elif key == "lfsFile":
                if op["oid"] not in self.lfs:
                    return 422, {"error": f"Your push was rejected: LFS object {op['oid']} is missing"}, {}
                tree[op["path"]] = Blob(None, lfs_sha256=op["oid"], size=len(self.lfs[op["oid"]]))
            elif key == "deletedFile":
                if op["path"] not in tree:
                    return (
                        404,
                        {"error": "A file with this name doesn't exist"},
                        {"X-Error-Code": "EntryNotFound"},
                    )
                del tree[op["path"]]
            elif key == "deletedFolder":
                folder = op["path"].rstrip("/") + "/"
                for p in [p for p in tree if p.startswith(folder)]:
                    del tree[p]
            else:
                return 400, {"error": f"unknown operation {key}"}, {}
        commit = self._new_commit(
            repo.head.oid, value["summary"], value.get("description", ""), operations, tree
        )
        repo.commits.append(commit)
        self._maybe_fail("commit", "after")
        return (
            200,
            {
                "success": True,
                "commitOid": commit.oid,
                "commitUrl": f"{self._repo_url(repo.repo_id)}/commit/{commit.oid}",
            },
            {},
        )

    def _new_commit(
        self,
        parent: str | None,
        title: str,
        description: str,
        operations: list[tuple[str, str]],
        tree: dict[str, Blob],
    ) -> Commit:
        self._counter += 1
        oid = hashlib.sha1(f"{self._counter}:{parent}:{title}".encode()).hexdigest()
        return Commit(oid, parent, title, description, datetime.now(UTC), operations, tree)


class _Fail(Exception):
    """A planned failure: answered with a 500."""


# -------------------------------------------------------------------- the stand-in, checked with the real client

TOKEN = "hf_standinCHECKtoken0123456789abcdef"


@pytest.fixture
def hub_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[HubStandIn, Any]]:
    """The stand-in and a real ``HfApi`` aimed at it (offline mode off for huggingface_hub, Xet off, the
    token from HF_TOKEN, no token file)."""
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-file"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with HubStandIn(token=TOKEN) as hub:
        yield hub, huggingface_hub.HfApi(endpoint=hub.url)


def test_the_real_client_creates_commits_lists_and_reads_back(hub_client: tuple[HubStandIn, Any]) -> None:
    from huggingface_hub import CommitOperationAdd

    hub, api = hub_client
    api.create_repo("owner/data", repo_type="dataset", private=True, exist_ok=True)
    api.create_repo("owner/data", repo_type="dataset", private=True, exist_ok=True)  # 409: exists, fine
    head = api.repo_info("owner/data", repo_type="dataset").sha
    big = bytes(range(256)) * 100
    info = api.create_commit(
        "owner/data",
        [
            CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=b"---\nconfigs: []\n---\n# x\n"),
            CommitOperationAdd(path_in_repo="v1/data.parquet", path_or_fileobj=big),
            CommitOperationAdd(path_in_repo="v1/notes.txt", path_or_fileobj=b"hello"),
        ],
        commit_message="first",
        repo_type="dataset",
        parent_commit=head,
    )
    assert hub.lfs_uploads == [hashlib.sha256(big).hexdigest()]  # the Parquet file went to LFS
    assert api.list_repo_files("owner/data", repo_type="dataset") == [
        ".gitattributes",
        "README.md",
        "v1/data.parquet",
        "v1/notes.txt",
    ]
    assert [c.title for c in api.list_repo_commits("owner/data", repo_type="dataset")] == [
        "first",
        "initial commit",
    ]
    assert hub.files("owner/data")["v1/data.parquet"] == big
    assert info.oid == hub.commits("owner/data")[-1].oid
    assert ("lfsFile", "v1/data.parquet") in hub.commits("owner/data")[-1].operations
    assert ("file", "v1/notes.txt") in hub.commits("owner/data")[-1].operations
    # The same file again: the LFS batch answers "present", nothing is uploaded twice.
    api.create_commit(
        "owner/data",
        [CommitOperationAdd(path_in_repo="v2/data.parquet", path_or_fileobj=big)],
        commit_message="second",
        repo_type="dataset",
    )
    assert len(hub.lfs_uploads) == 1
    assert {f"Bearer {TOKEN}"} == hub.authorizations


def test_a_stale_parent_commit_is_refused_with_412(hub_client: tuple[HubStandIn, Any]) -> None:
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    hub, api = hub_client
    api.create_repo("owner/data", repo_type="dataset")
    stale = api.repo_info("owner/data", repo_type="dataset").sha
    api.create_commit(
        "owner/data", [CommitOperationAdd("a.txt", b"a")], commit_message="a", repo_type="dataset"
    )
    with pytest.raises(HfHubHTTPError) as caught:
        api.create_commit(
            "owner/data",
            [CommitOperationAdd("b.txt", b"b")],
            commit_message="b",
            repo_type="dataset",
            parent_commit=stale,
        )
    assert caught.value.response.status_code == 412
    assert [c.title for c in hub.commits("owner/data")] == ["initial commit", "a"]


def test_without_the_token_the_stand_in_answers_401(
    hub_client: tuple[HubStandIn, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    _, api = hub_client
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HfHubHTTPError) as caught:
        api.create_repo("owner/data", repo_type="dataset")
    assert caught.value.response.status_code == 401
