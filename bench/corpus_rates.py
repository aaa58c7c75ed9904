"""Parse rates of the hand-labelled corpora of real model output, without an engine.

Two corpora, told apart by their files:

- ``tests/fixtures/real_answers/answers.jsonl``: real LLMs' answers to medical exam questions, each labelled
  by hand with the option it finally commits to (or none). Prints agreement of
  ``extract_answer(clean_reasoning(output))`` (exactly as the pipeline reads a path) with the labels, misses
  (a committed answer read as none) and wrong commits (an option read where the label is another or none),
  per model family, per answer form and per split, and the extractor's cost per KB of text.
  ``--before REF`` also runs the parser of an earlier commit on the same records, in the same process.
- ``tests/fixtures/real_outputs/<role>.jsonl`` (``bench/real_engine.py --record``): SmolLM2-135M's output per
  role; prints how many outputs the parser and the hand review call usable.

    python bench/corpus_rates.py tests/fixtures/real_answers --before c8e0406 --show dev
    python bench/corpus_rates.py tests/fixtures/real_outputs
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from reasonmed import parsing  # noqa: E402

ROLES = ("generator", "verifier", "ranker", "summarizer")
Reader = Callable[[str, Mapping[str, str]], "str | None"]


# --------------------------------------------------------------------------- real answers


@dataclass
class Tally:
    n: int = 0
    agree: int = 0
    missed: int = 0  # labelled with an option, read as none
    wrong: int = 0  # read as an option the label does not name (another option, or the label is none)

    def add(self, label: str | None, got: str | None) -> None:
        self.n += 1
        self.agree += got == label
        self.missed += label is not None and got is None
        self.wrong += got is not None and got != label

    def cells(self) -> str:
        return f"{self.n:>6}{self.agree:>7}{self.agree / self.n:>8.1%}{self.missed:>7}{self.wrong:>7}"


HEADER = f"{'':<34}{'n':>6}{'agree':>7}{'rate':>8}{'miss':>7}{'wrong':>7}"


def parser_at(ref: str) -> ModuleType:
    """``reasonmed/parsing.py`` as it was at ``ref``, loaded as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{ref}:reasonmed/parsing.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"parsing_{ref}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"parsing_{ref}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def reader_of(module: ModuleType) -> Reader:
    def read(text: str, options: Mapping[str, str]) -> str | None:
        result: str | None = module.extract_answer(module.clean_reasoning(text), options)
        return result

    return read


def cost_per_kb(module: ModuleType, recs: list[dict[str, Any]], repeats: int = 5) -> float:
    """Microseconds of ``extract_answer`` per KB of cleaned text: the best of ``repeats`` passes."""
    cleaned = [(module.clean_reasoning(r["output"]), r["options"]) for r in recs]
    kb = sum(len(t.encode()) for t, _ in cleaned) / 1024
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for text, options in cleaned:
            module.extract_answer(text, options)
        best = min(best, time.perf_counter() - start)
    return best * 1e6 / kb


def report_answers(path: Path, before: str | None, show: str | None) -> None:
    recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    readers: dict[str, tuple[ModuleType, Reader]] = {}
    if before:
        old = parser_at(before)
        readers[f"before ({before})"] = (old, reader_of(old))
    readers["now"] = (parsing, reader_of(parsing))
    families = sorted({r["family"] for r in recs})
    print(f"{len(recs)} real answers, {len(families)} model families: {path}")
    for name, (module, read) in readers.items():
        groups: dict[str, Tally] = defaultdict(Tally)
        for r in recs:
            got = read(r["output"], r["options"])
            for group in ("all", f"split {r['split']}", f"family {r['family']}", f"form {r['form']}"):
                groups[group].add(r["label"], got)
            if show and name == "now" and got != r["label"] and show in ("all", r["split"]):
                tail = " ".join(r["output"].split())[-160:]
                print(f"  {r['id']} [{r['family']}/{r['form']}] label={r['label']} got={got}: ...{tail}")
        print(f"\n== parser {name}: extract_answer {cost_per_kb(module, recs):.1f} us per KB")
        print(HEADER)
        for group in sorted(groups, key=lambda g: (g != "all", not g.startswith("split"), g)):
            print(f"{group[:34]:<34}{groups[group].cells()}")


# --------------------------------------------------------------------------- SmolLM2 outputs per role


def parser_usable(role: str, rec: dict[str, Any]) -> bool:
    """The same check ``bench/real_engine.py`` applies to a fresh output."""
    text = rec["output"]
    if role == "generator":
        return parsing.extract_answer(text, rec["question"]["options"]) is not None
    if role == "verifier":
        return parsing.parse_verdict(text) is not None
    if role == "ranker":
        return parsing.parse_score(text) is not None
    return parsing.parse_summary(text) is not None


def reviewed_usable(rec: dict[str, Any]) -> bool | None:
    if "expected" not in rec:
        return None
    expected = rec["expected"]
    return expected is not None and expected is not False  # a score of 0 is usable


def report_roles(corpus: Path) -> None:
    print(f"{'role':<18}{'outputs':>8}{'parser':>8}{'rate':>7}{'review':>8}{'rate':>7}")
    for role in ROLES:
        path = corpus / f"{role}.jsonl"
        if not path.is_file():
            continue
        recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        modes = [False, True] if role in {"verifier", "ranker"} else [False]
        for structured in modes:
            group = [r for r in recs if r["structured"] == structured]
            if not group:
                continue
            name = role + ("+schema" if structured else "")
            by_parser = sum(parser_usable(role, r) for r in group)
            reviews = [reviewed_usable(r) for r in group]
            reviewed = [v for v in reviews if v is not None]
            review_cell = (
                f"{sum(reviewed):>8}{sum(reviewed) / len(reviewed):>7.0%}"
                if reviewed
                else f"{'-':>8}{'-':>7}"
            )
            print(f"{name:<18}{len(group):>8}{by_parser:>8}{by_parser / len(group):>7.0%}{review_cell}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, help="a folder holding answers.jsonl, or <role>.jsonl files")
    ap.add_argument("--before", metavar="REF", help="also run reasonmed/parsing.py as of this git commit")
    ap.add_argument(
        "--show", choices=("dev", "holdout", "all"), help="list the records the parser reads otherwise"
    )
    args = ap.parse_args()
    answers = args.corpus / "answers.jsonl"
    if answers.is_file():
        report_answers(answers, args.before, args.show)
    else:
        report_roles(args.corpus)


if __name__ == "__main__":
    main()
