"""Reading a small text file a user names (a pipeline file, a prompt template) without trusting what the
name points at: only a regular file (a FIFO would block for ever, ``/dev/zero`` never ends), opened
without blocking, refused past a size cap before and while it is read."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class FileRefused(ValueError):
    """The file cannot be read as asked; the message is one line, to follow the file's name."""


def read_small_text(path: Path, max_bytes: int, *, follow_symlinks: bool = True) -> str:
    """The UTF-8 text of the regular file at ``path``, at most ``max_bytes`` long."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileRefused("file not found") from None
    except OSError as exc:
        raise FileRefused(f"cannot open it ({exc.strerror or exc})") from None
    with open(fd, "rb") as f:  # buffered: read(n) reads on until n bytes or the end
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused("not a regular file (a folder, FIFO, device or socket)")
        if st.st_size > max_bytes:
            raise FileRefused(f"{st.st_size:,} bytes, more than the {max_bytes:,} allowed")
        data = f.read(max_bytes + 1)  # the size can change between fstat and read
    if len(data) > max_bytes:
        raise FileRefused(f"more than the {max_bytes:,} bytes allowed")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"not UTF-8 text (byte {exc.start:,})") from None
