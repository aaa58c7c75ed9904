"""Unit tests: in-process, no Postgres, no Prefect, seconds (tests/unit/conftest.py enforces it)."""
