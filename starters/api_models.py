"""The HTTP API's request bodies and its few answers that are not an operation's own model.

Every body refuses unknown keys (a typo is a 422 naming it). ``by`` is optional everywhere: the
identity comes from the credential; when given, it must name that identity (else 403).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from workflows.models import Message
from workflows.pipeline import BuildEvent
from workflows.pipeline.models import MAX_LOG_TAIL

__all__ = [
    "BuildBody",
    "MAX_STEP",
    "Claim",
    "FlakyQuarantineBody",
    "FlakyReleaseBody",
    "NoteBody",
    "SnoozeBody",
    "AlertBody",
    "NotifyBody",
    "DeployBody",
    "ApproveBody",
    "RejectBody",
    "ControlBody",
    "RollbackBody",
    "SilenceBody",
    "Created",
    "Started",
    "Raised",
    "Controlled",
    "RollbackAnswer",
    "Running",
    "AuditExport",
    "ErrorBody",
    "NAME_PATTERN",
]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:+@-]*$"
"""Services, environments and versions: they make workflow ids, so no slashes or spaces."""

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=200)]


MAX_STEP = 200
"""Characters of a build's failing step name."""


class BuildBody(BuildEvent):
    """One CI event (``tocsin build``): a :class:`BuildEvent` whose numbers and texts are checked at the door."""

    duration_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    queued_seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = Field(
        None, description="How long the run waited for a runner (seconds, 0 or more)."
    )
    log_tail: Annotated[str, StringConstraints(max_length=MAX_LOG_TAIL)] | None = Field(
        None, description=f"The end of the run's log (at most {MAX_LOG_TAIL} characters; redacted)."
    )
    step: Annotated[str, StringConstraints(min_length=1, max_length=MAX_STEP, pattern=r"\S")] | None = Field(
        None, description="The failing step's name."
    )
    pr: Annotated[int, Field(gt=0)] | None = None

    def event(self) -> BuildEvent:
        """The plain :class:`BuildEvent` the operation takes."""
        return BuildEvent.model_validate(self.model_dump())


class Claim(BaseModel):
    """A human action's body: ``by`` names who acts, and must be the credential's identity."""

    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(None, description="Who acts; when given, must be the credential's identity.")


Repo = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
TestName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class FlakyReleaseBody(Claim):
    """Lift a test's quarantine in a repository's pipelines."""

    repo: Repo
    test: TestName = Field(..., description="The test's id, classname::name as the flaky list shows it.")


class FlakyQuarantineBody(FlakyReleaseBody):
    """Mute a test's failures in every running pipeline of a repository."""

    until: str | None = Field(None, description="ISO-8601 time or a duration such as 7d; none: until released.")
    reason: Annotated[str, StringConstraints(max_length=500)] = ""


class NoteBody(Claim):
    """Acknowledge, resolve, escalate."""

    note: str = ""


class SnoozeBody(NoteBody):
    """Snooze an incident's escalation."""

    duration: str = Field(..., description="How long, e.g. 30m.")


class AlertBody(Claim):
    """Raise an alert by hand."""

    name: str
    severity: str = Field(..., description="info|warning|error|critical")
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str | None = None


class NotifyBody(BaseModel):
    """One durable notification to one receiver."""

    model_config = ConfigDict(extra="forbid")

    receiver: str
    message: Message


class DeployBody(Claim):
    """Start a deployment (``deploy/<service>/<env>/<version>``)."""

    service: Name
    env: Name
    version: Name
    commit: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{7,64}$")] | None = None
    changes_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+")] | None = None
    change_size: Annotated[int, Field(ge=0)] | None = None
    emergency: bool = False
    reason: str | None = Field(None, description="Why: required with emergency, only with it.")


class ApproveBody(Claim):
    """Approve a deployment."""

    comment: str | None = None


class RejectBody(Claim):
    """Reject a deployment."""

    reason: str


class ControlBody(Claim):
    """Pause, resume, promote or abort a deployment."""

    reason: str = ""


class RollbackBody(Claim):
    """Roll back what is going out, or what went out last."""

    service: Name
    env: Name
    reason: str


class SilenceBody(Claim):
    """Add a silence (maintenance window)."""

    matchers: list[str] = Field(..., min_length=1, description='e.g. service="payments"')
    duration: str = Field(..., description="How long, e.g. 2h.")
    comment: str


class Created(BaseModel):
    """A workflow this request started (or signalled): its id."""

    id: str


class Started(Created):
    """A deployment: its id, and whether this request started it (False: it was already running)."""

    started: bool


class Raised(BaseModel):
    """The incidents an alert reached."""

    incidents: list[str]


class Controlled(BaseModel):
    """A canary control sent."""

    id: str
    action: Literal["pause", "resume", "promote", "abort"]
    by: str


class RollbackAnswer(BaseModel):
    """What a rollback did: ``signalled``, ``started`` or ``nothing`` (see ``detail``)."""

    workflow_id: str | None
    action: str
    detail: str = ""


class Running(BaseModel):
    """A deployment that has not finished yet."""

    id: str
    status: Literal["running"] = "running"


class AuditExport(BaseModel):
    """The audit export: chained JSON lines, oldest first (as ``tocsin audit export`` writes them)."""

    lines: list[str]


class ErrorBody(BaseModel):
    """Every error answer."""

    error: str
    field: str | None = None
