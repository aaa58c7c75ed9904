"""What an S3 bucket name and key may be, for the nightly inputs and the export target alike.

A key is a name, not a path, but every tool that mirrors a bucket to disk (and a person reading a listing)
takes ``/`` as a folder separator: a key with a ``..`` or ``.`` segment, an empty segment, a leading ``/``
or a NUL names something other than what it seems to, so neither side accepts one.
"""

from __future__ import annotations

import re

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")


def bucket_problem(bucket: str) -> str | None:
    """Why ``bucket`` is not a valid S3 bucket name, or None."""
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        return f"{bucket!r} is not a valid S3 bucket name"
    return None


def key_problem(key: str) -> str | None:
    """Why ``key`` (or a key prefix without its trailing ``/``) may not be used, or None."""
    if not key or key.startswith("/") or "\x00" in key:
        return "key is empty, absolute or holds a NUL"
    if any(part in ("", ".", "..") for part in key.split("/")):
        return "key has an empty, '.' or '..' path segment"
    return None
