"""The endpoint an evaluation or a scoring run talks to, named in the pipeline config.

The flows check the name on the worker; ``reasonmed eval`` and ``reasonmed score`` check it before a flow
starts (``reasonmed.jobs``), with the same words.
"""

from __future__ import annotations

from reasonmed.config import ConfigError, EndpointConfig, PipelineConfig


class UnknownEndpoint(ConfigError):
    """A name that is not under ``endpoints`` in the pipeline config."""


def endpoint_named(cfg: PipelineConfig, name: str, option: str) -> EndpointConfig:
    """The endpoint called ``name``; ``option`` is how the user gave it (``--model-endpoint``...)."""
    if name not in cfg.endpoints:
        raise UnknownEndpoint(
            f"{option}: unknown endpoint {name!r} (known: {', '.join(sorted(cfg.endpoints))})"
        )
    return cfg.endpoints[name]
