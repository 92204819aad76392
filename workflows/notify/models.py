"""Contracts of ``NotifyWorkflow`` (``notify/<uuid>``): one message to one receiver.

Also the dead-letter contract every delivering flow shares (:class:`DeadLetter`,
:class:`DeadLetterNotice`): what could not be delivered, and the request that
counts it and tells a person.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from workflows.identity import Actor
from workflows.models import DeliveryRecord, Message

__all__ = ["WORKFLOW", "QUERY_DELIVERIES", "NotifyInput", "NotifyResult", "DeadLetter", "DeadLetterNotice"]

WORKFLOW = "NotifyWorkflow"
QUERY_DELIVERIES = "deliveries"


class DeadLetter(BaseModel):
    """A message one channel of a receiver could not deliver before ``give_up_after``."""

    workflow_id: str
    step: str
    """The notification's step within its workflow (its idempotency key is ``<workflow id>/<step>/<channel>``)."""
    title: str
    """The message's title."""
    receiver: str
    channel: str
    """Empty when the receiver itself is unknown."""
    error: str
    """The last error the channel reported (or why the send gave up)."""
    at: datetime
    """When the delivery gave up (workflow time)."""


class DeadLetterNotice(BaseModel):
    """Activity input: count dead letters and, when no ``dead_letter`` receiver is set, tell the console."""

    letters: list[DeadLetter]
    message: Message
    """What the person is told."""
    key: str
    """Idempotency key of the notice (``<workflow id>/<step>/dead-letter``)."""
    count: bool = True
    """Increment ``tocsin_dead_letters_total`` (False when the notice is only re-told)."""
    console: bool = True
    """Print the notice and append it to the outbox (the built-in dead-letter receiver)."""


class NotifyInput(BaseModel):
    """Input of ``NotifyWorkflow``: one message to one receiver."""

    receiver: str
    message: Message
    actor: Actor | None = None
    """Who sent it (``tocsin notify``), and how they were verified; None when Tocsin itself notifies."""


class NotifyResult(BaseModel):
    """Result of ``NotifyWorkflow``."""

    deliveries: list[DeliveryRecord] = Field(default_factory=list)
    """One record per channel tried, dead-lettered ones included (``outcome="failed"``)."""
    dead_letters: list[DeadLetter] = Field(default_factory=list)
    """The channels that gave up, as told to the ``dead_letter`` receiver."""
