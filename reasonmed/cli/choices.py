"""The CLI's choice options as enums, built from the one list each rule keeps (so --help lists them and a
wrong value gets the same usage error everywhere)."""

from __future__ import annotations

from enum import StrEnum

from reasonmed.db.audit_repo import AUDIT_VIEWS
from reasonmed.export.assemble import LAYOUTS
from reasonmed.ingest.loaders import FORMATS
from reasonmed.pipeline.failures import STAGES


def _choices(name: str, values: tuple[str, ...] | list[str]) -> type[StrEnum]:
    return StrEnum(name, [(v.replace("-", "_"), v) for v in values])  # type: ignore[return-value]


FileFormat = _choices("FileFormat", FORMATS)
Layout = _choices("Layout", list(LAYOUTS))
Stage = _choices("Stage", STAGES)
AuditView = _choices("AuditView", list(AUDIT_VIEWS))
