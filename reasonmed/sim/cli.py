"""The ``sim-server`` command, shared by ``reasonmed sim-server`` and ``python -m reasonmed.sim``.

It lives here, not in ``reasonmed.cli``, so starting the simulator never imports the rest of the CLI.
"""

from __future__ import annotations

from typing import Annotated

import typer

from reasonmed.sim.faults import FAULT_KINDS
from reasonmed.sim.settings import QUESTIONS_DB_ENV, SimSettings, parse_assignments, parse_styles
from reasonmed.sim.styles import STYLES, style_named

HELP = (
    "Run the reasonmed SIMULATION server: an OpenAI-compatible chat API that imitates vLLM-served models "
    "for tests, demos and benchmarks. Its replies are SIMULATED text (prefixed '(simulated)', header "
    "x-reasonmed-simulator: 1), never real model output. It answers each pipeline role deterministically, "
    "emulates an engine's latency and batch limit, and injects faults at configurable rates."
)
_DEFAULTS = SimSettings()


def sim_server(
    host: Annotated[str, typer.Option(help="address to bind (keep it on loopback)")] = _DEFAULTS.host,
    port: Annotated[
        int, typer.Option(min=0, max=65_535, help="port to bind; 0 picks a free one (printed on stdout)")
    ] = _DEFAULTS.port,
    accuracy: Annotated[
        list[str] | None,
        typer.Option(
            "--accuracy",
            metavar="MODEL=P",
            help="per-model probability that a generated path picks the correct option (repeatable)",
        ),
    ] = None,
    default_accuracy: Annotated[
        float, typer.Option(help="accuracy of models not named by --accuracy")
    ] = _DEFAULTS.default_accuracy,
    refine_accuracy: Annotated[
        float, typer.Option(help="accuracy of the refine/regenerate roles (their prompt holds the answer)")
    ] = _DEFAULTS.refine_accuracy,
    verifier_error_rate: Annotated[
        float, typer.Option(help="fraction of verdicts flipped (deterministically by hash)")
    ] = _DEFAULTS.verifier_error_rate,
    style: Annotated[
        list[str] | None,
        typer.Option(
            "--style",
            metavar="MODEL=STYLE",
            help=f"per-model form of the answer its paths end with (repeatable; styles: {', '.join(STYLES)})",
        ),
    ] = None,
    default_style: Annotated[
        str, typer.Option(help="style of models not named by --style ('plain': a Final answer: line)")
    ] = _DEFAULTS.default_style,
    questions_db: Annotated[
        str | None,
        typer.Option(
            envvar=QUESTIONS_DB_ENV,
            show_envvar=True,
            help="database URL whose questions table supplies answer keys for generation prompts; prefer the "
            "environment variable, since a command line is visible to every user of the machine",
        ),
    ] = None,
    base_latency_ms: Annotated[
        float, typer.Option(help="fixed latency of every request")
    ] = _DEFAULTS.base_latency_ms,
    per_token_ms: Annotated[
        float, typer.Option(help="extra latency per completion token")
    ] = _DEFAULTS.per_token_ms,
    max_num_seqs: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="requests generated at once; the rest queue (FIFO)")
    ] = _DEFAULTS.max_num_seqs,
    max_model_len: Annotated[
        int | None,
        typer.Option(
            help="context length in tokens, as vLLM's --max-model-len: listed on /v1/models, and a request whose "
            "prompt plus max_tokens exceeds it is refused with HTTP 400 (default: no limit, none listed)"
        ),
    ] = _DEFAULTS.max_model_len,
    length_profile: Annotated[
        str | None,
        typer.Option(
            help="draw each reply's completion tokens (engine time and reported usage) per role from a "
            "profile: 'realistic' = paths 500-2000, verdicts 100-300, ranks 30-80, summaries 80-200 "
            "(reasonmed/sim/lengths.py); default: the simulated text's own length"
        ),
    ] = None,
    fault_rate: Annotated[
        float, typer.Option(help="fraction of requests that fail, spread over --fault-kinds")
    ] = 0.0,
    fault_kinds: Annotated[
        str, typer.Option(help="comma-separated kinds the --fault-rate is spread over")
    ] = ",".join(FAULT_KINDS),
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            metavar="KIND=RATE",
            help=f"extra rate for one fault kind (repeatable; kinds: {', '.join(FAULT_KINDS)})",
        ),
    ] = None,
    fault_seed: Annotated[int, typer.Option(min=-(2**63), max=2**63 - 1, help="seed of the fault draws")] = 0,
    fault_script: Annotated[
        str,
        typer.Option(
            help="comma-separated outcomes forced on the first requests in arrival order, e.g. 500,ok,drop (for tests)"
        ),
    ] = "",
    fault_when: Annotated[
        list[str] | None,
        typer.Option(
            "--fault-when",
            metavar="ROLE:MARKER=KIND",
            help="always KIND for requests of ROLE (or *) whose prompt contains MARKER (or *), e.g. "
            "'*:POISON=400' or 'summarize:*=truncate' (repeatable)",
        ),
    ] = None,
    retry_after: Annotated[
        float, typer.Option(help="Retry-After seconds sent with simulated 429s")
    ] = _DEFAULTS.retry_after,
    rate_limit_rpm: Annotated[
        float | None,
        typer.Option(help="requests per minute, as a hosted API limits them: 429 with Retry-After beyond it"),
    ] = _DEFAULTS.rate_limit_rpm,
    rate_limit_tpm: Annotated[
        float | None,
        typer.Option(help="tokens per minute (prompt + max_tokens of each request): 429 beyond it"),
    ] = _DEFAULTS.rate_limit_tpm,
    rate_limit_window_s: Annotated[
        float,
        typer.Option(
            help="seconds of the limit a burst may use at once (60: a whole minute; short for tests)"
        ),
    ] = _DEFAULTS.rate_limit_window_s,
    rate_limit_headers: Annotated[
        bool,
        typer.Option(help="send OpenAI's x-ratelimit-remaining-*/reset-* headers with each chat reply"),
    ] = _DEFAULTS.rate_limit_headers,
    hang_seconds: Annotated[
        float, typer.Option(help="how long a 'hang' fault holds a request")
    ] = _DEFAULTS.hang_seconds,
    log_level: Annotated[str, typer.Option(help="log level (stderr)")] = _DEFAULTS.log_level,
    script: Annotated[
        str | None,
        typer.Option(
            help="a JSON file of scripted outcomes for chosen questions (their answers, verdicts, scores and "
            "rewrites, written by hand: reasonmed/sim/script.py), for tests whose outcome is worked out on paper"
        ),
    ] = None,
    batch_max_bytes: Annotated[
        int,
        typer.Option(
            min=1, help="largest Batch API input file accepted on /v1/files, in bytes (400 beyond it)"
        ),
    ] = _DEFAULTS.batch_max_bytes,
    batch_max_requests: Annotated[
        int,
        typer.Option(
            min=1, help="lines per batch input file; a longer file fails its batch (too_many_tasks)"
        ),
    ] = _DEFAULTS.batch_max_requests,
    batch_delay_s: Annotated[
        float, typer.Option(help="seconds a batch stays in_progress before its first line runs")
    ] = _DEFAULTS.batch_delay_s,
    batch_window_s: Annotated[
        float,
        typer.Option(
            help="seconds a batch's completion window ('24h') lasts: a batch still open then is expired"
        ),
    ] = _DEFAULTS.batch_window_s,
    batch_concurrency: Annotated[
        int, typer.Option(min=1, max=100_000, help="lines of one batch run at once")
    ] = _DEFAULTS.batch_concurrency,
    batch_line_failure_rate: Annotated[
        float,
        typer.Option(
            help="fraction of batch lines answered 500 (those whose sha256('SEED|CUSTOM_ID'), first 8 bytes "
            "big-endian over 2**64, is below it; SEED is --fault-seed): a reproducible set of failed lines"
        ),
    ] = _DEFAULTS.batch_line_failure_rate,
) -> None:
    """Run the reasonmed SIMULATION server (simulated completions, not a real model)."""
    from reasonmed.sim.server import main

    try:
        settings = SimSettings(
            host=host,
            port=port,
            accuracy=parse_assignments(accuracy or [], "--accuracy"),
            default_accuracy=default_accuracy,
            refine_accuracy=refine_accuracy,
            verifier_error_rate=verifier_error_rate,
            questions_db=questions_db,
            styles=parse_styles(style or [], "--style"),
            default_style=style_named(default_style),
            base_latency_ms=base_latency_ms,
            per_token_ms=per_token_ms,
            max_num_seqs=max_num_seqs,
            max_model_len=max_model_len,
            length_profile=length_profile,
            fault_rate=fault_rate,
            fault_kinds=tuple(k.strip() for k in fault_kinds.split(",") if k.strip()),
            faults=parse_assignments(fault or [], "--fault"),
            fault_seed=fault_seed,
            fault_script=tuple(k.strip() for k in fault_script.split(",") if k.strip()),
            targeted_faults=tuple(fault_when or ()),
            retry_after=retry_after,
            rate_limit_rpm=rate_limit_rpm,
            rate_limit_tpm=rate_limit_tpm,
            rate_limit_window_s=rate_limit_window_s,
            rate_limit_headers=rate_limit_headers,
            hang_seconds=hang_seconds,
            log_level=log_level,
            script=script,
            batch_max_bytes=batch_max_bytes,
            batch_max_requests=batch_max_requests,
            batch_delay_s=batch_delay_s,
            batch_window_s=batch_window_s,
            batch_concurrency=batch_concurrency,
            batch_line_failure_rate=batch_line_failure_rate,
        )
        from reasonmed.sim.faults import FaultPlan

        FaultPlan(
            settings.fault_rate, settings.fault_kinds, settings.faults, script=settings.fault_script
        )  # validate
        if settings.script:
            from pathlib import Path

            from reasonmed.sim.script import load_script

            load_script(Path(settings.script))  # validate: a one-line error, not a server that dies
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    main(settings)


def run() -> None:
    """Entry point of ``python -m reasonmed.sim``."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=HELP)
    app.command(help=HELP)(sim_server)
    app()
