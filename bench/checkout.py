"""An earlier commit checked out beside the repository, for benchmarks that compare it with this tree."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """A checkout of ``ref`` (``git worktree``) in a temporary folder, removed afterwards."""
    where = Path(tempfile.mkdtemp(prefix="reasonmed-before-")) / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(where), ref], check=True)
    try:
        yield where
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(where)], check=False)
