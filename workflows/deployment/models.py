"""Contracts of ``DeploymentWorkflow`` (``deploy/<service>/<env>/<version>``) and of the
per service/environment lock ``DeployLockWorkflow`` (``deploy-lock/<service>/<env>``):
workflow ids, type names, update/signal/query names, and every model that crosses
the workflow boundary (inputs, results, signals, updates, queries, activity
requests and results).

Code outside Temporal (``operations/``, ``starters/``) calls the workflows by
these names and models only; it never imports the workflow classes. This module
imports nothing from ``activities`` and nothing from the workflow modules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from workflows.identity import Actor
from workflows.policy.canary import Measurement, MetricReading
from workflows.policy.gates import GateResult
from workflows.policy.risk import RiskScore

__all__ = [
    # names
    "WORKFLOW",
    "QUERY_STATE",
    "UPDATE_APPROVE",
    "UPDATE_REJECT",
    "SIGNAL_PAUSE",
    "SIGNAL_RESUME",
    "SIGNAL_PROMOTE",
    "SIGNAL_ABORT",
    "SIGNAL_ROLLBACK",
    "SIGNAL_LOCK_GRANTED",
    "SIGNAL_LOCK_REFUSED",
    "LOCK_WORKFLOW",
    "LOCK_SIGNAL_ACQUIRE",
    "LOCK_SIGNAL_RELEASE",
    "LOCK_QUERY_HOLDER",
    "APPROVE_ACTION_ID",
    "REJECT_ACTION_ID",
    "PAUSE_ACTION_ID",
    "RESUME_ACTION_ID",
    "PROMOTE_ACTION_ID",
    "ABORT_ACTION_ID",
    "OUTCOME_EXIT_CODES",
    "Outcome",
    "deployment_id",
    "lock_id",
    # the deployment
    "DeployInput",
    "DeployResult",
    "DeploymentState",
    "Decision",
    "DecisionResult",
    "ControlRequest",
    "RollbackRequest",
    "TimelineEntry",
    "GateResult",
    "ApprovalRecord",
    # the lock
    "LockInput",
    "LockAcquire",
    "LockGrant",
    "LockRelease",
    # activities
    "HookCall",
    "HookResult",
    "HealthCheck",
    "HealthResult",
    "MetricQuery",
    "MetricsRequest",
    "MetricsResult",
    "ContextRequest",
    "DeployContext",
    "LockRequest",
    "RunningRequest",
]

# ---------------------------------------------------------------- names

WORKFLOW = "DeploymentWorkflow"
QUERY_STATE = "state"
UPDATE_APPROVE = "approve"
UPDATE_REJECT = "reject"
SIGNAL_PAUSE = "pause"
SIGNAL_RESUME = "resume"
SIGNAL_PROMOTE = "promote"
SIGNAL_ABORT = "abort"
SIGNAL_ROLLBACK = "rollback"
SIGNAL_LOCK_GRANTED = "lock_granted"
"""From the lock to a deployment: its turn."""
SIGNAL_LOCK_REFUSED = "lock_refused"
"""From the lock to a deployment: busy, and the environment refuses to queue."""

LOCK_WORKFLOW = "DeployLockWorkflow"
LOCK_SIGNAL_ACQUIRE = "acquire"
LOCK_SIGNAL_RELEASE = "release"
LOCK_QUERY_HOLDER = "holder"

APPROVE_ACTION_ID = "tocsin_approve"
"""Chat button that approves (value: the deployment's workflow id)."""
REJECT_ACTION_ID = "tocsin_reject"
"""Chat button that rejects (value: the deployment's workflow id)."""
PAUSE_ACTION_ID = "tocsin_pause"
"""Chat button that holds a running canary (value: the deployment's workflow id)."""
RESUME_ACTION_ID = "tocsin_resume"
"""Chat button that continues a paused canary (value: the deployment's workflow id)."""
PROMOTE_ACTION_ID = "tocsin_promote"
"""Chat button that skips the remaining canary steps (value: the deployment's workflow id)."""
ABORT_ACTION_ID = "tocsin_abort"
"""Chat button that aborts the rollout and rolls back (value: the deployment's workflow id)."""

Outcome = Literal["deployed", "rolled_back", "rejected", "expired"]
OUTCOME_EXIT_CODES: dict[str, int] = {"deployed": 0, "rolled_back": 3, "rejected": 4, "expired": 4}
"""``tocsin deploy --wait`` exit code per outcome."""


def deployment_id(service: str, env: str, version: str) -> str:
    """``deploy/<service>/<env>/<version>``."""
    return f"deploy/{service}/{env}/{version}"


def lock_id(service: str, env: str) -> str:
    """``deploy-lock/<service>/<env>``: the lock entity of one service in one environment."""
    return f"deploy-lock/{service}/{env}"


# ---------------------------------------------------------------- the deployment


class DeployInput(BaseModel):
    """Input of ``DeploymentWorkflow`` (``tocsin deploy``)."""

    service: str
    env: str
    version: str
    by: str
    """Who asked for the deployment."""
    commit: str | None = None
    changes_url: str | None = None
    change_size: int | None = None
    """Lines changed, when known (a risk factor)."""
    emergency: bool = False
    reason: str | None = None
    """Why, for an emergency deployment (required with ``emergency``)."""
    rollback_of: str | None = None
    """Set for a rollback of an already finished deployment (``tocsin rollback``)."""
    rollback_source: str = "cli"
    actor: Actor | None = None
    """Who asked, and how they were verified (``by`` is its name); None in runs started before identities."""


class Decision(BaseModel):
    """Argument of the ``approve`` and ``reject`` updates."""

    by: str
    comment: str | None = None
    """Why approved (optional)."""
    reason: str | None = None
    """Why rejected (required to reject)."""
    actor: Actor | None = None
    """Who decides, and how they were verified (``by`` is its name)."""


class DecisionResult(BaseModel):
    """Answer of an accepted ``approve``/``reject``."""

    accepted: bool = True
    approvals: int = 0
    required: int = 0
    stage: str = ""
    message: str = ""


class ControlRequest(BaseModel):
    """Argument of the ``pause``, ``resume``, ``promote`` and ``abort`` signals."""

    by: str
    reason: str | None = None
    actor: Actor | None = None
    """Who steers, and how they were verified (``by`` is its name)."""


class RollbackRequest(BaseModel):
    """Argument of the ``rollback`` signal (CLI, ChatOps, or an incident's rollback-trigger alert)."""

    by: str
    reason: str
    source: str = "cli"
    """``cli``, ``slack``, ``incident:<id>``…"""
    actor: Actor | None = None
    """Who asked, and how they were verified (``by`` is its name)."""


class TimelineEntry(BaseModel):
    """One thing that happened, and who did it."""

    at: datetime
    actor: str
    action: str
    detail: str = ""
    identity: Actor | None = None
    """How ``actor`` was verified, for a person's action (None: Tocsin itself, or an older run)."""


class ApprovalRecord(BaseModel):
    """One accepted approval."""

    by: str
    at: datetime
    comment: str | None = None
    actor: Actor | None = None
    """How the approver was verified."""


class DeploymentState(BaseModel):
    """Query ``state``: everything about the deployment so far."""

    workflow_id: str = ""
    service: str = ""
    env: str = ""
    version: str = ""
    by: str = ""
    deployer: Actor | None = None
    """Who asked, and how they were verified (four eyes compares approvers to it)."""
    commit: str | None = None
    emergency: bool = False
    emergency_reason: str | None = None
    stage: str = "starting"
    """starting, checking, pending_approval, approved, queued (waiting for the lock), canary,
    verifying, rolling_back, then deployed, rolled_back, rejected or expired."""
    risk: RiskScore | None = None
    gates: list[GateResult] = Field(default_factory=list)
    approvers: list[str] = Field(default_factory=list)
    required_approvals: int = 0
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    approval_deadline: datetime | None = None
    steps: list[int] = Field(default_factory=list)
    step: int = 0
    """Index of the current canary step."""
    weight: int = 0
    paused: bool = False
    last_measurement: Measurement | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    outcome: Outcome | None = None
    reason: str = ""
    incident_requested: bool = False
    recorded_only: bool = False
    """The environment has no deploy hook: the rollout is recorded, nothing is deployed."""


class DeployResult(BaseModel):
    """Result of ``DeploymentWorkflow``."""

    workflow_id: str
    service: str
    env: str
    version: str
    outcome: Outcome
    reason: str = ""
    emergency: bool = False
    risk: RiskScore | None = None
    gates: list[GateResult] = Field(default_factory=list)
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    recorded_only: bool = False
    """``deployed`` with no deploy hook: recorded only, nothing was deployed."""


# ---------------------------------------------------------------- the lock


class LockAcquire(BaseModel):
    """Signal ``acquire`` of ``DeployLockWorkflow``."""

    workflow_id: str
    mode: Literal["wait", "refuse"] = "wait"


class LockInput(BaseModel):
    """Input of ``DeployLockWorkflow`` (also its continue-as-new input)."""

    service: str
    env: str
    holder: str | None = None
    queue: list[LockAcquire] = Field(default_factory=list)


class LockGrant(BaseModel):
    """Signal ``lock_granted`` to a deployment."""

    lock_id: str


class LockRelease(BaseModel):
    """Signal ``release`` to the lock (or ``lock_refused`` to a deployment)."""

    workflow_id: str
    detail: str = ""


# ---------------------------------------------------------------- activities


class HookCall(BaseModel):
    """POST ``payload`` as JSON to ``url``."""

    url: str
    """May hold ``${ENV}`` references, resolved in the worker (never in history)."""
    payload: dict[str, Any] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra headers, e.g. ``Authorization: Bearer ${DEPLOY_TOKEN}`` (resolved in the worker)."""
    timeout_seconds: float = 30.0
    idempotency_key: str = ""
    """Sent as ``Idempotency-Key`` so a retried call can be recognised by the receiver."""


class HookResult(BaseModel):
    """A hook's answer."""

    status: int
    body: str = ""


class HealthCheck(BaseModel):
    """GET ``url``; 2xx is healthy."""

    url: str
    timeout_seconds: float = 10.0


class HealthResult(BaseModel):
    """A healthy answer."""

    url: str
    status: int


class MetricQuery(BaseModel):
    """One named PromQL instant query (already rendered)."""

    name: str
    query: str


class MetricsRequest(BaseModel):
    """One measurement: every query, against one Prometheus."""

    prometheus_url: str
    queries: list[MetricQuery] = Field(default_factory=list)
    timeout_seconds: float = 10.0


class MetricsResult(BaseModel):
    """One reading per query; errors are readings too (inconclusive, not failures)."""

    readings: list[MetricReading] = Field(default_factory=list)


class ContextRequest(BaseModel):
    """What the gates and the risk score need to know about a service."""

    service: str
    env: str
    commit: str | None = None
    workflow_id: str = ""
    """The asking deployment (left out of its own look-ups)."""
    now: datetime


class DeployContext(BaseModel):
    """Facts from Temporal visibility, for gates and risk."""

    open_critical_incidents: list[str] = Field(default_factory=list)
    pipeline_green: bool | None = None
    """True/False when the commit's CI result is known, else None."""
    pipeline_detail: str = "no pipeline known for this commit"
    recent_pipeline_failures: int = 0
    recent_rollbacks: int = 0
    last_deploy_at: datetime | None = None


class LockRequest(BaseModel):
    """Signal-with-start the lock of one service/environment."""

    lock_id: str
    service: str
    env: str
    acquire: LockAcquire


class RunningRequest(BaseModel):
    """Is this workflow still running?"""

    workflow_id: str
