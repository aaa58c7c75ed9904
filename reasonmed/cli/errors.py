"""The one place where the CLI turns a common mistake into one line that says what to do.

Commands raise (or let through) the exception; ``reasonmed.cli.main`` asks ``explain`` for the line and
the exit code, prints it to stderr and exits. Anything not recognised here keeps its traceback: that is
a bug to report, not a mistake to fix.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from reasonmed.config import ConfigError
from reasonmed.db.migrate import SchemaNotCurrent
from reasonmed.extras import MissingExtra
from reasonmed.mistake import MISTAKE_EXIT, Mistake
from reasonmed.redact import redact, redact_url


@dataclass(frozen=True, slots=True)
class Explained:
    line: str
    exit_code: int


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _current_database() -> str:
    from reasonmed.config import get_settings

    try:
        return redact_url(get_settings().database_url)
    except Exception:  # noqa: BLE001 - only used to decorate a message
        return "the configured database"


_MISSING_TABLE = ("no such table", "does not exist", "undefinedtable")


def explain(exc: BaseException) -> Explained | None:
    """The one-line account of a recognised mistake (credentials masked: it quotes URLs, files and
    servers), or ``None`` (then the traceback stands)."""
    explained = _explain(exc)
    return None if explained is None else Explained(redact(explained.line), explained.exit_code)


def _explain(exc: BaseException) -> Explained | None:
    if isinstance(exc, Mistake):
        return Explained(f"error: {exc}", exc.exit_code)
    if isinstance(exc, ConfigError):
        return Explained(f"configuration error: {exc}", MISTAKE_EXIT)
    if isinstance(exc, SchemaNotCurrent | MissingExtra):
        return Explained(f"error: {exc}", MISTAKE_EXIT)
    if isinstance(exc, DBAPIError):
        detail = _first_line(exc)
        if isinstance(exc, OperationalError | ProgrammingError) and any(
            m in detail.lower() for m in _MISSING_TABLE
        ):
            return Explained(
                f"error: database {_current_database()} has no ReasonMed tables ({detail}): "
                "run `reasonmed db upgrade` first",
                MISTAKE_EXIT,
            )
        if isinstance(exc, OperationalError):
            return Explained(
                f"error: cannot reach database {_current_database()}: {detail}; start it, or point "
                "REASONMED_DATABASE_URL (or --database-url) at a running one",
                MISTAKE_EXIT,
            )
    return None
