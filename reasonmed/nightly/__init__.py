"""Nightly growth, without Prefect: where new input files come from, and the growth report.

The flow in ``flows/nightly.py`` orchestrates these; keeping them here lets tests and the CLI use them
without an API server.
"""
