"""Secrets from Prefect Secret blocks, for endpoints configured with ``api_key_secret``.

Imported only when such an endpoint is used, so nothing else pays for Prefect's import.
"""

from __future__ import annotations


def load_prefect_secret(name: str) -> str:
    """The value of the Prefect Secret block ``name``; the value is never logged."""
    from prefect.blocks.system import Secret

    try:
        secret = Secret.load(name, _sync=True)
    except ValueError as exc:
        raise RuntimeError(
            f"Prefect Secret block {name!r} could not be loaded ({type(exc).__name__})"
        ) from None
    value = secret.get()
    if not isinstance(value, str) or not value:
        raise RuntimeError(f"Prefect Secret block {name!r} is empty or not a string")
    return value
