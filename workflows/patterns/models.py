"""Contracts of ``FailurePatternsWorkflow`` (``report/failure-patterns``): failed builds in, grouped messages out.

Every failed (not flaky) build of any pipeline is reported once, by the pipeline's
``report_failure_pattern`` activity (``activities.patterns``), as a :class:`FailureSeen`; the entity groups
one signature's occurrences across branches and repositories (``workflows.policy.failure_patterns``) and sends
one message per group.

The grouping models (:class:`Occurrence`, :class:`PatternState`, …) are re-exported from
``workflows.pipeline.health_models`` so that flows take them from this passed-through module: the classes the
activity validates against are then the ones the workflow builds.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from workflows.models import DeliveryRecord
from workflows.notify.models import DeadLetter
from workflows.pipeline.health_models import FailureGroup, Occurrence, PatternConfig, PatternState

__all__ = [
    "WORKFLOW",
    "WORKFLOW_ID",
    "SIGNAL_FAILURE_SEEN",
    "QUERY_STATE",
    "ACTIVITY_REPORT",
    "ALERTNAME",
    "FailureSeen",
    "PatternNotice",
    "FailurePatternsState",
    "FailurePatternsInput",
    "Occurrence",
    "FailureGroup",
    "PatternConfig",
    "PatternState",
    "RECENT_NOTICES",
    "MAX_PENDING",
]

WORKFLOW = "FailurePatternsWorkflow"
WORKFLOW_ID = "report/failure-patterns"
SIGNAL_FAILURE_SEEN = "failure_seen"
QUERY_STATE = "state"
ACTIVITY_REPORT = "report_failure_pattern"
"""The activity a pipeline calls (by name) with one :class:`FailureSeen`."""
ALERTNAME = "BuildFailurePattern"
RECENT_NOTICES = 20
MAX_PENDING = 1000
"""Failures queued but not yet grouped that a continue-as-new carries (beyond: the oldest are dropped)."""


class FailureSeen(BaseModel):
    """Signal ``failure_seen``: one failed (not flaky) build of one pipeline, with its signature."""

    key: str
    """The signature's key (``workflows.policy.failure_patterns.signature``)."""
    category: str
    summary: str
    """The normalised test and message (or step and error class) the key was made from."""
    occurrence: Occurrence
    critical: bool = False
    """The failure is critical: its group is sent as soon as a second pipeline shares it, without waiting
    for the window to close."""
    kind: Literal["test", "log"] = "test"
    """What the signature was made from (a failing test, or the log tail)."""

    @field_validator("occurrence", mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        # An Occurrence built from a module imported inside the workflow sandbox is another class of the
        # same shape: take its fields.
        if isinstance(value, BaseModel) and not isinstance(value, Occurrence):
            return value.model_dump()
        return value


class PatternNotice(BaseModel):
    """One grouped message and where it went."""

    seq: int
    key: str
    title: str
    pipelines: list[str] = Field(default_factory=list)
    count: int = 0
    receivers: list[str] = Field(default_factory=list)
    deliveries: list[DeliveryRecord] = Field(default_factory=list)
    delivering: bool = False
    silenced_by: list[str] = Field(default_factory=list)


class FailurePatternsState(BaseModel):
    """What the entity keeps across continue-as-new (query ``state``)."""

    patterns: PatternState = Field(default_factory=PatternState)
    """Open windows and first sightings (bounded by ``pipelines.health.patterns``)."""
    received: int = 0
    """Failures received since the entity began."""
    sent: int = 0
    """Grouped messages sent (numbers each message's delivery step)."""
    notices: list[PatternNotice] = Field(default_factory=list)
    """The last ``RECENT_NOTICES`` grouped messages."""
    dead_letters: list[DeadLetter] = Field(default_factory=list)
    dead_letter_count: int = 0
    runs: int = 0
    """Continue-as-new count."""
    journal_seq: int = 0


class FailurePatternsInput(BaseModel):
    """Input of ``FailurePatternsWorkflow`` (also its continue-as-new input)."""

    state: FailurePatternsState | None = None
    pending: list[FailureSeen] = Field(default_factory=list)
    max_history: int = 2000
    """Continue-as-new once the history holds this many events."""
