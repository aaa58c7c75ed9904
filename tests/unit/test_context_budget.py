"""Context budgets by hand: the prompt estimate, the lowering of max_tokens, which context is used, and the
largest request of each role (llm/context.py, pipeline/budgets.py)."""

from __future__ import annotations

import pytest

from reasonmed.config import parse_pipeline_config
from reasonmed.llm.context import (
    ContextExceeded,
    ContextLength,
    estimate_prompt_tokens,
    estimate_tokens,
    fit_max_tokens,
)
from reasonmed.llm.types import Completion, LLMError
from reasonmed.pipeline.budgets import QUESTION_TOKENS, over_budget, role_budgets


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("abc", 1),  # 3 bytes
        ("abcd", 2),  # 4 bytes: rounded up
        ("2024", 4),  # a token per digit
        ("pH 7.4", 4),  # digits 7 and 4, then "pH ." = 4 bytes -> 2
        ("µg", 1),  # 3 UTF-8 bytes, 2 characters
        ("血压", 2),  # 6 bytes
    ],
)
def test_estimate_counts_digits_one_each_and_other_bytes_by_three(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


def test_prompt_estimate_adds_the_chat_template() -> None:
    messages = [{"role": "system", "content": "abcdef"}, {"role": "user", "content": "12"}]
    assert estimate_prompt_tokens(messages) == 32 + (2 + 8) + (2 + 8)


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "context", "sent"),
    [
        (3000, 1000, 4096, 1000),  # fits: unchanged
        (3096, 1000, 4096, 1000),  # exactly fits
        (3000, 2000, 4096, 1096),  # lowered to the room left
        (3968, 2000, 4096, 128),  # room of exactly a minimal completion
        (4000, 96, 4096, 96),  # a small budget that fits is never touched
        (5000, 2000, None, 2000),  # context unknown: unchanged
    ],
)
def test_max_tokens_is_lowered_to_the_room_the_prompt_leaves(
    prompt: int, max_tokens: int, context: int | None, sent: int
) -> None:
    assert fit_max_tokens(prompt, max_tokens, context) == sent


@pytest.mark.parametrize(
    ("prompt", "max_tokens", "context"),
    [
        (3969, 2000, 4096),  # 127 left, fewer than 128
        (4001, 96, 4096),  # 95 left, fewer than the role's own 96: never lowered
        (5000, 2000, 4096),  # the prompt alone overflows
    ],
)
def test_less_room_than_a_minimal_completion_is_a_final_error(
    prompt: int, max_tokens: int, context: int
) -> None:
    with pytest.raises(ContextExceeded) as info:
        fit_max_tokens(prompt, max_tokens, context)
    err = info.value.error("qwen")
    assert isinstance(err, LLMError)
    assert (err.kind, err.retryable, err.attempts, err.endpoint) == ("context_exceeded", False, 0, "qwen")
    assert f"{context:,}-token context" in str(err) and "not sent" in str(err)


def test_a_request_that_cannot_fit_sets_its_question_aside_at_once() -> None:
    from reasonmed.pipeline.failures import StageIncomplete, classify, sets_aside

    failure = classify("resolve", StageIncomplete("refiner failed", error_kinds=["context_exceeded"]))
    assert (failure.cls, failure.kind) == ("permanent", "context_exceeded")
    assert sets_aside(failure, failures_so_far=1, budget=3)


def test_the_smaller_of_reported_and_declared_context_is_used() -> None:
    assert ContextLength().tokens is None
    assert ContextLength(declared=4096).tokens == 4096
    assert ContextLength(reported=20480).tokens == 20480
    both = ContextLength(declared=16384, reported=20480)
    assert both.tokens == 16384
    assert "the server reports 20,480, context_tokens says 16,384; the smaller is used" in both.describe()
    assert ContextLength(declared=32768, reported=20480).tokens == 20480
    assert "reported by the server" in ContextLength(reported=20480).describe()
    assert "context_tokens; the server reports none" in ContextLength(declared=4096).describe()
    assert "context unknown" in ContextLength().describe()


def test_truncated_is_one_rule_for_every_role() -> None:
    from reasonmed.agents.base import reask_kind, usable

    cut = Completion("Final answer: A", "length", None, None, 1.0, "m", "e", None, 0, max_tokens=128)
    done = Completion("Final answer: A", "stop", None, None, 1.0, "m", "e", None, 0)
    assert cut.truncated and not done.truncated
    assert not usable(cut, lambda text: text) and usable(done, lambda text: text)
    assert reask_kind(cut) == "truncated"


def _pipeline() -> dict:
    """Two generators (max_tokens 100 and 300; 1 + 2 = 3 paths per question), a verifier of 64 tokens."""
    ep = {"base_url": "http://127.0.0.1:1/v1"}
    return {
        "endpoints": {
            "small": {**ep, "model": "m-small"},
            "big": {**ep, "model": "m-big"},
            "judge": {**ep, "model": "m-judge"},
        },
        "agents": {
            "generators": [
                {"endpoint": "small", "temperatures": [0.7], "max_tokens": 100},
                {"endpoint": "big", "temperatures": [0.7, 0.9], "max_tokens": 300},
            ],
            "verifier": {"endpoint": "judge", "max_tokens": 64},
            "ranker": {"endpoint": "judge", "max_tokens": 32},
            "refiner": {"endpoint": "big", "max_tokens": 500},
            "regenerator": {"endpoint": "big", "max_tokens": 700},
            "summarizer": {"endpoint": "judge", "max_tokens": 200},
        },
        "tiers": {"easy_min_correct": 2, "medium_min_correct": 1, "keep_top": 1},
    }


def test_each_role_reads_its_inputs_at_their_largest() -> None:
    cfg = parse_pipeline_config(_pipeline())
    inputs = {b.role: b.input_tokens - QUESTION_TOKENS for b in role_budgets(cfg)}
    reasons = 3 * 64  # one per path, each at most the verifier's 64 tokens (below the 256 allowance)
    assert inputs == {
        "generator[0]": 0,
        "generator[1]": 0,
        "verifier": 700,  # the longest path it can be shown: the regenerator's
        "ranker": 300,  # generated paths only
        "refiner": 300 + reasons,
        "regenerator": 300 + reasons,
        "summarizer": 700,
    }
    refiner = next(b for b in role_budgets(cfg) if b.role == "refiner")
    assert refiner.total == refiner.template_tokens + QUESTION_TOKENS + 492 + 500


def test_roles_over_their_endpoints_context_are_named() -> None:
    cfg = parse_pipeline_config(_pipeline())
    budgets = {b.role: b for b in role_budgets(cfg)}
    regen = budgets["regenerator"]
    # "big" is just large enough for its generator and refiner, not for the regenerator's 700 tokens.
    context = max(budgets["generator[1]"].total, budgets["refiner"].total)
    assert context < regen.total
    over = over_budget(
        cfg,
        {
            "big": ContextLength(reported=context),
            "small": ContextLength(),
            "judge": ContextLength(declared=1 << 20),
        },
    )
    assert [(b.role, c) for b, c in over] == [("regenerator", context)]
    assert regen.describe(context) == (
        f"regenerator on big: a prompt of up to {regen.prompt_tokens:,} tokens + max_tokens 700 = "
        f"{regen.total:,} > context {context:,}"
    )
