"""The per-question pipeline: generation, verification, tiered resolution and summarisation.

Pure async Python over the agents and ``reasonmed.db``; the Prefect layer (``tasks/``, ``flows/``)
only schedules these stage functions.
"""
