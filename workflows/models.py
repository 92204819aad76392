"""Models that cross the Temporal boundary: workflow inputs, signals, activity
requests and results. One model in, one model out, so fields can be added
without breaking running workflows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "Severity",
    "SendPriority",
    "SEND_PRIORITIES",
    "MessageField",
    "Link",
    "Action",
    "Message",
    "SendRequest",
    "DeliveryRecord",
]

Severity = Literal["info", "success", "warning", "error", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "success", "warning", "error", "critical")
SendPriority = Literal["critical", "page", "update"]
SEND_PRIORITIES: tuple[str, ...] = ("critical", "page", "update")
"""Most urgent first: a critical first notification, any other first notification (a page), an update."""


class MessageField(BaseModel):
    """A short name/value pair shown beside the message text."""

    title: str
    value: str
    short: bool = True


class Link(BaseModel):
    """A link shown with the message (and a button where the channel has them)."""

    text: str
    url: str


class Action(BaseModel):
    """An interactive button with a stable id, for ChatOps."""

    action_id: str
    text: str
    value: str = ""
    url: str | None = None
    style: Literal["primary", "danger"] | None = None


class Message(BaseModel):
    """One channel-neutral notification; each channel renders it its own way."""

    title: str
    text: str = ""
    severity: Severity = "info"
    fields: list[MessageField] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    """The routing labels, kept for rendering and audit."""
    source: str = ""
    """The workflow id that sent this message."""


class SendRequest(BaseModel):
    """Activity input: deliver one message on one named channel."""

    channel: str
    receiver: str
    message: Message
    idempotency_key: str
    """Workflow id + step + channel: a retried send never shows twice."""
    action: Literal["notify", "trigger", "acknowledge", "resolve"] = "notify"
    """Lifecycle for incident-style channels (PagerDuty, GitHub issues, Jira)."""
    update_of: str | None = None
    """``message_id`` of an earlier send on this channel to edit in place."""
    thread_of: str | None = None
    """``message_id`` of an earlier send on this channel to reply under."""
    dedup_key: str | None = None
    """Stable across an incident's life (PagerDuty ``dedup_key``, GitHub marker)."""
    priority: SendPriority = "page"
    """Which sends a paced channel lets through first: ``critical`` pages, then other pages, then
    updates (thread replies, edits, acknowledgements); see ``activities.channels.base.Channel.pace``."""
    tried_at: datetime | None = None
    """When a local try of this send was made that may have reached the channel (``workflows.delivery``,
    local pages): this send counts as a retry and looks for a duplicate from then on."""


class DeliveryRecord(BaseModel):
    """What happened to one send."""

    channel: str
    receiver: str
    channel_type: str = ""
    outcome: Literal["delivered", "failed", "skipped"]
    attempts: int = 1
    latency_ms: float = 0.0
    message_id: str | None = None
    url: str | None = None
    error: str | None = None
    backup: bool = False
    """True when a backup channel delivered in place of a primary."""
