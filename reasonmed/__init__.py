"""ReasonMed pipeline: verified medical chain-of-thought datasets, grown under Prefect.

Notebook entry points (the same runs as the CLI): ``reasonmed.build(...)``, ``reasonmed.samples(...)``
and ``reasonmed.show(question_id)``; see ``reasonmed.api``.
"""

from __future__ import annotations

from typing import Any

from reasonmed.version import __version__

__all__ = ["__version__", "build", "samples", "show"]


def build(*args: Any, **kwargs: Any) -> Any:
    """See ``reasonmed.api.build`` (imported on first use: ``import reasonmed`` stays light)."""
    from reasonmed.api import build as _build

    return _build(*args, **kwargs)


def samples(*args: Any, **kwargs: Any) -> Any:
    """See ``reasonmed.api.samples``."""
    from reasonmed.api import samples as _samples

    return _samples(*args, **kwargs)


def show(*args: Any, **kwargs: Any) -> Any:
    """See ``reasonmed.api.show``."""
    from reasonmed.api import show as _show

    return _show(*args, **kwargs)
