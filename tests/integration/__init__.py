"""Integration tests: real Postgres, real Prefect, real HTTP servers and the real engine."""
