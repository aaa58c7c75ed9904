"""Which named format a file looks like: the hint behind "every record was rejected; try --format X"."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

from reasonmed.ingest.hf_datasets import hub_dataset, is_datasets_folder
from reasonmed.ingest.loaders import FileFormatError, load

# The named formats, tried in this order; the generic ones need --map, so they are never guessed.
NAMED_FORMATS = ("pubmedqa", "medqa", "medmcqa", "mmlu")
SAMPLE = 20


def _fits(path: Path, fmt: str) -> bool:
    try:
        records = list(islice(load(path, fmt), SAMPLE))
    except (FileFormatError, ValueError, UnicodeDecodeError, OSError):
        return False
    return bool(records) and all(r.error is None for r in records)


def guess_format(path: Path, *, besides: str | None = None) -> str | None:
    """The first named format whose loader reads the file's first records without a rejection; "datasets"
    for a datasets folder (save_to_disk) or an hf://datasets/ address."""
    try:
        hub = hub_dataset(str(path))
    except FileFormatError:
        return None
    if hub is not None or is_datasets_folder(path):
        return None if besides == "datasets" else "datasets"
    for fmt in NAMED_FORMATS:
        if fmt != besides and _fits(path, fmt):
            return fmt
    return None
