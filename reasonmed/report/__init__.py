"""The human-facing audit report: figures and an HTML page built from the ``audit_*`` views."""
