"""Questions from Hugging Face ``datasets``: a ``save_to_disk`` folder, or a dataset on the Hub (online).

``--format datasets`` is a generic format, read like ``jsonl``, ``csv`` and ``parquet``: the columns are
named by ``--map`` (unmapped fields use the column of the same name), the other columns become metadata,
and a bad row is an error row while the rows around it are stored. A ``ClassLabel`` column holds its label
names, not their indices (an answer column of ``ClassLabel(names=["A", "B", ...])`` reads as ``"B"``).

The source is

- a folder written by ``Dataset.save_to_disk`` (``state.json``, ``dataset_info.json`` and Arrow files),
  or by ``DatasetDict.save_to_disk`` (``dataset_dict.json`` and a folder per split: ``--split`` picks
  one), read with ``datasets.load_from_disk``;
- ``hf://datasets/OWNER/NAME`` (or ``...NAME@REVISION``): ``datasets.load_dataset(OWNER/NAME,
  split=--split, revision=REVISION)``, downloaded once into the datasets cache (online; the token, for
  a private or gated dataset, is huggingface_hub's own: HF_TOKEN).

Either way the rows are read from memory-mapped Arrow files, a few at a time, each one measured in Arrow
before it becomes Python objects, as Parquet rows are (``reasonmed.ingest.parquet``): a row over the
record limit is an error row and is never converted. The source's identity (``ingest_files.sha256``) is
the sha256 of its Arrow files, so the same data is ingested once, wherever it was read from.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reasonmed.extras import require
from reasonmed.ingest.parquet import BATCH_ROWS, _rows, decoded_sizes
from reasonmed.ingest.readers import FileFormatError, Limits, RawRecord

HUB_PREFIXES = ("hf://datasets/", "hf:/datasets/")  # the second: the same text once a Path has printed it
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class HubDataset:
    repo_id: str
    revision: str | None

    @property
    def label(self) -> str:
        return f"hf://datasets/{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


def hub_dataset(text: str) -> HubDataset | None:
    """The Hub dataset ``text`` names (``hf://datasets/OWNER/NAME[@REVISION]``), None when it names none;
    FileFormatError for an ``hf://`` text that is not one."""
    prefix = next((p for p in HUB_PREFIXES if text.startswith(p)), None)
    if prefix is None:
        if text.startswith(("hf://", "hf:/")):
            raise FileFormatError(f"{text}: only datasets are read from the Hub: hf://datasets/OWNER/NAME")
        return None
    repo, at, revision = text[len(prefix) :].rstrip("/").partition("@")
    parts = repo.split("/")
    if (
        len(parts) != 2
        or not all(_NAME.fullmatch(p) and "--" not in p and ".." not in p for p in parts)
        or (at and not revision.strip())
    ):
        raise FileFormatError(
            f"{text}: expected hf://datasets/OWNER/NAME or hf://datasets/OWNER/NAME@REVISION "
            "(--split picks the split)"
        )
    return HubDataset(repo, revision or None)


def is_datasets_folder(path: Path) -> bool:
    """Whether ``path`` is a folder ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk`` wrote."""
    return path.is_dir() and (
        ((path / "state.json").is_file() and (path / "dataset_info.json").is_file())
        or (path / "dataset_dict.json").is_file()
    )


@dataclass(frozen=True)
class OpenedDataset:
    label: str  # what the ingest tables and messages call the source
    dataset: Any  # a datasets.Dataset, memory-mapped
    sha256: str

    @property
    def rows(self) -> int:
        return int(self.dataset.num_rows)


def _first_line(exc: BaseException) -> str:
    lines = [s.strip() for s in str(exc).splitlines() if s.strip()]
    return f"{type(exc).__name__}: {lines[0][:300] if lines else ''}"


def open_source(source: str | Path, split: str) -> OpenedDataset:
    """The dataset ``source`` names, its ``split`` chosen where it has several. FileNotFoundError for a
    folder that does not exist, FileFormatError (one line) for anything that cannot be read as a dataset."""
    text = str(source)
    hub = hub_dataset(text)
    if hub is not None:
        datasets = require("datasets", "hub")
        try:
            ds = datasets.load_dataset(hub.repo_id, split=split, revision=hub.revision)
        except Exception as exc:  # not found, no such split, offline, gated: one line, the file fails alone
            raise FileFormatError(
                f"{hub.label} (split {split!r}) cannot be loaded: {_first_line(exc)}"
            ) from None
        return OpenedDataset(hub.label, ds, dataset_sha256(ds))
    path = Path(text)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such folder")
    if not is_datasets_folder(path):
        raise FileFormatError(
            f"{path}: not a datasets folder (Dataset.save_to_disk writes state.json and dataset_info.json, "
            "DatasetDict.save_to_disk dataset_dict.json)"
        )
    datasets = require("datasets", "hub")  # only now: a file that is not a folder never imports datasets
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise FileFormatError(f"{path}: cannot be read as a datasets folder ({_first_line(exc)})") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise FileFormatError(
                f"{path}: no split {split!r} in this DatasetDict (it has {', '.join(loaded) or 'none'}): "
                "pass --split NAME"
            )
        loaded = loaded[split]
    return OpenedDataset(str(path), loaded, dataset_sha256(loaded))


def _arrow_table(ds: Any) -> Any:
    """The ``pyarrow.Table`` under a Dataset (memory-mapped: nothing is read until a value is)."""
    if getattr(ds, "_indices", None) is not None:
        raise FileFormatError(
            "the dataset has an indices mapping (a select or shuffle not written out): save it with "
            "save_to_disk, which writes the rows themselves, and ingest that folder"
        )
    data = ds.data
    return getattr(data, "table", data)


def dataset_sha256(ds: Any) -> str:
    """sha256 of the dataset's Arrow files in order (of its batches in Arrow IPC form if it has none)."""
    h = hashlib.sha256()
    files = [f["filename"] for f in ds.cache_files]
    if files:
        for name in files:
            with open(name, "rb") as f:
                while chunk := f.read(_HASH_CHUNK):
                    h.update(chunk)
        return h.hexdigest()
    import pyarrow as pa

    table = _arrow_table(ds)
    for batch in table.to_batches():
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        h.update(sink.getvalue())
    return h.hexdigest()


def class_label_names(ds: Any) -> dict[str, list[str]]:
    """Column -> label names, for each ``ClassLabel`` column."""
    datasets = require("datasets", "hub")
    return {
        name: list(feature.names)
        for name, feature in ds.features.items()
        if isinstance(feature, datasets.ClassLabel) and feature.names
    }


def iter_dataset_rows(ds: Any, columns: list[str], limits: Limits | None = None) -> Iterator[RawRecord]:
    """The rows of ``columns`` (each a dict, a ClassLabel as its name), refs counting rows from 1, at most
    ``BATCH_ROWS`` decoded at a time and each measured first: a row over the record limit is an error."""
    limits = limits or Limits()
    table = _arrow_table(ds)
    present = set(table.column_names)
    table = table.select([c for c in columns if c in present])
    labels = {c: names for c, names in class_label_names(ds).items() if c in present}
    first = 1
    for batch in table.to_batches():  # views of the memory-mapped record batches
        for start in range(0, batch.num_rows, BATCH_ROWS):
            part = batch.slice(start, BATCH_ROWS)
            sizes = np.zeros(part.num_rows, np.int64)
            for column in part.columns:
                sizes += decoded_sizes(column)
            for rec in _rows(part, sizes, first, limits):
                if labels and isinstance(rec.value, dict):
                    for column, names in labels.items():
                        value = rec.value.get(column)
                        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
                            rec.value[column] = names[value]
                yield rec
            first += part.num_rows
