"""Parse rates of a recorded real-output corpus (``bench/real_engine.py --record DIR``), without an engine.

For each role (verifier and ranker split into free and schema-constrained output) it prints how many
outputs the project's parser reads as usable today and how many the hand review says are usable (records
with an ``expected`` field; see ``tests/unit/test_parsing_real.py``). Re-run it after a parser change.

    python bench/corpus_rates.py tests/fixtures/real_outputs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reasonmed.parsing import extract_answer, parse_score, parse_summary, parse_verdict  # noqa: E402

ROLES = ("generator", "verifier", "ranker", "summarizer")


def parser_usable(role: str, rec: dict[str, Any]) -> bool:
    """The same check ``bench/real_engine.py`` applies to a fresh output."""
    text = rec["output"]
    if role == "generator":
        return extract_answer(text, rec["question"]["options"]) is not None
    if role == "verifier":
        return parse_verdict(text) is not None
    if role == "ranker":
        return parse_score(text) is not None
    return parse_summary(text) is not None


def reviewed_usable(rec: dict[str, Any]) -> bool | None:
    if "expected" not in rec:
        return None
    expected = rec["expected"]
    return expected is not None and expected is not False  # a score of 0 is usable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", type=Path, help="directory holding <role>.jsonl")
    args = ap.parse_args()
    print(f"{'role':<18}{'outputs':>8}{'parser':>8}{'rate':>7}{'review':>8}{'rate':>7}")
    for role in ROLES:
        path = args.corpus / f"{role}.jsonl"
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


if __name__ == "__main__":
    main()
