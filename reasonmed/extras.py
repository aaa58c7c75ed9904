"""Optional dependencies (the package's extras): import one, or say in one line which extra installs it."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType


class MissingExtra(ImportError):
    """An optional package is not installed; the message names the extra that installs it."""


def require(module: str, extra: str) -> ModuleType:
    """``module``, imported; a ``MissingExtra`` naming ``pip install 'reasonmed[extra]'`` if it is absent."""
    try:
        return import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module == exc.name or module.startswith(f"{exc.name}.")):
            raise  # something the module itself imports is missing: a broken install, not a missing extra
        raise MissingExtra(
            f"{module.split('.')[0]} is not installed; it comes with the [{extra}] extra: "
            f"pip install 'reasonmed[{extra}]'"
        ) from exc
