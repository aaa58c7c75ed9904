"""``reasonmed ingest`` (filled in by the ingestion work)."""
