"""Prefect flows: thin orchestration over the domain library in ``reasonmed``."""

from reasonmed.privacy import apply_offline_defaults

apply_offline_defaults()
