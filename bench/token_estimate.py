"""How good is the client's prompt-token estimate (reasonmed/llm/context.py), and what would asking the
server's tokenizer instead cost?

(a) Every bundled PubMedQA question rendered by every role's template of both prompt profiles, with real
    SmolLM2 outputs as the paths and real verdict reasons as the errors, is counted twice: by the estimate
    and by SmolLM2's own tokenizer with its chat template applied (what the server prefills). Printed: the
    tokenizer's count over the estimate (must stay below 1: the estimate may only over-count), bytes per
    token, and the estimate's cost per prompt.
(b) The round trip of llama.cpp's token counter (``POST /extras/tokenize/count`` on llama-cpp-python's
    server with the bundled model) for the same prompts: what an exact count per request would cost.

    python bench/token_estimate.py                # both; (b) needs the [llamacpp] extra
    python bench/token_estimate.py --no-server    # (a) only

Not a test: it prints figures for the record (the estimate's docstring quotes them).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reasonmed.ingest.loaders import load_pubmedqa  # noqa: E402
from reasonmed.llm.context import estimate_prompt_tokens  # noqa: E402
from reasonmed.prompts import context_block, format_errors, format_options, get_template  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PUBMEDQA = REPO / "data" / "pubmedqa" / "ori_pqal.json"
OUTPUTS = REPO / "tests" / "fixtures" / "real_outputs"
ROLES = ("generate", "verify", "rank", "refine", "regenerate", "summarize")


def _jsonl(name: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in (OUTPUTS / name).read_text().splitlines() if line.strip()]


def prompts() -> list[list[dict[str, str]]]:
    paths = [str(r["output"]) for r in _jsonl("generator.jsonl") if r.get("output")]
    reasons = [str(r["output"])[:400] for r in _jsonl("verifier.jsonl") if r.get("output")]
    out = []
    for i, rec in enumerate(load_pubmedqa(PUBMEDQA)):
        q = rec.question
        if q is None:
            continue
        fields = {
            "question": q.question,
            "context_block": context_block(q.context),
            "options": format_options(q.options),
            "answer": q.answer,
            "path": paths[i % len(paths)],
            "errors": format_errors(reasons[i % len(reasons) : i % len(reasons) + 3]),
        }
        for profile in ("reasonmed", "paper"):
            for role in ROLES:
                out.append(get_template(role, profile).render(**fields))
    return out


def measure_estimate(batch: list[list[dict[str, str]]]) -> None:
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from reasonmed.llm.llamacpp_server import bundled_model_path

    llm = llama_cpp.Llama(str(bundled_model_path()), vocab_only=True, verbose=False)
    fmt = Jinja2ChatFormatter(
        template=str(llm.metadata["tokenizer.chat_template"]),
        eos_token=llm.detokenize([llm.token_eos()]).decode(),
        bos_token=llm.detokenize([llm.token_bos()]).decode(),
    )
    plain: list[tuple[int, float, float]] = []  # (tokens, over the estimate, over bytes / 3 alone)
    for messages in batch:
        actual = len(llm.tokenize(fmt(messages=messages).prompt.encode(), add_bos=True, special=True))
        nbytes = sum(len(m["content"].encode()) for m in messages)
        plain.append((actual, actual / estimate_prompt_tokens(messages), actual / math.ceil(nbytes / 3)))
    started = time.perf_counter()
    for messages in batch:
        estimate_prompt_tokens(messages)
    per_prompt_us = (time.perf_counter() - started) / len(batch) * 1e6
    print(f"(a) {len(batch):,} prompts, SmolLM2 tokenizer with its chat template; tokenizer / estimate")
    for floor in (0, 500):
        rows = [r for r in plain if r[0] >= floor]
        print(
            f"    prompts of {floor}+ tokens (n={len(rows):,}): max {max(r[1] for r in rows):.3f}, "
            f"mean {statistics.mean(r[1] for r in rows):.3f} (must stay below 1); without the digit rule "
            f"and overheads (bytes / 3): max {max(r[2] for r in rows):.3f}"
        )
    print(f"    estimate: {per_prompt_us:.1f} us per prompt")


def measure_server(batch: list[list[dict[str, str]]], requests: int) -> None:
    import httpx

    from reasonmed.llm.llamacpp_server import LlamaCppServer

    with LlamaCppServer(n_ctx=4096) as server, httpx.Client(timeout=30.0) as client:
        url = server.base_url.removesuffix("/v1") + "/extras/tokenize/count"
        client.post(url, json={"input": "warm up"}).raise_for_status()
        times = []
        for messages in batch[:requests]:
            text = "\n".join(m["content"] for m in messages)
            started = time.perf_counter()
            client.post(url, json={"input": text}).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    print(f"(b) {len(times)} round trips to llama-cpp-python's /extras/tokenize/count (loopback)")
    print(f"    median {statistics.median(times):.2f} ms, p95 {times[int(len(times) * 0.95)]:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-server", action="store_true", help="skip (b)")
    parser.add_argument("--requests", type=int, default=300, help="round trips in (b)")
    args = parser.parse_args()
    batch = prompts()
    measure_estimate(batch)
    if not args.no_server:
        measure_server(batch, args.requests)


if __name__ == "__main__":
    main()
