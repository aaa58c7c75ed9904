"""The real engine, measured: parse rates per role, structured vs free verdicts, throughput.

Starts llama.cpp's server with SmolLM2-135M-Instruct (extra ``[llamacpp]``) and, for the first N PubMedQA
training questions, asks every role the project's own prompts:
- generator: one path per temperature (0.7, 0.9, 1.0), no re-ask;
- verifier and ranker: each path twice, free and schema-constrained (the engine's ``llamacpp`` dialect),
  at temperature 0, no re-ask: the first answer's parse rate;
- summarizer: each path once.
It prints per role how often the project's parser got a usable answer, the unparseable verdict rate with
and without structured output on the same paths, and tokens/s. ``--record DIR`` also writes every output
(with model, prompt sha, sampling and the question) to ``DIR/<role>.jsonl``: the parser corpus that
``tests/unit/test_parsing_real.py`` reads.

    python bench/real_engine.py --questions 20 --record tests/fixtures/real_outputs

Not a test: one run's figures, for the record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reasonmed.agents.base import CallOutcome, QuestionView, Sampling, ask  # noqa: E402
from reasonmed.config import EndpointConfig  # noqa: E402
from reasonmed.ingest.loaders import load_pubmedqa  # noqa: E402
from reasonmed.ingest.service import load_id_list  # noqa: E402
from reasonmed.llm.llamacpp_server import LlamaCppServer  # noqa: E402
from reasonmed.llm.openai_backend import OpenAICompatibleBackend  # noqa: E402
from reasonmed.parsing import extract_answer, parse_score, parse_summary, parse_verdict  # noqa: E402
from reasonmed.prompts import get_template  # noqa: E402
from reasonmed.structured_output import SCORE_SCHEMA, VERDICT_SCHEMA, response_format  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "pubmedqa"
if not DATA.is_dir():
    DATA = REPO.parent / "shared" / "data" / "pubmedqa"


def questions(n: int, first: int = 1) -> list[QuestionView]:
    """Training questions ``first`` .. ``first + n - 1`` (1-based, test split excluded), numbered globally."""
    test_ids = load_id_list(DATA / "test_ground_truth.json")
    out: list[QuestionView] = []
    seen = 0
    for rec in load_pubmedqa(DATA / "ori_pqal.json"):
        q = rec.question
        if q is None or q.source_id in test_ids:
            continue
        seen += 1
        if seen < first:
            continue
        out.append(
            QuestionView(
                id=seen,
                content_hash=q.source_id,
                source=q.source,
                question=q.question,
                context=q.context,
                options=dict(q.options),
                answer=q.answer,
            )
        )
        if len(out) == n:
            break
    return out


@dataclass
class Tally:
    outputs: int = 0
    usable: int = 0
    errors: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0


@dataclass
class Recorder:
    """Appends each output to ``DIR/<role>.jsonl`` as it arrives, so a run that dies keeps what it got."""

    directory: Path | None

    def __post_init__(self) -> None:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            for role in ("generator", "verifier", "ranker", "summarizer"):
                (self.directory / f"{role}.jsonl").write_text("")

    def write(self, record: dict[str, Any]) -> None:
        if self.directory is None:
            return
        with (self.directory / f"{record['role']}.jsonl").open("a") as fh:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


async def _ask(
    backend: OpenAICompatibleBackend,
    role: str,
    template: str,
    q: QuestionView,
    fields: dict[str, str],
    sampling: Sampling,
    check: Any,
    tally: Tally,
    recorder: Recorder,
    *,
    structured: bool,
    seed: int,
) -> str | None:
    """One call; a failed call is counted and reported (None), never fatal to the run."""
    started = time.perf_counter()
    call: CallOutcome = await ask(
        backend,
        get_template(template),
        fields,
        role=role,
        sampling=sampling,
        seed=seed,
        check=check,
        reasks=0,
    )
    tally.seconds += time.perf_counter() - started
    if call.error is not None or not call.completions:
        tally.errors += 1
        print(f"  {role} call failed on {q.content_hash}: {call.error}", file=sys.stderr, flush=True)
        return None
    c = call.completions[0]
    tally.outputs += 1
    tally.usable += bool(call.accepted[0])
    tally.completion_tokens += c.completion_tokens or 0
    recorder.write(
        {
            "role": role,
            "model": backend.model,
            "prompt_sha256": call.prompt_sha256,
            "structured": structured,
            "sampling": {
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "max_tokens": sampling.max_tokens,
                "seed": seed,
            },
            "question": {
                "source_id": q.content_hash,
                "question": q.question,
                "options": q.options,
                "answer": q.answer,
            },
            "finish_reason": c.finish_reason,
            "output": c.text,
        }
    )
    return c.text


JUDGES = ("verifier", "ranker")


async def measure(
    base_url: str,
    alias: str,
    n: int,
    first: int,
    gen_tokens: int,
    recorder: Recorder,
    roles: dict[str, Tally],
    *,
    judges: bool = True,
) -> None:
    """Fill ``roles`` as calls complete, so an interrupted run still reports what it did."""
    cfg = EndpointConfig(
        base_url=base_url,
        model=alias,
        max_in_flight=1,
        timeout_s=600,
        max_retries=1,
        supports_n=False,
        structured_dialect="llamacpp",
    )
    backend = OpenAICompatibleBackend("local", cfg)
    verdict_fmt = response_format("llamacpp", "verdict", VERDICT_SCHEMA)
    score_fmt = response_format("llamacpp", "score", SCORE_SCHEMA)
    try:
        for q in questions(n, first):
            i = q.id
            for t in (0.7, 0.9, 1.0):
                seed = 1000 * i + int(t * 10)
                path = await _ask(
                    backend,
                    "generator",
                    "generate",
                    q,
                    q.prompt_fields(),
                    Sampling(t, 0.9, gen_tokens),
                    lambda s, q=q: extract_answer(s, q.options),
                    roles["generator"],
                    recorder,
                    structured=False,
                    seed=seed,
                )
                if path is None:
                    continue
                fields = q.prompt_fields() | {"path": path}
                for name, template, check, fmt, tokens in (
                    (
                        ("verifier", "verify", parse_verdict, None, 160),
                        ("verifier+schema", "verify", parse_verdict, verdict_fmt, 160),
                        ("ranker", "rank", parse_score, None, 96),
                        ("ranker+schema", "rank", parse_score, score_fmt, 96),
                    )
                    if judges
                    else ()
                ):
                    await _ask(
                        backend,
                        name.split("+")[0],
                        template,
                        q,
                        fields,
                        Sampling(0.0, 1.0, tokens, fmt),
                        check,
                        roles[name],
                        recorder,
                        structured=fmt is not None,
                        seed=seed,
                    )
                await _ask(
                    backend,
                    "summarizer",
                    "summarize",
                    q,
                    fields,
                    Sampling(0.5, 1.0, 128),
                    parse_summary,
                    roles["summarizer"],
                    recorder,
                    structured=False,
                    seed=seed,
                )
            print(f"  question {i} ({first}..{first + n - 1}) done", file=sys.stderr, flush=True)
    finally:
        await backend.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=20, help="PubMedQA training questions (3 paths each)")
    ap.add_argument(
        "--first",
        type=int,
        default=1,
        help="1-based index of the first training question (to split a corpus over parallel runs)",
    )
    ap.add_argument("--gen-tokens", type=int, default=256, help="max_tokens of a generated path")
    ap.add_argument("--record", type=Path, help="write every output to DIR/<role>.jsonl (the parser corpus)")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="llama.cpp threads for generation and prompt processing (1 is fastest on a busy machine)",
    )
    ap.add_argument(
        "--no-judges",
        action="store_true",
        help="generator and summarizer only (more paths per minute when a corpus lacks them)",
    )
    args = ap.parse_args()
    # Stop cleanly on SIGTERM too (and on SIGINT even when started in the background, where it is ignored):
    # the partial figures are printed and the server is stopped.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    recorder = Recorder(args.record)
    roles = {
        k: Tally()
        for k in ("generator", "verifier", "verifier+schema", "ranker", "ranker+schema", "summarizer")
    }
    stopped = ""
    with LlamaCppServer(n_ctx=4096, n_threads=args.threads, n_threads_batch=args.threads) as srv:
        started = time.perf_counter()
        try:
            asyncio.run(
                measure(
                    srv.base_url,
                    srv.alias,
                    args.questions,
                    args.first,
                    args.gen_tokens,
                    recorder,
                    roles,
                    judges=not args.no_judges,
                )
            )
        except KeyboardInterrupt:
            stopped = " (interrupted: partial figures)"
        wall = time.perf_counter() - started
    print(
        f"\nSmolLM2-135M-Instruct on llama.cpp, PubMedQA training questions {args.first}.."
        f"{args.first + args.questions - 1}, wall {wall:.0f} s{stopped}"
    )
    print(f"{'role':<18}{'outputs':>8}{'usable':>8}{'rate':>8}{'failed':>8}{'tok/s':>8}")
    for name, t in roles.items():
        rate = t.usable / t.outputs if t.outputs else 0.0
        tps = t.completion_tokens / t.seconds if t.seconds else 0.0
        print(f"{name:<18}{t.outputs:>8}{t.usable:>8}{rate:>8.0%}{t.errors:>8}{tps:>8.1f}")
    free, schema = roles["verifier"], roles["verifier+schema"]
    print(
        f"unparseable verdicts on the same paths: free {free.outputs - free.usable}/{free.outputs}, "
        f"structured {schema.outputs - schema.usable}/{schema.outputs}"
    )
    if args.record:
        print(f"recorded {sum(t.outputs for t in roles.values())} outputs under {args.record}")


if __name__ == "__main__":
    main()
