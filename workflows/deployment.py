"""``DeploymentWorkflow``: one deployment, ``deploy/<service>/<env>/<version>``.

The life of a deployment:

1. **Lock** — one deployment at a time per service and environment. The
   ``DeployLockWorkflow`` entity (``deploy-lock/<service>/<env>``) grants the
   lock in arrival order; with ``concurrency: refuse`` a busy lock refuses.
2. **Gates** — freeze windows (``--emergency`` with a reason overrides, and is
   flagged everywhere), no open critical incident on the service, the
   commit's pipeline green when known. Each is recorded pass/fail.
3. **Risk** — an explainable 0–10 score (``workflows.policy.risk``); above the
   environment's ``risk_extra_approval_above`` one more approval is needed.
4. **Approval** — a request with risk and changes to the environment's
   receiver; ``approve``/``reject`` are updates (who, when, why) answered at
   once; listed approvers only, four eyes, N-of-M, reminders, expiry.
5. **Canary** — per step the deploy hook sets the weight, the step bakes, and
   Prometheus readings are judged (``workflows.policy.canary``). Inconclusive
   readings pause and notify. ``pause``/``resume``/``promote``/``abort``
   signals steer it.
6. **Health** — every health URL must answer 2xx before a deadline.
7. **Rollback** on a breach, a failed hook or health check, ``abort`` or a
   ``rollback`` signal: rollback hook, critical notification, incident
   requested (recorded in the timeline).

Progress goes to chat as one message edited as the deployment moves, plus
thread replies. ``TocsinStatus`` follows the stage, so Temporal's visibility is
the audit browser.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.deployments import (
        ContextRequest,
        DeployContext,
        DeploymentActivities,
        HealthCheck,
        HookCall,
        LockAcquire,
        LockRequest,
        MetricQuery,
        MetricsRequest,
        MetricsResult,
        RunningRequest,
    )
    from activities.incidents import IncidentActivities
    from workflows import search
    from workflows.config import Config
    from workflows.incident_models import Alert, AlertBatch
    from workflows.delivery import deliver, load_config
    from workflows.environments import EnvironmentConfig, environment_of, render_query
    from workflows.models import Action, Link, Message, MessageField, Severity
    from workflows.policy.canary import Measurement, MetricReading, analysis_verdict, judge_measurement
    from workflows.policy.durations import format_duration, parse_duration
    from workflows.policy.risk import RiskInput, RiskScore, active_intervals, score_risk

__all__ = [
    "DeploymentWorkflow",
    "DeployLockWorkflow",
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
    "LockInput",
    "LockGrant",
    "LockRelease",
    "deployment_id",
    "lock_id",
    "OUTCOME_EXIT_CODES",
    "APPROVE_ACTION_ID",
    "REJECT_ACTION_ID",
]

APPROVE_ACTION_ID = "tocsin_approve"
REJECT_ACTION_ID = "tocsin_reject"

Outcome = Literal["deployed", "rolled_back", "rejected", "expired"]
OUTCOME_EXIT_CODES: dict[str, int] = {"deployed": 0, "rolled_back": 3, "rejected": 4, "expired": 4}
"""``tocsin deploy --wait`` exit code per outcome."""

HOOK_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                         maximum_interval=timedelta(seconds=30))
HEALTH_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=1.5,
                           maximum_interval=timedelta(seconds=10))
VISIBILITY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10),
                               maximum_attempts=10)
METRICS_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
LOCK_CHECK_EVERY = timedelta(minutes=5)
TIMELINE_MAX = 500


def deployment_id(service: str, env: str, version: str) -> str:
    """``deploy/<service>/<env>/<version>``."""
    return f"deploy/{service}/{env}/{version}"


def lock_id(service: str, env: str) -> str:
    """``deploy-lock/<service>/<env>``: the lock entity of one service in one environment."""
    return f"deploy-lock/{service}/{env}"


# ---------------------------------------------------------------- models


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


class Decision(BaseModel):
    """Argument of the ``approve`` and ``reject`` updates."""

    by: str
    comment: str | None = None
    """Why approved (optional)."""
    reason: str | None = None
    """Why rejected (required to reject)."""


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


class RollbackRequest(BaseModel):
    """Argument of the ``rollback`` signal (CLI, ChatOps, or an incident's rollback-trigger alert)."""

    by: str
    reason: str
    source: str = "cli"
    """``cli``, ``slack``, ``incident:<id>``…"""


class TimelineEntry(BaseModel):
    """One thing that happened, and who did it."""

    at: datetime
    actor: str
    action: str
    detail: str = ""


class GateResult(BaseModel):
    """One compliance gate, recorded pass/fail."""

    name: str
    passed: bool
    detail: str = ""
    overridden: bool = False
    """Failed, but overridden by an emergency deployment."""


class ApprovalRecord(BaseModel):
    """One accepted approval."""

    by: str
    at: datetime
    comment: str | None = None


class DeploymentState(BaseModel):
    """Query ``state``: everything about the deployment so far."""

    workflow_id: str = ""
    service: str = ""
    env: str = ""
    version: str = ""
    by: str = ""
    commit: str | None = None
    emergency: bool = False
    emergency_reason: str | None = None
    stage: str = "starting"
    """starting, queued, checking, pending_approval, canary, verifying, rolling_back,
    then deployed, rolled_back, rejected or expired."""
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


class _Finished(Exception):
    """Internal: the deployment reached an outcome."""

    def __init__(self, outcome: Outcome, reason: str):
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


def _error_text(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause) or type(cause).__name__


# ---------------------------------------------------------------- the lock entity


@workflow.defn(name="DeployLockWorkflow")
class DeployLockWorkflow:
    """A FIFO lock for one service in one environment.

    Deployments signal-with-start it with ``acquire`` and are granted the lock
    (signal ``lock_granted``) in arrival order; a ``refuse``-mode request that
    finds the lock busy is answered ``lock_refused``. A holder that ends
    without releasing (terminated) is detected and skipped.
    """

    def __init__(self) -> None:
        self._holder: str | None = None
        self._queue: list[LockAcquire] = []
        self._refuse: list[LockAcquire] = []
        self._released: list[str] = []

    @workflow.signal(name="acquire")
    def acquire(self, request: LockAcquire) -> None:
        """A deployment asks for the lock."""
        wid = request.workflow_id
        if wid == self._holder or any(q.workflow_id == wid for q in self._queue):
            return
        busy = self._holder is not None or bool(self._queue)
        if request.mode == "refuse" and busy:
            self._refuse.append(request)
        else:
            self._queue.append(request)

    @workflow.signal(name="release")
    def release(self, request: LockRelease) -> None:
        """A deployment is done with the lock (or gives up waiting)."""
        self._released.append(request.workflow_id)

    @workflow.query(name="holder")
    def holder(self) -> dict[str, Any]:
        """The current holder and the queue."""
        return {"holder": self._holder, "queue": [q.workflow_id for q in self._queue]}

    async def _signal(self, wid: str, name: str, arg: BaseModel) -> bool:
        try:
            await workflow.get_external_workflow_handle(wid).signal(name, arg)
            return True
        except Exception as exc:  # noqa: BLE001 - the requester is gone; skip it
            workflow.logger.info("lock: cannot signal %s to %s: %s", name, wid, exc)
            return False

    @workflow.run
    async def run(self, input: LockInput) -> None:
        me = workflow.info().workflow_id
        self._holder = input.holder
        self._queue = [*input.queue, *self._queue]
        while True:
            try:
                # A holder's liveness matters only while someone waits for it.
                await workflow.wait_condition(
                    lambda: bool(self._released or self._refuse or (self._holder is None and self._queue)),
                    timeout=LOCK_CHECK_EVERY if self._holder and self._queue else None)
            except asyncio.TimeoutError:
                if self._holder is not None:
                    running = await workflow.execute_activity_method(
                        DeploymentActivities.workflow_running, RunningRequest(workflow_id=self._holder),
                        start_to_close_timeout=timedelta(seconds=10), retry_policy=VISIBILITY_RETRY)
                    if not running:
                        workflow.logger.warning("lock holder %s ended without releasing", self._holder)
                        self._released.append(self._holder)
            while self._released:
                wid = self._released.pop(0)
                if wid == self._holder:
                    self._holder = None
                else:
                    self._queue = [q for q in self._queue if q.workflow_id != wid]
            while self._refuse:
                req = self._refuse.pop(0)
                busy_with = self._holder or (self._queue[0].workflow_id if self._queue else "")
                await self._signal(req.workflow_id, "lock_refused", LockRelease(workflow_id=busy_with, detail="busy"))
            while self._holder is None and self._queue:
                nxt = self._queue.pop(0)
                if await self._signal(nxt.workflow_id, "lock_granted", LockGrant(lock_id=me)):
                    self._holder = nxt.workflow_id
            if self._holder is None and not self._queue and not self._refuse and not self._released:
                # Free: end. The next deployment signal-with-starts a fresh run (a signal that
                # arrives while this one completes makes the server retry the task with it).
                return
            info = workflow.info()
            if info.is_continue_as_new_suggested() or info.get_current_history_length() > 5000:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(LockInput(service=input.service, env=input.env,
                                                   holder=self._holder, queue=self._queue))


# ---------------------------------------------------------------- the deployment


@workflow.defn(name="DeploymentWorkflow")
class DeploymentWorkflow:
    """One deployment of one service version to one environment."""

    def __init__(self) -> None:
        self._s = DeploymentState()
        self._input: DeployInput | None = None
        self._env = EnvironmentConfig()
        self._config: Config | None = None
        self._receiver = "console"
        self._lock: Literal["granted", "refused"] | None = None
        self._lock_detail = ""
        self._rejected: str | None = None
        self._abort: tuple[str, str] | None = None
        """(by, reason) of an abort or rollback request."""
        self._promote = False
        self._chat: list[tuple[str, Message]] = []
        self._chat_closed = False
        self._chat_refs: dict[str, str] = {}
        self._chat_seq = 0

    # ------------------------------------------------------------ queries, updates, signals

    @workflow.query(name="state")
    def state(self) -> DeploymentState:
        """Stage, risk, gates, approvals, canary weight, metrics and the timeline."""
        return self._s

    def _record(self, actor: str, action: str, detail: str = "") -> None:
        self._s.timeline.append(TimelineEntry(at=workflow.now(), actor=actor, action=action, detail=detail))
        if len(self._s.timeline) > TIMELINE_MAX:
            self._s.timeline = self._s.timeline[-TIMELINE_MAX:]

    def _awaiting(self) -> None:
        if self._s.stage != "pending_approval":
            raise ApplicationError(f"deployment is not awaiting approval (stage: {self._s.stage})",
                                   type="NotAwaitingApproval", non_retryable=True)

    @workflow.update(name="approve")
    async def approve(self, decision: Decision) -> DecisionResult:
        """Approve; refused (and recorded) for a non-approver, the deployer under four eyes, or a repeat."""
        by = decision.by.strip()
        refusal = None
        if self._env.approvers and by not in self._env.approvers:
            refusal = f"{by} is not an approver for {self._s.env} (approvers: {', '.join(self._env.approvers)})"
        elif self._env.four_eyes and by == self._s.by:
            refusal = f"four eyes: {by} requested this deployment and cannot approve it"
        elif any(a.by == by for a in self._s.approvals):
            refusal = f"{by} has already approved"
        if refusal is not None:
            self._record(by, "approval_refused", refusal)
            self._say("reply", self._reply(f"Approval by {by} refused: {refusal}", "warning"))
            raise ApplicationError(refusal, type="ApprovalRefused", non_retryable=True)
        self._s.approvals.append(ApprovalRecord(by=by, at=workflow.now(), comment=decision.comment))
        count, need = len(self._s.approvals), self._s.required_approvals
        self._record(by, "approved", f"{count}/{need}" + (f": {decision.comment}" if decision.comment else ""))
        self._say("reply", self._reply(f"Approved by {by} ({count}/{need})"
                                       + (f": {decision.comment}" if decision.comment else ""), "success"))
        return DecisionResult(approvals=count, required=need, stage=self._s.stage,
                              message=f"approved by {by} ({count}/{need})")

    @approve.validator
    def _validate_approve(self, decision: Decision) -> None:
        if not decision.by.strip():
            raise ApplicationError("by: must not be empty", type="BadInput", non_retryable=True)
        self._awaiting()

    @workflow.update(name="reject")
    async def reject(self, decision: Decision) -> DecisionResult:
        """Reject; only approvers (or the deployer, withdrawing) may, with a reason."""
        by = decision.by.strip()
        if self._env.approvers and by not in self._env.approvers and by != self._s.by:
            refusal = f"{by} is not an approver for {self._s.env} (approvers: {', '.join(self._env.approvers)})"
            self._record(by, "rejection_refused", refusal)
            self._say("reply", self._reply(f"Rejection by {by} refused: {refusal}", "warning"))
            raise ApplicationError(refusal, type="ApprovalRefused", non_retryable=True)
        reason = (decision.reason or "").strip()
        self._rejected = f"rejected by {by}: {reason}"
        self._record(by, "rejected", reason)
        return DecisionResult(approvals=len(self._s.approvals), required=self._s.required_approvals,
                              stage="rejected", message=f"rejected by {by}")

    @reject.validator
    def _validate_reject(self, decision: Decision) -> None:
        if not decision.by.strip():
            raise ApplicationError("by: must not be empty", type="BadInput", non_retryable=True)
        if not (decision.reason or "").strip():
            raise ApplicationError("reason: a rejection needs a reason", type="BadInput", non_retryable=True)
        self._awaiting()

    def _live(self) -> bool:
        return self._s.outcome is None and self._s.stage not in ("rolling_back",)

    @workflow.signal(name="pause")
    def pause(self, request: ControlRequest) -> None:
        """Hold the canary where it is."""
        if self._live() and self._s.stage == "canary" and not self._s.paused:
            self._s.paused = True
            self._record(request.by, "paused", request.reason or "")
            self._say("reply", self._reply(f"Paused by {request.by}" + _why(request.reason), "warning"))
        else:
            self._record(request.by, "pause_ignored", f"stage {self._s.stage}")

    @workflow.signal(name="resume")
    def resume(self, request: ControlRequest) -> None:
        """Continue a paused canary (re-measuring after an inconclusive analysis)."""
        if self._live() and self._s.paused:
            self._s.paused = False
            self._record(request.by, "resumed", request.reason or "")
            self._say("reply", self._reply(f"Resumed by {request.by}" + _why(request.reason)))
        else:
            self._record(request.by, "resume_ignored", "not paused")

    @workflow.signal(name="promote")
    def promote(self, request: ControlRequest) -> None:
        """Skip the remaining canary steps and analysis: go to 100% now."""
        if self._live() and self._s.stage == "canary":
            self._promote = True
            self._s.paused = False
            self._record(request.by, "promoted", request.reason or "")
            self._say("reply", self._reply(f"Promoted to 100% by {request.by}" + _why(request.reason), "warning"))
        else:
            self._record(request.by, "promote_ignored", f"stage {self._s.stage}")

    @workflow.signal(name="abort")
    def abort(self, request: ControlRequest) -> None:
        """Stop: roll back a rollout in progress, or withdraw before it starts."""
        self._stop(request.by, "aborted", request.reason or "aborted")

    @workflow.signal(name="rollback")
    def rollback(self, request: RollbackRequest) -> None:
        """Roll back now (``tocsin rollback``, ChatOps, or an incident's rollback-trigger alert)."""
        self._stop(request.by, "rollback_requested", f"{request.reason} (via {request.source})")

    def _stop(self, by: str, action: str, reason: str) -> None:
        if self._live() and self._abort is None:
            self._abort = (by, reason)
            self._record(by, action, reason)
        else:
            self._record(by, action.replace("_requested", "") + "_ignored", f"stage {self._s.stage}")

    @workflow.signal(name="lock_granted")
    def lock_granted(self, grant: LockGrant) -> None:
        """From ``DeployLockWorkflow``: our turn."""
        self._lock = "granted"

    @workflow.signal(name="lock_refused")
    def lock_refused(self, refusal: LockRelease) -> None:
        """From ``DeployLockWorkflow``: busy, and this environment refuses to queue."""
        self._lock = "refused"
        self._lock_detail = refusal.workflow_id

    # ------------------------------------------------------------ chat

    def _title(self, text: str) -> str:
        prefix = "[EMERGENCY] " if self._s.emergency else ""
        return f"{prefix}{text}"

    def _labels(self) -> dict[str, str]:
        labels = {"kind": "deployment", "service": self._s.service, "env": self._s.env,
                  "version": self._s.version, "stage": self._s.stage}
        if self._s.emergency:
            labels["emergency"] = "true"
        return labels

    def _reply(self, text: str, severity: Severity = "info") -> Message:
        return Message(title=self._title(text), severity=severity, labels=self._labels(),
                       source=self._s.workflow_id)

    def _status_message(self, note: str = "") -> Message:
        s = self._s
        stage_text = {
            "pending_approval": "approval needed", "canary": f"canary at {s.weight}%",
            "verifying": "health checks", "deployed": "deployed", "rolled_back": "rolled back",
            "rejected": "rejected", "expired": "approval expired", "rolling_back": "rolling back",
        }.get(s.stage, s.stage)
        severity: Severity = {"deployed": "success", "rolled_back": "critical", "rejected": "warning",
                              "expired": "warning", "rolling_back": "critical"}.get(s.stage, "info")  # type: ignore[assignment]
        lines = [f"Requested by {s.by}" + (f", commit {s.commit}" if s.commit else "")]
        if s.emergency:
            lines.append(f"EMERGENCY deployment: {s.emergency_reason}")
        if s.risk is not None:
            lines.append(f"Risk {s.risk.score:g}/10 ({s.risk.level}):")
            lines.extend(f"  +{f.points:g} {f.name}: {f.detail}" for f in s.risk.factors)
        for gate in s.gates:
            mark = "overridden" if gate.overridden else ("pass" if gate.passed else "FAIL")
            lines.append(f"Gate {gate.name}: {mark} ({gate.detail})")
        if s.stage == "pending_approval" and s.approval_deadline is not None:
            lines.append(f"Approvers: {', '.join(s.approvers) or 'anyone'}; expires {s.approval_deadline:%Y-%m-%d %H:%M} UTC")
        if s.last_measurement is not None:
            lines.append(f"Metrics: {s.last_measurement.summary()}")
        if s.reason:
            lines.append(s.reason)
        if note:
            lines.append(note)
        fields = [
            MessageField(title="Stage", value=stage_text),
            MessageField(title="Approvals", value=f"{len(s.approvals)}/{s.required_approvals}"),
            MessageField(title="Weight", value=f"{s.weight}%"),
        ]
        if s.risk is not None:
            fields.append(MessageField(title="Risk", value=f"{s.risk.score:g}/10 {s.risk.level}"))
        links = [Link(text="Changes", url=self._input.changes_url)] if self._input and self._input.changes_url else []
        actions = []
        if s.stage == "pending_approval":
            actions = [Action(action_id=APPROVE_ACTION_ID, text="Approve", value=s.workflow_id, style="primary"),
                       Action(action_id=REJECT_ACTION_ID, text="Reject", value=s.workflow_id, style="danger")]
        return Message(title=self._title(f"Deploy {s.service} {s.version} to {s.env}: {stage_text}"),
                       text="\n".join(lines), severity=severity, fields=fields, links=links, actions=actions,
                       labels=self._labels(), source=s.workflow_id)

    def _say(self, kind: Literal["status", "reply", "post"], message: Message) -> None:
        """Queue a chat message: ``status`` posts once then edits in place, ``reply`` threads under
        it, ``post`` is a separate message (reminders, the rollback alert)."""
        self._chat.append((kind, message))

    def _progress(self, note: str = "") -> None:
        self._say("status", self._status_message(note))

    async def _chat_loop(self) -> None:
        while True:
            await workflow.wait_condition(lambda: bool(self._chat) or self._chat_closed)
            if not self._chat:
                return
            kind, message = self._chat.pop(0)
            if kind == "status" and self._chat_refs and any(k == "status" for k, _ in self._chat):
                continue  # a newer status supersedes this edit
            self._chat_seq += 1
            step = f"chat-{self._chat_seq}-{kind}"
            assert self._config is not None
            if kind == "status" and not self._chat_refs:
                records = await deliver(self._config, self._receiver, message, step)
                self._chat_refs = {r.channel: r.message_id for r in records if r.message_id}
            elif kind == "status":
                await deliver(self._config, self._receiver, message, step, refs=self._chat_refs)
            elif kind == "reply" and self._chat_refs:
                await deliver(self._config, self._receiver, message, step, refs=self._chat_refs, thread=True)
            else:
                await deliver(self._config, self._receiver, message, step)

    # ------------------------------------------------------------ helpers

    def _set_stage(self, stage: str, status: str | None = None) -> None:
        self._s.stage = stage
        if status is not None:
            workflow.upsert_search_attributes([search.STATUS.value_set(status)])

    def _stopped(self) -> bool:
        return self._abort is not None

    async def _hold_while_paused(self) -> None:
        await workflow.wait_condition(lambda: not self._s.paused or self._stopped() or self._promote)

    async def _wait(self, duration: timedelta) -> None:
        """Wait ``duration`` of un-paused time; returns early on abort or promote."""
        remaining = duration.total_seconds()
        while remaining > 0 and not self._stopped() and not self._promote:
            if self._s.paused:
                await self._hold_while_paused()
                continue
            started = workflow.now()
            try:
                await workflow.wait_condition(lambda: self._s.paused or self._stopped() or self._promote,
                                              timeout=remaining)
            except asyncio.TimeoutError:
                return
            remaining -= (workflow.now() - started).total_seconds()

    async def _hook(self, kind: str, hook: Any, payload: dict[str, Any], step: str) -> None:
        await workflow.execute_activity_method(
            DeploymentActivities.call_hook,
            HookCall(url=hook.url, payload=payload, headers=hook.headers, timeout_seconds=parse_duration(hook.timeout).total_seconds(),
                     idempotency_key=f"{self._s.workflow_id}/{step}"),
            start_to_close_timeout=parse_duration(hook.timeout) + timedelta(seconds=5),
            schedule_to_close_timeout=parse_duration(hook.deadline),
            retry_policy=HOOK_RETRY,
            summary=f"{kind} hook {payload.get('weight', '')}",
        )

    # ------------------------------------------------------------ run

    @workflow.run
    async def run(self, input: DeployInput) -> DeployResult:
        info = workflow.info()
        self._input = input
        s = self._s
        s.workflow_id, s.service, s.env, s.version, s.by = (info.workflow_id, input.service, input.env,
                                                              input.version, input.by)
        s.commit, s.emergency, s.emergency_reason = input.commit, input.emergency, input.reason
        workflow.upsert_search_attributes([
            search.KIND.value_set("deployment"), search.SERVICE.value_set(input.service),
            search.ENVIRONMENT.value_set(input.env), search.STATUS.value_set("starting"),
        ])
        if input.rollback_of:
            self._record(input.by, "rollback_requested", f"{input.reason or ''} (of {input.rollback_of}, "
                                                         f"via {input.rollback_source})")
        else:
            self._record(input.by, "requested", f"{input.service} {input.version} to {input.env}"
                         + (f", commit {input.commit}" if input.commit else ""))
        if input.emergency:
            self._record(input.by, "emergency", input.reason or "")
        self._config = await load_config()
        self._env = environment_of(self._config.environments, input.env)
        self._receiver = self._env.receiver or self._config.route.receiver or "console"
        s.approvers = list(self._env.approvers)
        chat = asyncio.create_task(self._chat_loop())
        lock = lock_id(input.service, input.env)
        holding = False
        try:
            holding = await self._acquire(lock)
            if input.rollback_of:
                await self._roll_back(input.by, input.reason or "rollback requested")
            else:
                await self._gates()
                await self._approval()
                await self._rollout()
                raise _Finished("deployed", f"{input.version} is live in {input.env}")
        except _Finished as done:
            s.outcome, s.reason = done.outcome, done.reason
        finally:
            if holding or self._lock is None:
                try:
                    await workflow.get_external_workflow_handle(lock).signal(
                        "release", LockRelease(workflow_id=info.workflow_id))
                except Exception as exc:  # noqa: BLE001 - the lock checks holders' liveness itself
                    workflow.logger.info("could not release %s: %s", lock, exc)
        assert s.outcome is not None
        self._set_stage(s.outcome, s.outcome)
        self._record("tocsin", s.outcome, s.reason)
        self._progress()
        self._chat_closed = True
        await chat
        await workflow.wait_condition(workflow.all_handlers_finished)
        return DeployResult(workflow_id=s.workflow_id, service=s.service, env=s.env, version=s.version,
                            outcome=s.outcome, reason=s.reason, emergency=s.emergency, risk=s.risk,
                            gates=s.gates, approvals=s.approvals, timeline=s.timeline)

    async def _acquire(self, lock: str) -> bool:
        assert self._input is not None
        await workflow.execute_activity_method(
            DeploymentActivities.request_lock,
            LockRequest(lock_id=lock, service=self._input.service, env=self._input.env,
                        acquire=LockAcquire(workflow_id=self._s.workflow_id, mode=self._env.concurrency)),
            start_to_close_timeout=timedelta(seconds=10), retry_policy=VISIBILITY_RETRY)
        if self._lock is None:
            self._set_stage("queued", "queued")
            self._record("tocsin", "queued", f"waiting for the {self._s.service}/{self._s.env} lock")
        await workflow.wait_condition(lambda: self._lock is not None or self._stopped())
        if self._lock == "refused":
            raise _Finished("rejected", f"refused: another deployment of {self._s.service} to {self._s.env} "
                                        f"is in progress ({self._lock_detail}); concurrency is 'refuse'")
        if self._lock is None:
            assert self._abort is not None
            raise _Finished("rejected", f"withdrawn by {self._abort[0]} while queued: {self._abort[1]}")
        self._record("tocsin", "lock_acquired", lock)
        return True

    # ------------------------------------------------------------ gates and risk

    async def _gates(self) -> None:
        assert self._input is not None and self._config is not None
        s, env, now = self._s, self._env, workflow.now()
        self._set_stage("checking")
        unchecked = ""
        try:
            ctx: DeployContext = await workflow.execute_activity_method(
                DeploymentActivities.deployment_context,
                ContextRequest(service=s.service, env=s.env, commit=s.commit, workflow_id=s.workflow_id, now=now),
                start_to_close_timeout=timedelta(seconds=60), retry_policy=VISIBILITY_RETRY)
        except ActivityError as exc:  # fail closed: a gate that cannot be checked does not pass
            unchecked = f"could not be checked: {_error_text(exc)}"
            ctx = DeployContext(open_critical_incidents=[unchecked], pipeline_green=False,
                                pipeline_detail=unchecked)
        emergency = s.emergency and bool((s.emergency_reason or "").strip())
        frozen = active_intervals(self._config.time_intervals, env.freeze, now)
        gates = [
            GateResult(name="freeze", passed=not frozen,
                       detail=f"inside freeze window {', '.join(frozen)}" if frozen
                       else ("no freeze window active" if env.freeze else "no freeze windows configured")),
            GateResult(name="incidents", passed=not ctx.open_critical_incidents,
                       detail=unchecked or (("open critical incident(s): " + ", ".join(ctx.open_critical_incidents))
                                            if ctx.open_critical_incidents else "no open critical incident")),
            GateResult(name="pipeline", passed=ctx.pipeline_green is not False,
                       detail=("green: " if ctx.pipeline_green else
                               "red: " if ctx.pipeline_green is False else "unknown: ") + ctx.pipeline_detail),
        ]
        for gate in gates:
            if not gate.passed and emergency and gate.name in ("freeze", "incidents"):
                gate.overridden = True
                gate.detail += f" (overridden: EMERGENCY — {s.emergency_reason})"
            self._record("tocsin", f"gate_{gate.name}",
                         ("overridden" if gate.overridden else "pass" if gate.passed else "fail") + f": {gate.detail}")
        s.gates = gates
        s.risk = score_risk(RiskInput(env=s.env, production=env.is_production(s.env),
                                      change_size=self._input.change_size,
                                      recent_pipeline_failures=ctx.recent_pipeline_failures,
                                      recent_rollbacks=ctx.recent_rollbacks,
                                      last_deploy_at=ctx.last_deploy_at), now)
        self._record("tocsin", "risk", f"{s.risk.score:g}/10 {s.risk.level}: "
                     + "; ".join(f"+{f.points:g} {f.name} ({f.detail})" for f in s.risk.factors))
        blocked = [g for g in gates if not g.passed and not g.overridden]
        if blocked:
            raise _Finished("rejected", "blocked by " + "; ".join(f"{g.name} gate: {g.detail}" for g in blocked))

    # ------------------------------------------------------------ approval

    async def _approval(self) -> None:
        s, env = self._s, self._env
        need = env.required_approvals
        if (s.risk is not None and env.risk_extra_approval_above is not None
                and s.risk.score > env.risk_extra_approval_above and need > 0):
            need += 1
            self._record("tocsin", "extra_approval", f"risk {s.risk.score:g} above "
                                                     f"{env.risk_extra_approval_above:g}: {need} approvals needed")
        if env.approvers:
            pool = len(set(env.approvers) - ({s.by} if env.four_eyes else set()))
            if need > pool:
                raise _Finished("rejected", f"{need} approvals needed but only {pool} eligible approver(s) "
                                            f"for {s.env}")
        s.required_approvals = need
        if need == 0:
            self._record("tocsin", "approval_skipped", f"{s.env} requires no approval")
            return
        deadline = workflow.now() + env.approval_window()
        s.approval_deadline = deadline
        self._set_stage("pending_approval", "pending_approval")
        self._progress()
        reminder = env.reminder_interval()
        reminders = 0
        asked_at = workflow.now()

        def decided() -> bool:
            return self._rejected is not None or self._stopped() or len(s.approvals) >= need

        while not decided():
            left = (deadline - workflow.now()).total_seconds()
            if left <= 0:
                raise _Finished("expired", f"approval expired after {env.approval_timeout} "
                                           f"({len(s.approvals)}/{need} approvals)")
            wait = left
            if reminder:  # reminders on a fixed schedule from the request, so they never drift
                next_at = asked_at + reminder * (reminders + 1)
                wait = min(left, max(0.001, (next_at - workflow.now()).total_seconds()))
            try:
                await workflow.wait_condition(decided, timeout=wait)
            except asyncio.TimeoutError:
                if reminder and (deadline - workflow.now()).total_seconds() > 0:
                    reminders += 1
                    self._record("tocsin", "reminder", f"#{reminders}: {len(s.approvals)}/{need} approvals")
                    msg = self._status_message(
                        f"Reminder #{reminders}: waiting for {need - len(s.approvals)} more approval(s); "
                        f"expires in {format_duration(deadline - workflow.now())}")
                    msg.title = self._title(f"Reminder: deploy {s.service} {s.version} to {s.env} awaits approval")
                    self._say("post", msg)
        # Stage moves on before any later update can be validated against it.
        if self._rejected is not None:
            raise _Finished("rejected", self._rejected)
        if self._abort is not None:
            raise _Finished("rejected", f"withdrawn by {self._abort[0]}: {self._abort[1]}")
        self._record("tocsin", "approval_complete",
                     ", ".join(a.by for a in s.approvals) + f" ({len(s.approvals)}/{need})")

    # ------------------------------------------------------------ rollout

    async def _rollout(self) -> None:
        s, env = self._s, self._env
        canary = env.canary
        s.steps = canary.weights()
        analysis = canary.analysis
        bake = parse_duration(canary.bake)
        if self._stopped():
            assert self._abort is not None
            raise _Finished("rejected", f"withdrawn by {self._abort[0]} before the rollout: {self._abort[1]}")
        self._set_stage("canary", "canary")
        for index, weight in enumerate(s.steps):
            if self._stopped():
                break
            promoted = self._promote
            if promoted:
                weight = 100
            s.step, s.weight = index, weight
            self._record("tocsin", "step", f"{weight}%")
            if env.hooks.deploy is not None:
                try:
                    await self._hook("deploy", env.hooks.deploy,
                                     {"service": s.service, "env": s.env, "version": s.version, "weight": weight},
                                     f"deploy-{index}-{weight}")
                except ActivityError as exc:
                    await self._roll_back("tocsin", f"deploy hook failed at {weight}%: {_error_text(exc)}")
            self._progress()
            self._say("reply", self._reply(f"Canary at {weight}%"))
            if promoted:
                break
            await self._wait(bake)
            if analysis is not None and analysis.metrics and not self._promote and not self._stopped():
                await self._analyse(analysis, weight)
        if self._stopped():
            assert self._abort is not None
            await self._roll_back(*self._abort)
        await self._health()

    async def _analyse(self, analysis: Any, weight: int) -> None:
        s = self._s
        queries = [MetricQuery(name=m.name, query=render_query(m.query, service=s.service, env=s.env,
                                                                version=s.version))
                   for m in analysis.metrics]
        interval = parse_duration(analysis.interval)
        measurements: list[Measurement] = []
        while not self._stopped() and not self._promote:
            await self._hold_while_paused()
            if self._stopped() or self._promote:
                return
            try:
                result: MetricsResult = await workflow.execute_activity_method(
                    DeploymentActivities.query_metrics,
                    MetricsRequest(prometheus_url=analysis.prometheus_url, queries=queries),
                    start_to_close_timeout=timedelta(seconds=30), retry_policy=METRICS_RETRY)
                readings = result.readings
            except ActivityError as exc:
                readings = [MetricReading(name=q.name, error=_error_text(exc)) for q in queries]
            measurement = judge_measurement(analysis.metrics, readings)
            measurements.append(measurement)
            s.last_measurement = measurement
            verdict = analysis_verdict(measurements, analysis.count, analysis.failure_limit)
            self._record("tocsin", "measurement", f"{weight}% #{len(measurements)} {measurement.outcome}: "
                                                  f"{measurement.summary()}")
            self._progress()
            if verdict.outcome == "failed":
                await self._roll_back("tocsin", f"canary analysis failed at {weight}%: {verdict.detail}")
            if verdict.outcome == "passed":
                self._record("tocsin", "analysis_passed", f"{weight}%: {verdict.detail}")
                self._say("reply", self._reply(f"Analysis passed at {weight}%: {measurement.summary()}", "success"))
                return
            if verdict.outcome == "inconclusive":
                s.paused = True
                self._record("tocsin", "paused", f"analysis inconclusive at {weight}%: {verdict.detail}")
                self._say("post", self._reply(
                    f"Deploy {s.service} {s.version} to {s.env} paused at {weight}%: analysis inconclusive "
                    f"({verdict.detail}). Resume to measure again, promote, or abort.", "warning"))
                self._progress()
                await self._hold_while_paused()
                measurements.pop()  # a resumed analysis measures again
                continue
            await self._wait(interval)

    async def _health(self) -> None:
        hooks = self._env.hooks
        if not hooks.health:
            return
        self._set_stage("verifying")
        deadline = parse_duration(hooks.health_deadline)
        tasks = [workflow.start_activity_method(
            DeploymentActivities.health_check, HealthCheck(url=url),
            start_to_close_timeout=timedelta(seconds=15), schedule_to_close_timeout=deadline,
            retry_policy=HEALTH_RETRY, summary=f"health {url}") for url in hooks.health]
        self._progress()
        await workflow.wait_condition(lambda: all(t.done() for t in tasks) or self._stopped())
        if self._stopped():
            for t in tasks:
                t.cancel()
            assert self._abort is not None
            await self._roll_back(*self._abort)
        failed = []
        for url, task in zip(hooks.health, tasks):
            exc = task.exception()
            if exc is not None:
                failed.append(f"{url}: {_error_text(exc)}")
        if failed:
            await self._roll_back("tocsin", f"health check failed within {hooks.health_deadline}: "
                                            + "; ".join(failed))
        self._record("tocsin", "healthy", ", ".join(hooks.health))

    # ------------------------------------------------------------ rollback

    async def _raise_incident(self, by: str, reason: str) -> list[str]:
        """A ``DeploymentRolledBack`` alert, routed like any other (one incident per group).

        Severity ``error``: the critical notification has gone out already, and a
        critical incident would block the fix's deployment at the incident gate.
        """
        s = self._s
        labels = {"alertname": "DeploymentRolledBack", "severity": "error", "service": s.service,
                  "env": s.env, "version": s.version, "kind": "deployment"}
        fp = f"{s.workflow_id}/rollback"
        alert = Alert(fingerprint=fp, labels=labels, starts_at=workflow.now(),
                      annotations={"summary": f"{s.service} {s.version} rolled back in {s.env}: {reason}",
                                   "rolled_back_by": by})
        try:
            return await workflow.execute_activity_method(
                IncidentActivities.raise_alerts, AlertBatch(alerts=[alert], source=s.workflow_id),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=10))
        except ActivityError as exc:
            self._record("tocsin", "incident_failed", _error_text(exc))
            return []

    async def _roll_back(self, by: str, reason: str) -> None:
        """Roll back, notify, request an incident; always ends with ``rolled_back``."""
        s, hooks = self._s, self._env.hooks
        self._set_stage("rolling_back", "rolling_back")
        self._record(by, "rollback", reason)
        hook_note = "no rollback hook configured"
        if hooks.rollback is not None:
            try:
                await self._hook("rollback", hooks.rollback,
                                 {"service": s.service, "env": s.env, "version": s.version,
                                  "reason": reason, "by": by}, "rollback")
                hook_note = "rollback hook succeeded"
            except ActivityError as exc:
                hook_note = f"ROLLBACK HOOK FAILED: {_error_text(exc)}"
        self._record("tocsin", "rollback_hook", hook_note)
        s.weight = 0
        alert = Message(
            title=self._title(f"Rolled back {s.service} {s.version} in {s.env}"),
            text=f"{reason}\nBy: {by}\n{hook_note}", severity="critical", labels=self._labels(),
            source=s.workflow_id, fields=[MessageField(title="Service", value=s.service),
                                          MessageField(title="Environment", value=s.env),
                                          MessageField(title="Version", value=s.version)])
        self._say("post", alert)
        s.incident_requested = True
        incidents = await self._raise_incident(by, reason)
        self._record("tocsin", "incident_raised", ", ".join(incidents) or "no incident (routed nowhere)")
        raise _Finished("rolled_back", f"rolled back: {reason}"
                        + ("" if hook_note == "rollback hook succeeded" or hooks.rollback is None
                           else f" ({hook_note})"))


def _why(reason: str | None) -> str:
    return f": {reason}" if reason else ""
