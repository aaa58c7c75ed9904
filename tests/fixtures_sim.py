"""Fixtures that start the project's simulation server as a real process (filled in by the LLM-layer work)."""
