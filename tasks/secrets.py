"""Secrets from Prefect Secret blocks, for endpoints configured with ``api_key_secret``.

The flows hand this loader to the LLM registry (``reasonmed`` itself never imports Prefect); Prefect's
blocks module is imported only when an endpoint actually names a secret.
"""

from __future__ import annotations


def load_prefect_secret(name: str) -> str:
    """The value of the Prefect Secret block ``name``; the value is never logged."""
    from prefect.blocks.system import Secret

    try:
        # Prefect's sync/async dispatch accepts _sync; Block.load's signature does not declare it.
        secret = Secret.load(name, _sync=True)  # type: ignore[call-arg]
    except ValueError as exc:
        raise RuntimeError(
            f"Prefect Secret block {name!r} could not be loaded ({type(exc).__name__})"
        ) from None
    assert isinstance(secret, Secret)
    value = secret.get()
    if not isinstance(value, str) or not value:
        raise RuntimeError(f"Prefect Secret block {name!r} is empty or not a string")
    return value
