"""ReasonMed pipeline: verified medical chain-of-thought datasets, grown under Prefect."""
__version__ = "0.1.0"
