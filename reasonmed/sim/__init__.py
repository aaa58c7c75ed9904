"""The reasonmed SIMULATION server: an OpenAI-compatible stand-in for vLLM-served models.

It exists so the pipeline, its tests and its benchmarks run end to end with no GPU and no weights.
Its replies are deterministic, simulated text (labelled as such everywhere), with emulated latency,
batch limits and injected faults. Start it with ``reasonmed sim-server`` or ``SimServer`` (launcher).
"""
