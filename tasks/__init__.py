"""Prefect tasks: thin wrappers that run one stage of the domain library for one question."""

from reasonmed.privacy import apply_offline_defaults

apply_offline_defaults()
