"""The contamination guard: no training question may copy, or nearly copy, a benchmark test item.

Ingestion already flags test items by id, but the same question reaches the training pool by other
roads (a re-release with new ids, a reworded copy in another source). Two checks catch those:

- exact: the stem and the set of option texts, after NFKC, case folding and punctuation stripping,
  equal a test item's (context is ignored, so a copy without its abstract is still caught);
- near: Jaccard similarity of word n-gram shingles of stem + options at or above ``threshold``,
  found with MinHash LSH (datasketch) over the test items and then confirmed by the exact Jaccard
  of the shingle sets, so the figure reported is not an estimate.

Speed: each training question is first checked against the union of every test item's shingles.
Jaccard(A, B) <= |A ∩ B| / |A| <= |A ∩ union| / |A|, so a question whose shingles mostly never occur
in any test item cannot reach the threshold and skips MinHash altogether; this bound is exact, not a
heuristic, and it leaves only a small fraction of the pool for LSH.

Defaults, measured on PubMedQA PQA-L (short questions, the hard case): with word 3-grams over stem +
options, changing one middle word of a test question keeps Jaccard >= 0.4 for 488 of its 500 test
questions (the others have five words or fewer), while the most similar genuinely different
train/test pair scores 0.25. Hence threshold 0.4; long MedQA vignettes score far above it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import datasketch
from datasketch import MinHash, MinHashLSH
from sqlalchemy import Engine

from reasonmed.db import eval_repo
from reasonmed.db.eval_repo import QuestionText
from reasonmed.models import normalise_text

DEFAULT_THRESHOLD = 0.4
DEFAULT_NGRAM = 3
NUM_PERM = 128
# LSH is asked for candidates a little below the threshold, so pairs near it are not lost to the
# banding's false negatives; every candidate is then confirmed by its exact Jaccard.
_LSH_MARGIN = 0.15
_NON_WORD = re.compile(r"[^\w]+")

__all__ = [
    "DEFAULT_NGRAM",
    "DEFAULT_THRESHOLD",
    "ContaminationIndex",
    "Match",
    "audit_contamination",
    "exact_key",
    "find_contaminated",
    "fingerprint",
    "jaccard",
    "match_text",
    "scan",
    "shingles",
]


def match_text(text: str) -> str:
    """NFKC, case folded, punctuation replaced by spaces: what two copies of one question share."""
    return " ".join(_NON_WORD.sub(" ", normalise_text(text).casefold()).replace("_", " ").split())


def exact_key(question: str, options: Iterable[tuple[str, str]]) -> str:
    """Stem plus the *set* of option texts: shuffled options or a dropped context do not hide a copy."""
    return "\x1f".join([match_text(question), *sorted(match_text(t) for _, t in options)])


@functools.lru_cache(maxsize=1 << 20)
def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")


def shingles(question: str, options: Iterable[tuple[str, str]], ngram: int = DEFAULT_NGRAM) -> frozenset[int]:
    """Hashed word n-grams of stem + option texts; a text shorter than ``ngram`` words is one shingle.

    An n-gram's hash is the tuple hash of its words' (cached) digests: the same in every process (ints
    and tuples of ints hash without Python's per-process salt), and one digest per distinct word
    instead of one per n-gram, which was a fifth of a check's time (profiled at the paper's size).
    """
    words = [_word_hash(w) for w in match_text(" ".join([question, *(t for _, t in options)])).split()]
    if not words:
        return frozenset()
    if len(words) < ngram:
        return frozenset({hash(tuple(words))})
    return frozenset(hash(tuple(words[i : i + ngram])) for i in range(len(words) - ngram + 1))


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def _low_bits(x: int) -> int:
    return x & 0xFFFFFFFF


def _minhash(sh: frozenset[int], template: MinHash) -> MinHash:
    """A MinHash sharing ``template``'s permutations (same seed, so the same values): datasketch draws
    them afresh for every MinHash otherwise."""
    m = MinHash(
        num_perm=template.num_perm,
        hashfunc=_low_bits,
        permutations=template.permutations,
        scheme=template.scheme,
    )
    m.update_batch(list(sh))
    return m


@dataclass(frozen=True)
class Match:
    question_id: int
    test_question_id: int
    test_ref: str  # "pubmedqa:12377809"
    kind: Literal["exact", "near"]
    jaccard: float

    @property
    def description(self) -> str:
        if self.kind == "exact":
            return f"exact copy of benchmark test item {self.test_ref}"
        return f"near-duplicate of benchmark test item {self.test_ref} (jaccard {self.jaccard:.2f})"


class ContaminationIndex:
    """Every benchmark test item, indexed for exact and near-duplicate look-ups."""

    def __init__(
        self,
        test_items: Sequence[QuestionText],
        *,
        threshold: float = DEFAULT_THRESHOLD,
        ngram: int = DEFAULT_NGRAM,
        num_perm: int = NUM_PERM,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1] (got {threshold})")
        if ngram < 1:
            raise ValueError(f"ngram must be >= 1 (got {ngram})")
        self.threshold, self.ngram, self.num_perm = threshold, ngram, num_perm
        self._refs: dict[int, str] = {}
        self._exact: dict[str, int] = {}
        self._shingles: dict[int, frozenset[int]] = {}
        self._union: set[int] = set()
        self._lsh = MinHashLSH(threshold=max(0.05, threshold - _LSH_MARGIN), num_perm=num_perm)
        self._template = MinHash(num_perm=num_perm, hashfunc=_low_bits)
        for item in test_items:
            self._refs[item.id] = f"{item.source}:{item.source_id}"
            self._exact.setdefault(exact_key(item.question, item.options), item.id)
            sh = shingles(item.question, item.options, ngram)
            if not sh:
                continue
            self._shingles[item.id] = sh
            self._union.update(sh)
            self._lsh.insert(item.id, _minhash(sh, self._template), check_duplication=False)

    def __len__(self) -> int:
        return len(self._refs)

    def check(self, item: QuestionText) -> Match | None:
        """The test item ``item`` copies (exact beats near; the highest Jaccard wins), or None."""
        test_id = self._exact.get(exact_key(item.question, item.options))
        if test_id is not None:
            return Match(item.id, test_id, self._refs[test_id], "exact", 1.0)
        sh = shingles(item.question, item.options, self.ngram)
        if not sh or not self._union:
            return None
        if len(sh & self._union) < self.threshold * len(sh):
            return None  # cannot reach the threshold with any test item (see the module docstring)
        best: tuple[float, int] | None = None
        for test_id in self._lsh.query(_minhash(sh, self._template)):
            j = jaccard(sh, self._shingles[test_id])
            if j >= self.threshold and (best is None or (j, -test_id) > (best[0], -best[1])):
                best = (j, test_id)
        if best is None:
            return None
        return Match(item.id, best[1], self._refs[best[1]], "near", round(best[0], 4))


def scan(
    test_items: Sequence[QuestionText],
    candidates: Iterable[QuestionText],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    ngram: int = DEFAULT_NGRAM,
) -> list[Match]:
    """Pure form of the guard: the candidates that copy a test item, in candidate order."""
    index = ContaminationIndex(test_items, threshold=threshold, ngram=ngram)
    return [m for c in candidates if (m := index.check(c)) is not None]


@dataclass(frozen=True)
class ContaminationScan:
    """What an export needs from the guard: the copies to exclude, and the questions the scan looked at.

    ``checked`` is None when there is nothing to copy (no test items): every question is then clean.
    A question accepted after the scan is in neither, and the export holds it back for the next version.
    ``rechecked`` counts the questions compared with the test items in this scan; the others' verdicts
    were stored by an earlier scan, for the same text under the same fingerprint.
    """

    flagged: dict[int, str]
    checked: frozenset[int] | None
    rechecked: int = 0


# Bump when shingling, hashing or matching changes: verdicts stored under the old algorithm then no
# longer stand, and the next scan checks every question again.
SCAN_ALGORITHM = 2


def fingerprint(
    test_items: Sequence[QuestionText], *, threshold: float, ngram: int, num_perm: int = NUM_PERM
) -> str:
    """What a stored verdict depends on besides the question's own text: every test item (id, source,
    text), the guard's settings, its algorithm and the LSH library's version."""
    h = hashlib.sha256(
        json.dumps([SCAN_ALGORITHM, datasketch.__version__, threshold, ngram, num_perm, _LSH_MARGIN]).encode()
    )
    for item in sorted(test_items, key=lambda t: t.id):
        h.update(json.dumps([item.id, item.source, item.source_id, item.question, item.options]).encode())
    return h.hexdigest()


def question_digest(item: QuestionText) -> str:
    """The text a verdict was reached on: a question edited in place is checked again."""
    return hashlib.sha256(json.dumps([item.question, item.options]).encode()).hexdigest()


def scan_database(
    engine: Engine,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    ngram: int = DEFAULT_NGRAM,
    only_accepted: bool = False,
    persist: bool = True,
) -> ContaminationScan:
    """The guard over the stored questions; see ``find_contaminated``.

    A question with a verdict stored for its current text under the current fingerprint keeps it
    without being checked again, so a nightly export pays only for the questions accepted (or edited)
    since the last one. With ``persist`` the new verdicts and matches are stored.
    """
    tests = eval_repo.load_benchmark_test_items(engine)
    if not tests:
        return ContaminationScan({}, None)
    stamp = fingerprint(tests, threshold=threshold, ngram=ngram)
    known = eval_repo.contamination_verdicts(engine, stamp)
    index: ContaminationIndex | None = None  # built only when some question needs a check
    verdicts: dict[int, eval_repo.StoredVerdict] = {}
    matches: list[Match] = []
    flagged: dict[int, str] = {}
    checked: set[int] = set()
    for item in eval_repo.iter_training_items(engine, only_accepted=only_accepted):
        checked.add(item.id)
        digest = question_digest(item)
        verdict = known.get(item.id)
        if verdict is None or verdict.question_sha256 != digest:
            if index is None:
                index = ContaminationIndex(tests, threshold=threshold, ngram=ngram)
            match = index.check(item)
            verdict = verdicts[item.id] = eval_repo.StoredVerdict(
                digest, match.description if match else None
            )
            if match:
                matches.append(match)
        if verdict.description is not None:
            flagged[item.id] = verdict.description
    if persist:
        detected = eval_repo.now()
        eval_repo.save_contamination_matches(
            engine,
            [
                {
                    "question_id": m.question_id,
                    "test_question_id": m.test_question_id,
                    "kind": m.kind,
                    "jaccard": m.jaccard,
                    "threshold": threshold,
                    "ngram": ngram,
                    "description": m.description,
                    "detected_at": detected,
                }
                for m in matches
            ],
        )
        eval_repo.save_contamination_verdicts(engine, stamp, verdicts, detected)
    return ContaminationScan(flagged, frozenset(checked), rechecked=len(verdicts))


def find_contaminated(
    engine: Engine,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    ngram: int = DEFAULT_NGRAM,
    only_accepted: bool = False,
    persist: bool = True,
) -> dict[int, str]:
    """question_id -> why it must not be exported, for every non-test question that copies a test item.

    ``only_accepted`` limits the scan to questions with accepted paths (what an export can contain);
    by default every non-test question is checked. Matches are stored in ``contamination_matches``
    (see the ``audit_contamination`` view) unless ``persist`` is False.
    """
    return scan_database(
        engine, threshold=threshold, ngram=ngram, only_accepted=only_accepted, persist=persist
    ).flagged


def audit_contamination(engine: Engine) -> list[dict[str, object]]:
    """Rows of the ``audit_contamination`` view (stored matches with both sides' sources and usage)."""
    return eval_repo.audit_contamination(engine)
