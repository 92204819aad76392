"""``DeploymentWorkflow``: one deployment, ``deploy/<service>/<env>/<version>``.

The life of a deployment:

1. **Gates** — freeze windows (``--emergency`` with a reason overrides, and is
   flagged everywhere), no open critical incident on the service, the
   commit's pipeline green when known, and in an environment marked
   ``production: true`` a deploy hook. Each is recorded pass/fail
   (``workflows.policy.gates``).
2. **Risk** — an explainable 0–10 score (``workflows.policy.risk``); above the
   environment's ``risk_extra_approval_above`` one more approval is needed.
3. **Approval** — a request with risk and changes to the environment's
   receiver; ``approve``/``reject`` are updates (who, when, why) answered at
   once; listed approvers only, four eyes, N-of-M, reminders, expiry.
4. **Lock** — once approved, one deployment at a time per service and
   environment: the ``DeployLockWorkflow`` entity (``deploy-lock/<service>/<env>``)
   grants the lock in arrival order (an approval forgotten for a day holds up
   no one); with ``concurrency: refuse`` a busy lock refuses. Runs started
   before this order was introduced took the lock first (``PATCH_LOCK_AT_APPROVAL``).
5. **Canary** — per step the deploy hook sets the weight, the step bakes, and
   Prometheus readings are judged (``workflows.policy.canary``). Inconclusive
   readings pause and notify. ``pause``/``resume``/``promote``/``abort``
   signals steer it.
6. **Health** — every health URL must answer 2xx before a deadline.
7. **Rollback** on a breach, a failed hook or health check, ``abort`` or a
   ``rollback`` signal: rollback hook, critical notification, incident
   requested (recorded in the timeline). A ``rollback`` that arrives while a
   deployed deployment is still finishing (releasing its lock, telling chat)
   is carried out, and it ends ``rolled_back``.

Without a deploy hook nothing is deployed: the rollout is walked and recorded,
and everything says "recorded only (no deploy hook)".

Progress goes to chat as one message edited as the deployment moves, plus
thread replies (``render``, ``chat``). ``TocsinStatus`` follows the stage, so
Temporal's visibility is the audit browser. Contracts live in ``models``.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows import search
from workflows.config import Config
from workflows.delivery import load_config
from workflows.deployment import calls, render
from workflows.deployment.models import (
    LOCK_SIGNAL_RELEASE,
    QUERY_STATE,
    SIGNAL_ABORT,
    SIGNAL_LOCK_GRANTED,
    SIGNAL_LOCK_REFUSED,
    SIGNAL_PAUSE,
    SIGNAL_PROMOTE,
    SIGNAL_RESUME,
    SIGNAL_ROLLBACK,
    UPDATE_APPROVE,
    UPDATE_REJECT,
    WORKFLOW,
    ApprovalRecord,
    ControlRequest,
    Decision,
    DecisionResult,
    DeployInput,
    DeploymentState,
    DeployResult,
    LockAcquire,
    LockGrant,
    LockRelease,
    LockRequest,
    RollbackRequest,
    lock_id,
)
from workflows.deployment.stages import DeploymentStages, Finished
from workflows.environments import environment_of
from workflows.identity import Actor
from workflows.policy import gates, roles

__all__ = [
    "DeploymentWorkflow",
    "PATCH_LOCK_AT_APPROVAL",
    "PATCH_DEPLOY_HOOK_GATE",
    "PATCH_ROLLBACK_AS_FINISHED",
    "PATCH_IDENTITIES",
    "PATCH_CHAT_CONTROLS",
]

PATCH_LOCK_AT_APPROVAL = "lock-at-approval"
"""New runs take the service/environment lock once approved; older ones took it first."""
PATCH_DEPLOY_HOOK_GATE = "deploy-hook-gate"
"""New runs in a ``production: true`` environment check the deploy-hook gate."""
PATCH_ROLLBACK_AS_FINISHED = "rollback-as-finished"
"""New runs carry out a rollback asked for while they finish deployed; older ones ignored it."""
PATCH_IDENTITIES = "verified-identities"
"""New runs check approvals against identities: four eyes compares the approver's verified identity
(case-folded name, Slack user id…) with the deployer's, and members of listed groups and holders of
``approver:<env>`` count as approvers."""
PATCH_CHAT_CONTROLS = "chat-controls"
"""New runs edit the status message when approval completes, on pause and resume, and as a rollback
starts, so its buttons are always the ones that apply (``render.actions``)."""


@workflow.defn(name=WORKFLOW)
class DeploymentWorkflow(DeploymentStages):
    """One deployment of one service version to one environment."""

    @workflow.init
    def __init__(self, input: DeployInput) -> None:
        """The state, from the input, before any handler runs.

        Args:
            input: what to deploy where, and who asked.
        """
        super().__init__(input)
        self._lock: Literal["granted", "refused"] | None = None
        self._lock_detail = ""
        self._lock_requested = False
        self._finish_rollback = False
        """Whether a rollback asked for while finishing deployed is carried out (new runs)."""
        self._late: tuple[str, str] | None = None
        """(by, reason) of such a rollback."""
        self._closing = False
        self._identities = False
        """Whether approvals are checked against identities (``PATCH_IDENTITIES``, decided at the start of run)."""

    # ------------------------------------------------------------ queries, updates, signals

    @workflow.query(name=QUERY_STATE)
    def state(self) -> DeploymentState:
        """Stage, risk, gates, approvals, canary weight, metrics and the timeline."""
        return self._s

    @workflow.update(name=UPDATE_APPROVE)
    async def approve(self, decision: Decision) -> DecisionResult:
        """Approve; refused (and recorded) for a non-approver, the deployer under four eyes, or a repeat."""
        s, by, who = self._s, decision.by.strip(), decision.actor
        identities = self._identities and who is not None and s.deployer is not None
        refusal = gates.approval_refusal(
            by,
            env=s.env,
            approvers=s.approvers if self._identities else self._env.approvers,
            four_eyes=self._env.four_eyes,
            deployer=s.by,
            approved_by=[a.by for a in s.approvals],
            by_keys=who.keys() if identities and who is not None else (),
            deployer_keys=s.deployer.keys() if identities and s.deployer is not None else (),
        )
        if refusal is not None:
            self._record(by, "approval_refused", refusal, who)
            self._say("reply", self._reply(f"Approval by {by} refused: {refusal}", "warning"))
            raise ApplicationError(refusal, type="ApprovalRefused", non_retryable=True)
        s.approvals.append(ApprovalRecord(by=by, at=workflow.now(), comment=decision.comment, actor=who))
        count, need = len(s.approvals), s.required_approvals
        self._record(by, "approved", f"{count}/{need}" + (f": {decision.comment}" if decision.comment else ""), who)
        self._say(
            "reply",
            self._reply(
                f"Approved by {by} ({count}/{need})" + (f": {decision.comment}" if decision.comment else ""), "success"
            ),
        )
        return DecisionResult(
            approvals=count, required=need, stage=s.stage, message=f"approved by {by} ({count}/{need})"
        )

    @approve.validator
    def _validate_approve(self, decision: Decision) -> None:
        if not decision.by.strip():
            raise ApplicationError("by: must not be empty", type="BadInput", non_retryable=True)
        self._awaiting()

    @workflow.update(name=UPDATE_REJECT)
    async def reject(self, decision: Decision) -> DecisionResult:
        """Reject; only approvers (or the deployer, withdrawing) may, with a reason."""
        s, by = self._s, decision.by.strip()
        approvers = s.approvers if self._identities else self._env.approvers
        refusal = gates.rejection_refusal(by, env=s.env, approvers=approvers, deployer=s.by)
        if refusal is not None:
            self._record(by, "rejection_refused", refusal, decision.actor)
            self._say("reply", self._reply(f"Rejection by {by} refused: {refusal}", "warning"))
            raise ApplicationError(refusal, type="ApprovalRefused", non_retryable=True)
        reason = (decision.reason or "").strip()
        self._rejected = f"rejected by {by}: {reason}"
        self._record(by, "rejected", reason, decision.actor)
        return DecisionResult(
            approvals=len(s.approvals), required=s.required_approvals, stage="rejected", message=f"rejected by {by}"
        )

    @reject.validator
    def _validate_reject(self, decision: Decision) -> None:
        if not decision.by.strip():
            raise ApplicationError("by: must not be empty", type="BadInput", non_retryable=True)
        if not (decision.reason or "").strip():
            raise ApplicationError("reason: a rejection needs a reason", type="BadInput", non_retryable=True)
        self._awaiting()

    @workflow.signal(name=SIGNAL_PAUSE)
    def pause(self, request: ControlRequest) -> None:
        """Hold the canary where it is."""
        if self._live() and self._s.stage == "canary" and not self._s.paused:
            self._s.paused = True
            self._record(request.by, "paused", request.reason or "", request.actor)
            self._say("reply", self._reply(f"Paused by {request.by}" + render.why(request.reason), "warning"))
            self._edit()
        else:
            self._record(request.by, "pause_ignored", f"stage {self._s.stage}", request.actor)

    @workflow.signal(name=SIGNAL_RESUME)
    def resume(self, request: ControlRequest) -> None:
        """Continue a paused canary (re-measuring after an inconclusive analysis)."""
        if self._live() and self._s.paused:
            self._s.paused = False
            self._record(request.by, "resumed", request.reason or "", request.actor)
            self._say("reply", self._reply(f"Resumed by {request.by}" + render.why(request.reason)))
            self._edit()
        else:
            self._record(request.by, "resume_ignored", "not paused", request.actor)

    @workflow.signal(name=SIGNAL_PROMOTE)
    def promote(self, request: ControlRequest) -> None:
        """Skip the remaining canary steps and analysis: go to 100% now."""
        if self._live() and self._s.stage == "canary":
            self._promote = True
            self._s.paused = False
            self._record(request.by, "promoted", request.reason or "", request.actor)
            self._say("reply", self._reply(f"Promoted to 100% by {request.by}" + render.why(request.reason), "warning"))
        else:
            self._record(request.by, "promote_ignored", f"stage {self._s.stage}", request.actor)

    @workflow.signal(name=SIGNAL_ABORT)
    def abort(self, request: ControlRequest) -> None:
        """Stop: roll back a rollout in progress, or withdraw before it starts."""
        self._stop(request.by, "aborted", request.reason or "aborted", request.actor)

    @workflow.signal(name=SIGNAL_ROLLBACK)
    def rollback(self, request: RollbackRequest) -> None:
        """Roll back now (``tocsin rollback``, ChatOps, or an incident's rollback-trigger alert)."""
        reason = f"{request.reason} (via {request.source})"
        if self._finish_rollback and self._s.outcome == "deployed" and self._late is None and not self._closing:
            self._late = (request.by, reason)  # deployed and still finishing: carried out before the end
            self._abort_actor = request.actor
            self._record(request.by, "rollback_requested", reason, request.actor)
            return
        self._stop(request.by, "rollback_requested", reason, request.actor)

    @workflow.signal(name=SIGNAL_LOCK_GRANTED)
    def lock_granted(self, grant: LockGrant) -> None:
        """From ``DeployLockWorkflow``: our turn."""
        self._lock = "granted"

    @workflow.signal(name=SIGNAL_LOCK_REFUSED)
    def lock_refused(self, refusal: LockRelease) -> None:
        """From ``DeployLockWorkflow``: busy, and this environment refuses to queue."""
        self._lock = "refused"
        self._lock_detail = refusal.workflow_id

    # ------------------------------------------------------------ helpers

    def _awaiting(self) -> None:
        if self._s.stage != "pending_approval":
            raise ApplicationError(
                f"deployment is not awaiting approval (stage: {self._s.stage})",
                type="NotAwaitingApproval",
                non_retryable=True,
            )

    def _live(self) -> bool:
        return self._s.outcome is None and self._s.stage not in ("rolling_back",)

    def _stop(self, by: str, action: str, reason: str, who: Actor | None = None) -> None:
        if self._live() and self._abort is None:
            self._abort, self._abort_actor = (by, reason), who
            self._record(by, action, reason, who)
        else:
            self._record(by, action.replace("_requested", "") + "_ignored", f"stage {self._s.stage}", who)

    # ------------------------------------------------------------ run

    @workflow.run
    async def run(self, input: DeployInput) -> DeployResult:
        """Gates, risk, approval, lock, canary, health; or a rollback of a finished deployment.

        Args:
            input: what to deploy where, and who asked.

        Returns:
            The outcome (``deployed``, ``rolled_back``, ``rejected`` or ``expired``) with the
            reason, risk, gates, approvals and timeline.
        """
        s = self._s
        lock_at_approval = workflow.patched(PATCH_LOCK_AT_APPROVAL)
        self._hook_gate = workflow.patched(PATCH_DEPLOY_HOOK_GATE)
        self._finish_rollback = workflow.patched(PATCH_ROLLBACK_AS_FINISHED)
        self._identities = workflow.patched(PATCH_IDENTITIES)
        self._controls = workflow.patched(PATCH_CHAT_CONTROLS)
        self._journal.start()
        self._announce(input)
        config = await load_config()
        self._env = environment_of(config.environments, input.env)
        self._time_intervals = config.time_intervals
        receiver = self._env.receiver or config.route.receiver or "console"
        s.approvers = list(self._env.approvers)
        if self._identities:
            people = [(u.name, u.groups, u.roles) for u in config.users]
            s.approvers = roles.approver_pool(input.env, self._env.approvers, people)
        chat = asyncio.create_task(self._chat.run(config, receiver))
        lock = lock_id(input.service, input.env)
        await self._deploy(input, lock, lock_at_approval)
        self._conclude()
        if self._finish_rollback and s.outcome == "deployed":
            chat = await self._late_rollback(chat, lock, config, receiver)
        self._closing = True
        self._chat.close()
        await chat
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self._journal.busy())
        assert s.outcome is not None
        return DeployResult(
            workflow_id=s.workflow_id,
            service=s.service,
            env=s.env,
            version=s.version,
            outcome=s.outcome,
            reason=s.reason,
            emergency=s.emergency,
            risk=s.risk,
            gates=s.gates,
            approvals=s.approvals,
            timeline=s.timeline,
            recorded_only=s.recorded_only and s.outcome == "deployed",
        )

    async def _deploy(self, input: DeployInput, lock: str, lock_at_approval: bool) -> None:
        """The stages up to an outcome, holding the lock where the run's version says."""
        s = self._s
        holding = False
        try:
            if input.rollback_of or not lock_at_approval:
                holding = await self._acquire(lock)
            if input.rollback_of:
                await self._roll_back(input.by, input.reason or "rollback requested", input.actor)
            else:
                await self._gates()
                await self._approval()
                if lock_at_approval:
                    self._set_stage("approved")  # no later approve/reject validates against it
                    if s.required_approvals:
                        self._edit()  # the request's buttons give way to who approved, when
                    holding = await self._acquire(lock)
                await self._rollout()
                raise Finished("deployed", self._deployed_reason())
        except Finished as done:
            s.outcome, s.reason = done.outcome, done.reason
        finally:
            if self._lock_requested and (holding or self._lock is None):
                await self._release(lock)

    def _deployed_reason(self) -> str:
        s = self._s
        if s.recorded_only:
            return f"{gates.NO_DEPLOY_HOOK}: {s.version} was not deployed; {s.env} has no hooks.deploy"
        return f"{s.version} is live in {s.env}"

    def _conclude(self) -> None:
        """The outcome in the stage, ``TocsinStatus``, the timeline and chat."""
        s = self._s
        assert s.outcome is not None
        self._set_stage(s.outcome, s.outcome)
        self._record("tocsin", s.outcome, s.reason)
        self._progress()

    async def _late_rollback(
        self, chat: asyncio.Task[None], lock: str, config: Config, receiver: str
    ) -> asyncio.Task[None]:
        """Until chat is told, a ``rollback`` is still carried out (lock, hook, incident): it ends ``rolled_back``.

        Returns:
            The chat loop (a new one when the first had finished).
        """
        s = self._s
        self._chat.close()
        await workflow.wait_condition(lambda: chat.done() or self._late is not None)
        if self._late is None:
            return chat
        by, reason = self._late
        self._chat.reopen()
        if chat.done():
            chat = asyncio.create_task(self._chat.run(config, receiver))
        self._lock = None
        holding = False
        try:
            holding = await self._acquire(lock)
            await self._roll_back(by, reason, self._abort_actor)
        except Finished as done:
            if done.outcome == "rolled_back":
                s.outcome, s.reason = done.outcome, done.reason
            else:
                self._record("tocsin", "rollback_not_done", done.reason)
        finally:
            if holding or self._lock is None:
                await self._release(lock)
        self._conclude()
        return chat

    def _announce(self, input: DeployInput) -> None:
        """Search attributes of a new deployment, and the request in the timeline."""
        workflow.upsert_search_attributes(
            [
                search.KIND.value_set("deployment"),
                search.SERVICE.value_set(input.service),
                search.ENVIRONMENT.value_set(input.env),
                search.STATUS.value_set("starting"),
            ]
        )
        who = input.actor
        if input.rollback_of:
            detail = f"{input.reason or ''} (of {input.rollback_of}, via {input.rollback_source})"
            self._record(input.by, "rollback_requested", detail, who)
        else:
            detail = f"{input.service} {input.version} to {input.env}" + (
                f", commit {input.commit}" if input.commit else ""
            )
            self._record(input.by, "requested", detail, who)
        if input.emergency:
            self._record(input.by, "emergency", input.reason or "", who)

    async def _acquire(self, lock: str) -> bool:
        s = self._s
        self._lock_requested = True
        await calls.request_lock(
            LockRequest(
                lock_id=lock,
                service=s.service,
                env=s.env,
                acquire=LockAcquire(workflow_id=s.workflow_id, mode=self._env.concurrency),
            )
        )
        if self._lock is None:
            self._set_stage("queued", "queued")
            self._record("tocsin", "queued", f"waiting for the {s.service}/{s.env} lock")
        await workflow.wait_condition(lambda: self._lock is not None or self._stopped())
        if self._lock == "refused":
            raise Finished(
                "rejected",
                f"refused: another deployment of {s.service} to {s.env} "
                f"is in progress ({self._lock_detail}); concurrency is 'refuse'",
            )
        if self._lock is None:
            assert self._abort is not None
            raise Finished("rejected", f"withdrawn by {self._abort[0]} while queued: {self._abort[1]}")
        self._record("tocsin", "lock_acquired", lock)
        return True

    async def _release(self, lock: str) -> None:
        try:
            await workflow.get_external_workflow_handle(lock).signal(
                LOCK_SIGNAL_RELEASE, LockRelease(workflow_id=self._s.workflow_id)
            )
        except Exception as exc:
            workflow.logger.info("could not release %s: %s", lock, exc)
