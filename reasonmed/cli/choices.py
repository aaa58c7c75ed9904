"""The CLI's choice options as enums, built from the one list each rule keeps (so --help lists them and a
wrong value gets the same usage error everywhere)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, TypeAlias, cast

from reasonmed.db.audit_repo import AUDIT_VIEWS
from reasonmed.export.assemble import LAYOUTS
from reasonmed.ingest.loaders import FORMATS
from reasonmed.pipeline.failures import STAGES
from reasonmed.pipeline.rejudge import REJUDGE_STAGES


def _choices(name: str, values: tuple[str, ...] | list[str]) -> type[StrEnum]:
    # The functional API returns a class; typeshed types the call as it types any enum call, as a member.
    return cast("type[StrEnum]", StrEnum(name, [(v.replace("-", "_"), v) for v in values]))


if TYPE_CHECKING:  # a type checker cannot see members made at run time: to it a choice is the str it is
    FileFormat: TypeAlias = str
    Layout: TypeAlias = str
    Stage: TypeAlias = str
    AuditView: TypeAlias = str
    RejudgeStage: TypeAlias = str
else:
    FileFormat = _choices("FileFormat", FORMATS)
    Layout = _choices("Layout", list(LAYOUTS))
    Stage = _choices("Stage", STAGES)
    AuditView = _choices("AuditView", list(AUDIT_VIEWS))
    RejudgeStage = _choices("RejudgeStage", REJUDGE_STAGES)
