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
    "BuildStatus",
    "MessageField",
    "Link",
    "Action",
    "Message",
    "SendRequest",
    "DeliveryRecord",
    "NotifyInput",
    "NotifyResult",
    "TestFailure",
    "TestSummary",
    "CoverageSummary",
    "SecuritySummary",
    "BuildEvent",
]

Severity = Literal["info", "success", "warning", "error", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "success", "warning", "error", "critical")
BuildStatus = Literal["started", "success", "failure", "cancelled"]
BUILD_STATUSES: tuple[str, ...] = ("started", "success", "failure", "cancelled")


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


class NotifyInput(BaseModel):
    """Input of ``NotifyWorkflow``: one message to one receiver."""

    receiver: str
    message: Message


class NotifyResult(BaseModel):
    """Result of ``NotifyWorkflow``."""

    deliveries: list[DeliveryRecord] = Field(default_factory=list)


class TestFailure(BaseModel):
    """One failing test case from a JUnit report."""

    __test__ = False  # not a pytest test class

    name: str
    classname: str = ""
    message: str = ""


class TestSummary(BaseModel):
    """Counts from one or more JUnit XML reports."""

    __test__ = False  # not a pytest test class

    total: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    duration_seconds: float = 0.0
    failures: list[TestFailure] = Field(default_factory=list)
    """The first few failing cases (names and messages)."""


class CoverageSummary(BaseModel):
    """Line coverage from a Cobertura XML, LCOV or coverage.py JSON report."""

    format: str
    line_percent: float
    lines_covered: int = 0
    lines_valid: int = 0


class SecuritySummary(BaseModel):
    """Findings from one SARIF run, counted by level."""

    tool: str
    error: int = 0
    warning: int = 0
    note: int = 0
    top: list[str] = Field(default_factory=list)
    """The first few findings, ``rule: message (file:line)``."""


class BuildEvent(BaseModel):
    """One CI event (``tocsin build``), signalled to ``PipelineWorkflow``."""

    repo: str
    branch: str
    commit: str
    status: BuildStatus
    workflow: str = "ci"
    url: str | None = None
    pr: int | None = None
    author: str | None = None
    duration_seconds: float | None = None
    tests: TestSummary | None = None
    coverage: CoverageSummary | None = None
    security: list[SecuritySummary] = Field(default_factory=list)
    sent_at: datetime | None = None
    """When the CLI sent the event (for latency measurements only)."""

    def dedupe_key(self) -> str:
        """Same key for a CI retry of the same event."""
        return f"{self.workflow}|{self.commit}|{self.status}|{self.url or ''}"
