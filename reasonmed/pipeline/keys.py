"""Every resume key of the build pipeline, in one place.

Three kinds of key make a rerun do only what is missing and ask the same requests again:

- path keys (``reasoning_paths.path_key``, unique per question): which path of a question a row is;
- call keys (``llm_calls.call_key``, unique): which logical request a call row records, so a retry
  completes the same row instead of adding one;
- seed parts (``derive_seed``): the same request gets the same seed in every run.

These strings are stored: changing one orphans every stored row of that kind (a rerun would ask again and
write duplicates), so ``tests/unit/test_keys.py`` pins each format.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

from reasonmed.agents.base import derive_seed

REFINED_PREFIX = "ref/"


def temperature(t: float) -> str:
    """A temperature as keys spell it (``0.7``, ``1``)."""
    return f"{t:g}"


# --------------------------------------------------------------------------- path keys


def generated_path(endpoint: str, temp: float, sample: int) -> str:
    return f"gen/{endpoint}/{temperature(temp)}/{sample}"


def refined_path(parent_path_key: str) -> str:
    return f"{REFINED_PREFIX}{parent_path_key}"


def regenerated_path(index: int) -> str:
    return f"regen/{index}"


def writer_path(base: str, taken: Collection[str], model: str, prompt_sha256: str) -> str:
    """``base`` unless a path of an earlier writer holds it; then ``base@<hash of model and prompt>``, so a
    changed refiner or regenerator writes its own path next to the old one."""
    if base not in taken:
        return base
    return f"{base}@{hashlib.sha256(f'{model}|{prompt_sha256}'.encode()).hexdigest()[:12]}"


# --------------------------------------------------------------------------- call keys


def generate_call(question_id: int, endpoint: str, temp: float, first_sample: int, count: int) -> str:
    """One n-request for ``count`` contiguous samples starting at ``first_sample``."""
    run = f"+{count}" if count > 1 else ""
    return f"q{question_id}/gen/{endpoint}/{temperature(temp)}/{first_sample}{run}"


def judge_call(question_id: int, stage: str, path_id: int, model: str, prompt_version: str) -> str:
    """A verdict, score or summary of one path (``stage``: verify | rank | summarize)."""
    return f"q{question_id}/{stage}/p{path_id}/{model}/{prompt_version}"


def refine_call(question_id: int, refined_path_key: str) -> str:
    return f"q{question_id}/refine/{refined_path_key.removeprefix(REFINED_PREFIX)}"


def regenerate_call(question_id: int, regenerated_path_key: str) -> str:
    return f"q{question_id}/{regenerated_path_key}"


# --------------------------------------------------------------------------- seeds


def generate_seed(base: int, content_hash: str, endpoint: str, temp: float) -> int:
    """The seed of sample 0 of one (generator, temperature); sample ``i`` uses ``seed + i``."""
    return derive_seed(base, content_hash, "gen", endpoint, temperature(temp))


def path_seed(base: int, content_hash: str, stage: str, path_key: str) -> int:
    """A request about one path (``stage``: verify | rank | refine | summarize)."""
    return derive_seed(base, content_hash, stage, path_key)


def regenerate_seed(base: int, content_hash: str, index: int) -> int:
    return derive_seed(base, content_hash, "regen", index)
