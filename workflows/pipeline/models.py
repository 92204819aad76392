"""Contracts of ``PipelineWorkflow`` (``pipeline/<repo>/<branch>``): CI events in, state out.

Code outside Temporal (``operations/``) calls the workflow by these names and
models only; it never imports the workflow class.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from workflows.identity import Actor
from workflows.models import DeliveryRecord
from workflows.notify.models import DeadLetter
from workflows.pipeline.health_models import PipelineHealthState

__all__ = [
    "WORKFLOW",
    "SIGNAL_BUILD_EVENT",
    "QUERY_STATE",
    "pipeline_id",
    "BuildStatus",
    "BUILD_STATUSES",
    "TestFailure",
    "TestSummary",
    "CoverageSummary",
    "SecuritySummary",
    "BuildEvent",
    "Track",
    "PipelineNotice",
    "PipelineState",
    "PipelineInput",
    "TestOutcomeKind",
    "TestOutcome",
    "MAX_TEST_OUTCOMES",
    "MAX_OUTCOME_MESSAGE",
    "bound_outcomes",
    "FAILED_STATUSES",
    "DRILL_WORKFLOW",
    "SIGNAL_FLAKY_QUARANTINE",
    "SIGNAL_FLAKY_RELEASE",
    "MAX_LOG_TAIL",
    "FlakyQuarantine",
    "FlakyRelease",
    "SecurityFinding",
    "MAX_SECURITY_FINDINGS",
]

WORKFLOW = "PipelineWorkflow"
SIGNAL_BUILD_EVENT = "build_event"
QUERY_STATE = "state"

BuildStatus = Literal["started", "success", "failure", "cancelled", "timed_out"]
BUILD_STATUSES: tuple[str, ...] = ("started", "success", "failure", "cancelled", "timed_out")
FAILED_STATUSES: tuple[str, ...] = ("failure", "cancelled", "timed_out")
"""Statuses that open or extend a watched branch's CI failure tracking issue."""
DRILL_WORKFLOW = "tocsin-drill"
"""The CI workflow name of ``tocsin drill``'s synthetic events: tracked and told, kept out of the health memory."""
SIGNAL_FLAKY_QUARANTINE = "flaky_quarantine"
SIGNAL_FLAKY_RELEASE = "flaky_release"
MAX_LOG_TAIL = 4000
"""Characters kept of ``--log FILE`` (its end)."""


def pipeline_id(repo: str, branch: str) -> str:
    """``pipeline/<repo>/<branch>``."""
    return f"pipeline/{repo}/{branch}"


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
    outcomes: list[TestOutcome] = Field(default_factory=list)
    """Per-test outcomes (bounded: ``MAX_TEST_OUTCOMES``, failures first), for flaky-test history."""


class CoverageSummary(BaseModel):
    """Line coverage from a Cobertura XML, LCOV or coverage.py JSON report."""

    format: str
    line_percent: float
    lines_covered: int = 0
    lines_valid: int = 0


class SecurityFinding(BaseModel):
    """One serious SARIF finding: level ``error``, or a CVSS score of 7 or more."""

    rule: str
    """The rule id (or the CVE when the rule is one)."""
    cve: str | None = None
    """A ``CVE-…`` id found in the rule id, its tags or the message."""
    package: str | None = None
    """The affected package (``properties.package``/``packageName``/``purl``, or the message's), when known."""
    location: str = ""
    """``file:line`` of the first location."""
    level: str = "error"
    cvss: float | None = None
    """``properties.security-severity`` of the result or the rule (GitHub's convention)."""
    message: str = ""


MAX_SECURITY_FINDINGS = 20
"""Serious findings carried per SARIF run (the count goes on in ``critical``)."""


class SecuritySummary(BaseModel):
    """Findings from one SARIF run, counted by level."""

    tool: str
    error: int = 0
    warning: int = 0
    note: int = 0
    top: list[str] = Field(default_factory=list)
    """The first few findings, ``rule: message (file:line)``."""
    critical: int = 0
    """Findings of level ``error`` or with a CVSS score ≥ 7 (each is a critical ``kind=security`` notice)."""
    findings: list[SecurityFinding] = Field(default_factory=list)
    """The first ``MAX_SECURITY_FINDINGS`` of them."""


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
    actor: Actor | None = None
    """Who sent it (a CI identity, or a person), and how they were verified; ``author`` is the commit's."""
    log_tail: str | None = None
    """The end of the run's log (``--log FILE``, at most ``MAX_LOG_TAIL`` characters, redacted)."""
    step: str | None = None
    """The failing step's name (``--step``), when known."""
    queued_seconds: float | None = None
    """How long the run waited for a runner (``--queued-seconds``)."""

    def dedupe_key(self) -> str:
        """Same key for a CI retry of the same event."""
        return f"{self.workflow}|{self.commit}|{self.status}|{self.url or ''}"


class Track(BaseModel):
    """State of one CI workflow on one branch."""

    last_status: str | None = None
    consecutive_failures: int = 0
    failing_since: str | None = None
    """Commit of the first failure in the current streak."""
    last_commit: str | None = None


class PipelineNotice(BaseModel):
    """One processed event and what it notified."""

    seq: int
    alertname: str
    commit: str
    workflow: str
    notified: bool
    receivers: list[str] = Field(default_factory=list)
    deliveries: list[DeliveryRecord] = Field(default_factory=list)
    """Filled in once every receiver's delivery has finished (delivered, failed over or given up)."""
    delivering: bool = False
    """True while this event's deliveries are still running (they never hold up later events)."""
    silenced_by: list[str] = Field(default_factory=list)
    """Silences that kept this event quiet (it is still recorded)."""
    tracking: Literal["trigger", "resolve"] | None = None
    """What this event did to the CI failure tracking issue: opened or commented (``trigger``), closed (``resolve``)."""
    tracking_deliveries: list[DeliveryRecord] = Field(default_factory=list)
    """The tracking issue's deliveries (GitHub channels; ``url`` is the issue's)."""
    flaky: bool = False
    """The build failed only on known-flaky or quarantined tests (reported as ``info``, not a page)."""


class PipelineState(BaseModel):
    """Everything the entity remembers across continue-as-new."""

    tracks: dict[str, Track] = Field(default_factory=dict)
    """One track per CI workflow name."""
    seq: int = 0
    """Events processed so far (numbers each notification's idempotency key)."""
    recent_keys: list[str] = Field(default_factory=list)
    """Dedupe keys of recent events: a CI retry of the same event changes nothing."""
    notices: list[PipelineNotice] = Field(default_factory=list)
    runs: int = 1
    """How many runs (continue-as-new generations) this entity has had."""
    dead_letters: list[DeadLetter] = Field(default_factory=list)
    """The most recent notifications a channel gave up on (bounded; see ``dead_letter_count``)."""
    dead_letter_count: int = 0
    """Dead letters over the entity's whole life."""
    journal_seq: int = 0
    """Audit journal records made so far (``workflows.journal``), carried across continue-as-new."""
    health: PipelineHealthState = Field(default_factory=PipelineHealthState)
    """Flaky tests, build trends and failure signatures (``workflows.policy.pipeline_health``)."""
    tracking: list[str] = Field(default_factory=list)
    """Receivers whose CI failure tracking issue is open (closed on the next success)."""
    escalated: str | None = None
    """Fingerprint of the ``BuildFailing`` alert raised for ``pipelines.escalation`` (resolved on success)."""
    security_seen: list[str] = Field(default_factory=list)
    """Serious security findings already reported (``rule|cve|package|location``; the last 200)."""
    last_event: BuildEvent | None = None
    """The last finished build (status, commit, duration, coverage; its outcomes and log dropped)."""


class FlakyQuarantine(BaseModel):
    """Signal ``flaky_quarantine``: mute one test's failures in this pipeline."""

    test: str
    """The test's node id (``classname::name``)."""
    actor: Actor
    until: datetime | None = None
    reason: str = ""


class FlakyRelease(BaseModel):
    """Signal ``flaky_release``: lift a test's quarantine in this pipeline."""

    test: str
    actor: Actor


class PipelineInput(BaseModel):
    """Input of ``PipelineWorkflow`` (also its continue-as-new input)."""

    repo: str
    branch: str
    state: PipelineState | None = None
    pending: list[BuildEvent] = Field(default_factory=list)
    max_history: int = 2000
    """Continue-as-new once the history holds this many events."""


# --------------------------------------------------------------------------
# Per-test outcomes (issue 14): what flaky-test detection reads from a build.
# --------------------------------------------------------------------------

TestOutcomeKind = Literal["passed", "failed", "error", "skipped"]

MAX_TEST_OUTCOMES = 500
"""How many per-test outcomes one event carries (failures first, then the rest in report order)."""
MAX_OUTCOME_MESSAGE = 300
"""Characters kept of one outcome's message."""


class TestOutcome(BaseModel):
    """The final outcome of one test in one CI run."""

    __test__ = False  # not a pytest test class

    nodeid: str
    """``classname::name`` for JUnit (pytest node ids are converted to that form)."""
    outcome: TestOutcomeKind
    duration_seconds: float = 0.0
    message: str = ""
    """First line of the failure or error message (at most ``MAX_OUTCOME_MESSAGE`` characters)."""
    reruns: int = 0
    """Failed attempts before the final outcome in this run (pytest-rerunfailures ``rerun``,
    Surefire ``flakyFailure``/``flakyError``/``rerunFailure``/``rerunError``)."""

    @property
    def failed(self) -> bool:
        """The final outcome is a failure or an error."""
        return self.outcome in ("failed", "error")

    @property
    def flaky_in_run(self) -> bool:
        """Failed then passed in this run (a rerun that passed)."""
        return self.reruns > 0 and self.outcome == "passed"


def bound_outcomes(outcomes: list[TestOutcome], limit: int = MAX_TEST_OUTCOMES) -> list[TestOutcome]:
    """At most ``limit`` outcomes: failures first, then passes that needed reruns, then the rest (report order).

    Messages are cut to ``MAX_OUTCOME_MESSAGE`` characters.
    """

    def rank(item: TestOutcome) -> int:
        return 0 if item.failed else 1 if item.reruns else 2

    kept = sorted(outcomes, key=rank)[: max(limit, 0)]
    return [
        o
        if len(o.message) <= MAX_OUTCOME_MESSAGE
        else o.model_copy(update={"message": o.message[: MAX_OUTCOME_MESSAGE - 1] + "\u2026"})
        for o in kept
    ]


TestSummary.model_rebuild()
BuildEvent.model_rebuild()
PipelineState.model_rebuild()
PipelineInput.model_rebuild()
