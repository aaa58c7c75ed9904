"""Unit tests stay unit tests: a test here that asks for one of the suite's service fixtures (Postgres,
Prefect, the simulator, the real engine, defined in tests/conftest.py and its plugins) fails at collection,
so `pytest tests/unit` keeps running in seconds on a machine with none of them."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or "tests/unit/" not in item.nodeid.replace("\\", "/"):
            continue
        services = sorted(
            name
            for name, defs in info.name2fixturedefs.items()
            if any(
                d.func.__module__.startswith("tests.") and not d.func.__module__.startswith("tests.unit")
                for d in defs
            )
        )
        if services:
            raise pytest.UsageError(
                f"{item.nodeid} uses the service fixture(s) {', '.join(services)}: move it to tests/integration/"
            )
