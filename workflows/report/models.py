"""Contracts of ``ReportWorkflow`` (``report/<name>``): which report, and what it carried."""

from __future__ import annotations

from pydantic import BaseModel, Field

from workflows.models import DeliveryRecord

__all__ = ["WORKFLOW", "ReportInput", "ReportResult"]

WORKFLOW = "ReportWorkflow"


class ReportInput(BaseModel):
    """Which report to run."""

    kind: str = "digest"
    receiver: str


class ReportResult(BaseModel):
    """What the report carried and where it went."""

    incidents: list[str] = Field(default_factory=list)
    deliveries: list[DeliveryRecord] = Field(default_factory=list)
