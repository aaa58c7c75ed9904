"""``reasonmed config``: print and check configuration before a long run starts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from reasonmed.cli.app import config_app
from reasonmed.cli.common import console, err_console
from reasonmed.cli.safe_text import safe_text
from reasonmed.config import PipelineConfig, get_settings, load_pipeline_config
from reasonmed.redact import redact_data

ConfigPath = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="pipeline YAML (default: REASONMED_PIPELINE_CONFIG or the simulator default)"
    ),
]


@config_app.command("check")
def check(
    config: ConfigPath = None,
    ping: Annotated[
        bool,
        typer.Option(
            "--ping",
            help="Also ask every endpoint once (GET /models) whether it is up, serves the configured model "
            "and how long its context is, as every run does before it claims work; then name every role whose "
            "largest request (prompt + max_tokens) can exceed its endpoint's context.",
        ),
    ] = False,
) -> None:
    """Validate the settings and the pipeline file; print the agents and endpoints they name."""
    settings = get_settings()
    cfg = load_pipeline_config(config or settings.pipeline_config)
    table = Table(title=f"pipeline config {cfg.config_hash[:12]}")
    for col in ("agent", "endpoint", "model", "temperatures", "prompt"):
        table.add_column(col)
    for i, g in enumerate(cfg.agents.generators):
        ep = cfg.endpoints[g.endpoint]
        p = cfg.prompt("generate", i)
        temperatures = ", ".join(f"{t:g}" for t in g.temperatures) + f" x{g.paths_per_temperature}"
        cells = ("generator", g.endpoint, ep.model, temperatures, f"{p.version} ({p.origin})")
        table.add_row(*map(safe_text, cells))
    for role, prompt_role in (
        ("verifier", "verify"),
        ("ranker", "rank"),
        ("refiner", "refine"),
        ("regenerator", "regenerate"),
        ("summarizer", "summarize"),
    ):
        a = getattr(cfg.agents, role)
        p = cfg.prompt(prompt_role)
        model = cfg.endpoints[a.endpoint].model
        cells = (role, a.endpoint, model, f"{a.temperature:g}", f"{p.version} ({p.origin})")
        table.add_row(*map(safe_text, cells))
    console.print(table)
    console.print(
        safe_text(f"prompt profile: {cfg.prompts}; re-asks of unusable output: {cfg.output_retries}")
    )
    t = cfg.tiers
    console.print(
        safe_text(
            f"{cfg.paths_per_question} paths per question; easy >= {t.easy_min_correct} correct, "
            f"medium {t.medium_min_correct}-{t.easy_min_correct - 1}, difficult < {t.medium_min_correct}; keep top {t.keep_top}"
        )
    )
    if ping:
        _ping(cfg)
    console.print("config OK")


def _ping(cfg: PipelineConfig) -> None:
    from reasonmed.llm.registry import LLMRegistry
    from reasonmed.pipeline.budgets import over_budget

    registry = LLMRegistry(cfg)
    checks = asyncio.run(registry.check())
    for c in checks:
        (console if c.ok else err_console).print(safe_text(c.line()))  # quotes the server's reply
    over = over_budget(cfg, registry.contexts)
    for b, context in over:
        err_console.print(safe_text(f"budget {b.describe(context)}"))
    unknown = sorted(name for name, c in registry.contexts.items() if c.tokens is None)
    if unknown:
        console.print(
            safe_text(f"budgets unchecked on {', '.join(unknown)}: context unknown (set context_tokens)")
        )
    elif not over:
        console.print("budgets: every role's largest request fits its endpoint's context", markup=False)
    failed = [c for c in checks if not c.ok]
    if failed:
        err_console.print(safe_text(f"error: {len(failed)} endpoint(s) cannot serve a run (see above)"))
    if over:
        err_console.print(
            safe_text(
                f"error: {len(over)} role(s) can exceed their endpoint's context (see above): their requests "
                "would have max_tokens lowered, or be refused; raise the server's context or lower those "
                "max_tokens (deploy/README.md, context budgets)"
            )
        )
    if failed or over:
        raise typer.Exit(1)


@config_app.command("show")
def show() -> None:
    """Print the effective REASONMED_* settings (every credential hidden: URL passwords in the userinfo or
    the query string, tokens, and any setting whose name says it holds a secret)."""
    settings = get_settings()
    for name, value in redact_data(settings.model_dump(mode="json")).items():
        console.print(safe_text(f"REASONMED_{name.upper()}={value if value is not None else ''}"))
