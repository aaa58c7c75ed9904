"""Which stored questions make up each evaluation benchmark (the test items flagged at ingest)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# MMLU's medical subsets, as used by the medical-LLM literature the paper compares against.
MMLU_MEDICAL_SUBSETS: tuple[str, ...] = (
    "anatomy",
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "professional_medicine",
)


@dataclass(frozen=True)
class Benchmark:
    name: BenchmarkName
    source: str
    subsets: tuple[str, ...] | None = None  # restrict to questions whose metadata.subset is one of these

    @property
    def reports_subsets(self) -> bool:
        return self.subsets is not None


BenchmarkName = Literal[
    "medqa", "medmcqa", "pubmedqa", "mmlu-med"
]  # the keys of BENCHMARKS (a test holds them equal)
BENCHMARKS: dict[str, Benchmark] = {
    "medqa": Benchmark("medqa", "medqa"),
    "medmcqa": Benchmark("medmcqa", "medmcqa"),
    "pubmedqa": Benchmark("pubmedqa", "pubmedqa"),
    "mmlu-med": Benchmark("mmlu-med", "mmlu", MMLU_MEDICAL_SUBSETS),
}
DEFAULT_BENCHMARKS: tuple[str, ...] = tuple(BENCHMARKS)


def parse_benchmarks(spec: str | Sequence[str] | None) -> list[Benchmark]:
    """``"medqa,pubmedqa"`` (or a list) -> benchmarks, in the order given, duplicates dropped."""
    if spec is None:
        names: list[str] = list(DEFAULT_BENCHMARKS)
    elif isinstance(spec, str):
        names = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        names = [s.strip() for s in spec if s.strip()]
    if not names:
        raise ValueError("no benchmarks given")
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    return [BENCHMARKS[n] for n in dict.fromkeys(names)]
