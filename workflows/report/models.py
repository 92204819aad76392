"""Contracts of ``ReportWorkflow`` (``report/<name>``): which report, and what it carried."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from workflows.models import DeliveryRecord
from workflows.policy.health_report import HealthReport

__all__ = ["WORKFLOW", "KIND_DIGEST", "KIND_PIPELINE_HEALTH", "ReportInput", "ReportResult", "HealthReportRequest"]

WORKFLOW = "ReportWorkflow"
KIND_DIGEST = "digest"
KIND_PIPELINE_HEALTH = "pipeline-health"


class ReportInput(BaseModel):
    """Which report to run."""

    kind: str = KIND_DIGEST
    """``digest`` (a digest receiver's held incidents) or ``pipeline-health`` (a repository's pipelines)."""
    receiver: str
    repo: str | None = None
    """``pipeline-health``: the repository (``owner/name``)."""
    period: str | None = None
    """``pipeline-health``: how far back it looks (default ``7d``)."""


class ReportResult(BaseModel):
    """What the report carried and where it went."""

    incidents: list[str] = Field(default_factory=list)
    deliveries: list[DeliveryRecord] = Field(default_factory=list)
    report: HealthReport | None = None
    """``pipeline-health``: the report sent."""


class HealthReportRequest(BaseModel):
    """Activity input: the health report of one repository's pipelines over ``period`` before ``now``."""

    repo: str
    period: str = "7d"
    now: datetime
