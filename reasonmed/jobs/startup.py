"""What a job checks before anything starts: the schema, whether there is work at all, and whether the
endpoint it talks to is there and answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from reasonmed.config import EndpointConfig, PipelineConfig, get_settings, override_settings
from reasonmed.db import inspect_repo, migrate
from reasonmed.db.engine import get_engine
from reasonmed.evaluation.endpoints import UnknownEndpoint, endpoint_named
from reasonmed.mistake import Mistake
from reasonmed.redact import redact_url

# The main job on the bundled sample, as the README and ``reasonmed --help`` show it.
MAIN_COMMAND = (
    "reasonmed run data/pubmedqa/ori_pqal.json --format pubmedqa"
    " --benchmark-test-ids data/pubmedqa/test_ground_truth.json"
)


def database_label(url: str) -> str:
    """The database as a user finds it: an absolute path for SQLite, the URL (credentials hidden) otherwise."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        return str(Path(u.database).resolve())
    return redact_url(url)


def ensure_schema(engine: Engine, url: str) -> str | None:
    """A new or empty SQLite database is created and migrated here (and the returned line says so).

    An existing database at another revision is never migrated implicitly: that stays the explicit
    ``reasonmed db upgrade`` (a server database may be shared, and a migration deserves a backup first).
    """
    if engine.dialect.name == "sqlite" and migrate.is_blank(engine):
        migrate.upgrade(url)
        return (
            f"new database {database_label(url)}: created and migrated to revision "
            f"{migrate.current_revision(engine)}"
        )
    migrate.require_current(engine, url)
    return None


def require_questions(engine: Engine, sources: list[str] | None) -> None:
    """A run with nothing to work on says how to start, instead of "nothing left to do"."""
    if inspect_repo.count_training_questions(engine, sources) == 0:
        where = f" from {', '.join(sources)}" if sources else ""
        raise Mistake(
            f"the database has no training questions{where} yet; start with the bundled PubMedQA "
            f"sample (from the repository folder): {MAIN_COMMAND}",
            exit_code=1,
        )


def migrated_engine(database_url: str | None) -> Engine:
    """The database named (``--database-url``, else REASONMED_DATABASE_URL, for the rest of the command,
    flows included), at the code's revision; one behind is a mistake, never migrated here."""
    if database_url:
        override_settings(database_url=database_url)
    url = get_settings().database_url
    engine = get_engine(url)
    migrate.require_current(engine, url)
    return engine


def known_endpoint(cfg: PipelineConfig, name: str, option: str) -> EndpointConfig:
    """The endpoint ``name`` of the pipeline config, in the words the flow would use, as a mistake."""
    try:
        return endpoint_named(cfg, name, option)
    except UnknownEndpoint as exc:
        raise Mistake(str(exc)) from None


def require_reachable(cfg: PipelineConfig, name: str, config: Path | None) -> None:
    """Ask the endpoint once before a flow starts: a server that is not there is a one-line mistake,
    not minutes of retries (the default config's simulator is started only by `reasonmed run`)."""
    from reasonmed.llm.registry import LLMRegistry

    checks = [c for c in asyncio.run(LLMRegistry(cfg).check(timeout_s=5.0)) if c.endpoint == name]
    for c in checks:
        if not c.ok:
            fix = (
                "the default config talks to the bundled simulator, which only `reasonmed run` starts by itself: "
                "start `reasonmed sim-server` in another terminal, or pass --config FILE naming a served model"
                if config is None and not get_settings().pipeline_config
                else "start the server, or fix its base_url/model in the pipeline config (`reasonmed config check --ping`)"
            )
            raise Mistake(f"{c.line()}; {fix}")
