"""``reasonmed sim-server`` (filled in by the LLM-layer work)."""
