"""The stored key formats: a database written before must resume, so every key is pinned to its exact text."""

from __future__ import annotations

import hashlib

import pytest

from reasonmed.agents.base import derive_seed
from reasonmed.pipeline import keys


@pytest.mark.parametrize(
    ("built", "stored"),
    [
        (keys.generated_path("qwen", 0.7, 2), "gen/qwen/0.7/2"),
        (keys.generated_path("qwen", 1.0, 0), "gen/qwen/1/0"),
        (keys.generated_path("qwen", 0.0, 0), "gen/qwen/0/0"),
        (keys.refined_path("gen/qwen/0.7/2"), "ref/gen/qwen/0.7/2"),
        (keys.regenerated_path(1), "regen/1"),
        (keys.generate_call(42, "qwen", 0.7, 0, 1), "q42/gen/qwen/0.7/0"),
        (keys.generate_call(42, "qwen", 0.7, 1, 2), "q42/gen/qwen/0.7/1+2"),
        (keys.judge_call(42, "verify", 7, "m/x", "v1"), "q42/verify/p7/m/x/v1"),
        (keys.judge_call(42, "rank", 7, "m", "v2"), "q42/rank/p7/m/v2"),
        (keys.judge_call(42, "summarize", 7, "m", "v1"), "q42/summarize/p7/m/v1"),
        (keys.refine_call(42, "ref/gen/qwen/0.7/2"), "q42/refine/gen/qwen/0.7/2"),
        (keys.refine_call(42, "ref/gen/qwen/0.7/2@0123456789ab"), "q42/refine/gen/qwen/0.7/2@0123456789ab"),
        (keys.regenerate_call(42, "regen/1"), "q42/regen/1"),
        (keys.regenerate_call(42, "regen/1@0123456789ab"), "q42/regen/1@0123456789ab"),
    ],
)
def test_key_formats_are_the_stored_ones(built: str, stored: str) -> None:
    assert built == stored


def test_a_key_an_earlier_writer_holds_gets_the_writers_suffix() -> None:
    assert keys.writer_path("regen/0", {"gen/a/0.7/0"}, "m", "sha") == "regen/0"
    suffix = hashlib.sha256(b"m|sha").hexdigest()[:12]
    assert keys.writer_path("regen/0", {"regen/0"}, "m", "sha") == f"regen/0@{suffix}"
    assert keys.writer_path("regen/0", {"regen/0"}, "m2", "sha") != f"regen/0@{suffix}"


def test_seeds_are_pinned() -> None:
    """Stored seeds must not move: a changed derivation would make every rerun ask different requests. The
    values are sha256("base|part|...")'s first 4 bytes, big-endian, mod 2**31 - 1024, computed outside the
    project (python3 -c with hashlib) on 2026-12-06."""
    assert keys.generate_seed(7, "h", "qwen", 0.7) == 967380880
    assert keys.generate_seed(7, "h", "qwen", 1.0) == 735467979
    assert keys.generate_seed(0, "3f2a", "sim-qwen", 0.9) == 145019927
    assert keys.path_seed(7, "h", "verify", "gen/qwen/0.7/0") == 60689623
    assert keys.path_seed(0, "3f2a", "summarize", "ref/gen/sim-huatuo/1/0") == 837361660
    assert keys.regenerate_seed(7, "h", 2) == 990669394
    assert derive_seed(7, "h", "regen", 2) == derive_seed(7, "h", "regen", "2")
