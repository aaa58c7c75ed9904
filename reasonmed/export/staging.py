"""What every export target shares: the manifest's name, the error a target refuses with, and the order
in which a staged version's files are published (the manifest last, so a reader never sees a version
without all its files)."""

from __future__ import annotations

from pathlib import Path

MANIFEST = "manifest.json"


class ExportTargetError(RuntimeError):
    """The target refuses the export (e.g. the version folder exists already)."""


def staged_files(staging: Path) -> list[Path]:
    """Every file in the staging folder, manifest last."""
    files = sorted(p for p in staging.rglob("*") if p.is_file())
    return [p for p in files if p.name != MANIFEST or p.parent != staging] + [
        p for p in files if p.name == MANIFEST and p.parent == staging
    ]
