"""A throwaway Prefect API for tests that run flows: started once per session, gone afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reasonmed.privacy import apply_offline_defaults

apply_offline_defaults()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):  # a loaded 2-core machine is slow to start it
        yield
