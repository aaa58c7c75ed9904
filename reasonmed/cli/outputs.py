"""The one check every ``--out`` path passes before a command starts: it must be somewhere to write.

A dangling symbolic link exists as a name but not as a place: ``mkdir`` fails on it with a traceback, and
opening it for writing creates whatever file it points at, wherever that is. Refused in one line.
"""

from __future__ import annotations

from pathlib import Path

from reasonmed.mistake import Mistake


def check_out(path: Path | str, option: str = "--out") -> Path:
    """``path``, or a Mistake when it is a symbolic link to nothing."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise Mistake(
            f"{option} {p} is a symbolic link to {p.readlink()}, which does not exist; "
            "give an existing folder or a new path"
        )
    return p
