"""Nightly growth, without Prefect: what a night is asked (``request``), its lock (``guard``), where new
input files come from (``inputs``) and how they are ingested (``ingest``), the night itself (``night``) and
the growth report (``report``).

The flow in ``flows/nightly.py`` hands these what only Prefect has; keeping them here lets tests and the
CLI use them without an API server.
"""
