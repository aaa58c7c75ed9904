"""Hub addresses, endpoints and the repository's root card, without a Hub (``reasonmed.export.hub``,
``reasonmed.ingest.hf_datasets``, ``reasonmed.export.card.hub_repo_card``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reasonmed.export.card import hub_repo_card, render_hub_card
from reasonmed.export.hub import HubTarget, check_endpoint, parse_hub_repo, version_folders
from reasonmed.export.staging import ExportTargetError
from reasonmed.export.targets import parse_target
from reasonmed.ingest.hf_datasets import HubDataset, hub_dataset
from reasonmed.ingest.readers import FileFormatError


@pytest.mark.parametrize(
    ("text", "repo"),
    [
        ("hf://datasets/owner/name", "owner/name"),
        ("hf://datasets/owner/name/", "owner/name"),
        ("hf://datasets/Org.AI/med_cot-v2.1", "Org.AI/med_cot-v2.1"),
    ],
)
def test_hub_export_addresses(text: str, repo: str) -> None:
    assert parse_hub_repo(text) == repo
    target = parse_target(text, hub_endpoint="http://127.0.0.1:9")
    assert isinstance(target, HubTarget)
    assert (target.repo_id, target.endpoint, target.location("v0003")) == (
        repo,
        "http://127.0.0.1:9",
        f"hf://datasets/{repo}/v0003",
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("hf://datasets/owner", "expected hf://datasets/OWNER/NAME"),
        ("hf://datasets/a/b/c", "no folder inside it"),
        ("hf://owner/name", "only dataset repositories"),
        ("hf://datasets/a--b/c", "not a Hub name"),
        ("hf://datasets/a/b..c", "not a Hub name"),
        ("hf://datasets/a/b.git", "not a Hub name"),
        ("hf://datasets/-a/b", "not a Hub name"),
        ("hf://datasets/a/" + "b" * 97, "not a Hub name"),
    ],
)
def test_bad_hub_export_addresses_are_one_line(text: str, fragment: str) -> None:
    with pytest.raises(ExportTargetError) as caught:
        parse_hub_repo(text)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_hub_endpoints() -> None:
    assert check_endpoint(None) is None
    assert check_endpoint("https://hub.example.org/") == "https://hub.example.org"
    assert check_endpoint("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    for bad in (
        "hub.example.org",
        "ftp://hub.example.org",
        "https://user:secret@hub.example.org",
        "https://",
    ):
        with pytest.raises(ExportTargetError, match="no credentials"):
            check_endpoint(bad)


def test_version_folders_are_found_and_ordered_by_number() -> None:
    paths = [
        "README.md",
        "v0010/manifest.json",
        "v0002/CoTMed/data/a.parquet",
        "v0003",
        "v1/x",
        "vx/y",
        "v12345/m",
    ]
    assert version_folders(paths) == ["v0002", "v0010", "v12345"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hf://datasets/owner/name", HubDataset("owner/name", None)),
        ("hf://datasets/owner/name@v1.0", HubDataset("owner/name", "v1.0")),
        (
            str(Path("hf://datasets/owner/name@refs/pr/1")),
            HubDataset("owner/name", "refs/pr/1"),
        ),  # as a Path prints it
        ("data/questions.json", None),
        ("/abs/folder", None),
    ],
)
def test_hub_dataset_addresses(text: str, expected: HubDataset | None) -> None:
    assert hub_dataset(text) == expected


@pytest.mark.parametrize(
    "text", ["hf://datasets/owner", "hf://datasets/owner/name@", "hf://datasets/a/b/c", "hf://models/a/b"]
)
def test_bad_hub_dataset_addresses(text: str) -> None:
    with pytest.raises(FileFormatError):
        hub_dataset(text)


@pytest.mark.parametrize("formats", [["parquet", "jsonl"], ["jsonl"]])
def test_the_repository_card_points_the_configs_into_the_latest_version(formats: list[str]) -> None:
    version_card = render_hub_card(
        version=7, rows=3, by_source={"pubmedqa": 3}, layout="instruction", formats=formats
    )
    card = hub_repo_card(version_card, version_dir="v0007", repo_id="org/med", versions=["v0001", "v0007"])
    before = yaml.safe_load(version_card.split("---\n")[1])
    after = yaml.safe_load(card.split("---\n")[1])
    parquet = "parquet" in formats
    assert [c["data_files"] for c in after["configs"]] == [
        [
            {
                "split": "train",
                "path": f"v0007/{name}/data/train-*" if parquet else f"v0007/{name}/{name}.jsonl",
            }
        ]
        for name in ("ReasonMed", "CoTMed", "ResponseMed")
    ]
    assert after["license_link"] == "v0007/LICENSE.md"
    unchanged = {k: v for k, v in before.items() if k not in ("configs", "license_link")}
    assert {k: v for k, v in after.items() if k not in ("configs", "license_link")} == unchanged
    body = card.split("---\n", 2)[2]
    assert body.lstrip().startswith("# ReasonMed pipeline export v0007\n")
    assert 'load_dataset("org/med", "CoTMed", split="train")' in body and "path/to/" not in body
    assert "(`v0001/`, `v0007/`)" in body
