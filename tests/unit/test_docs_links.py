"""The docs point at what exists: every relative link of README.md and docs/*.md names a file of the
repository, and the architecture page's one-hop answers name functions that live where it says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def relative_links(text: str) -> list[str]:
    return [t for t in LINK.findall(text) if "://" not in t and not t.startswith("mailto:")]


def test_the_link_reader_finds_what_it_should() -> None:
    text = "see [a](docs/a.md), [b](../reasonmed/tiers.py#L3), [web](https://x.org/y) and [top](#layout)"
    assert relative_links(text) == ["docs/a.md", "../reasonmed/tiers.py"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_names_a_file_that_exists(doc: Path) -> None:
    missing = [t for t in relative_links(doc.read_text(encoding="utf-8")) if not (doc.parent / t).exists()]
    assert missing == [], f"{doc.relative_to(REPO)} links to what is not there: {missing}"


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (
            "reasonmed/tiers.py",
            ["assign_tier", "passes", "ranked", "medium_keep", "difficult_source", "difficult_keep"],
        ),
        (
            "reasonmed/db/stage_writes.py",
            ["write_paths", "write_verdicts", "write_scores", "write_resolution", "write_summaries"],
        ),
        ("reasonmed/llm/registry.py", ["class LLMRegistry", "def make_backend"]),
        ("reasonmed/pipeline/build.py", ["class BuildLoop", "def open_endpoints"]),
        ("reasonmed/jobs/build.py", ["def run_build", "def open_database"]),
    ],
)
def test_the_architecture_page_names_what_is_there(module: str, names: list[str]) -> None:
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    source = (REPO / module).read_text(encoding="utf-8")
    assert module in page
    for name in names:
        bare = name.split()[-1]
        assert bare in page, f"docs/architecture.md no longer names {bare}"
        assert re.search(rf"^(async )?(def|class) {re.escape(bare)}\b", source, re.M) or name in source, (
            f"{module} has no {name}"
        )
