"""The cap on what a question keeps besides its fields: ``questions.metadata`` never grows past a limit.

Every loader keeps a record's other fields (MedMCQA's explanation, a Parquet file's extra columns) as
metadata. They are nobody's input to the pipeline, so a record may not make the database carry them
without bound: fields are kept in order while they fit ``Limits.max_metadata_bytes`` (their JSON text,
UTF-8), the rest are left out and named under ``DROPPED``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

DROPPED = "dropped_over_cap"  # {"fields": N, "names": [up to NAMES_KEPT names]}
NAMES_KEPT = 10
_NAME_CHARS = 100
_RESERVE = 1200  # room left for the DROPPED note (ten plain names); names are removed if they need more
_JSON = json.JSONEncoder(ensure_ascii=False, default=str)


def _size(value: Any) -> int:
    return len(_JSON.encode(value).encode("utf-8", "surrogatepass"))


def cap_metadata(metadata: Mapping[str, Any], max_bytes: int) -> dict[str, Any]:
    """``metadata`` if its JSON text fits ``max_bytes``, else the fields that fit and a ``DROPPED`` note."""
    if _size(dict(metadata)) <= max_bytes:
        return dict(metadata)
    budget = max(0, max_bytes - _RESERVE)
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    used = 2  # {}
    for key, value in metadata.items():
        size = _size(key) + 1 + _size(value) + 1
        if used + size <= budget:
            kept[key] = value
            used += size
        else:
            dropped.append(key)
    names = [k[:_NAME_CHARS] for k in dropped[:NAMES_KEPT]]
    kept[DROPPED] = {"fields": len(dropped), "names": names}
    while names and _size(kept) > max_bytes:
        names.pop()
    return kept
