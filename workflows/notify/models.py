"""Contracts of ``NotifyWorkflow`` (``notify/<uuid>``): one message to one receiver."""

from __future__ import annotations

from pydantic import BaseModel, Field

from workflows.models import DeliveryRecord, Message

__all__ = ["WORKFLOW", "QUERY_DELIVERIES", "NotifyInput", "NotifyResult"]

WORKFLOW = "NotifyWorkflow"
QUERY_DELIVERIES = "deliveries"


class NotifyInput(BaseModel):
    """Input of ``NotifyWorkflow``: one message to one receiver."""

    receiver: str
    message: Message


class NotifyResult(BaseModel):
    """Result of ``NotifyWorkflow``."""

    deliveries: list[DeliveryRecord] = Field(default_factory=list)
