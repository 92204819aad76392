"""Deployments: start, approve or reject, steer the canary, roll back, find.

The CLI, the gateway and the incident side (rollback-trigger alerts) all come
here, so every door behaves the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from pydantic import ValidationError
from temporalio.client import (
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from operations.auth import authorize, has_role, refused_by_state
from operations.context import Context, require_actor, temporal_errors
from operations.errors import BadInput, NotFound, OperationError, Refused
from workflows import search
from workflows.config import Config
from workflows.deployment import (
    QUERY_STATE,
    SIGNAL_ABORT,
    SIGNAL_PAUSE,
    SIGNAL_PROMOTE,
    SIGNAL_RESUME,
    SIGNAL_ROLLBACK,
    UPDATE_APPROVE,
    UPDATE_REJECT,
    WORKFLOW,
    ControlRequest,
    Decision,
    DecisionResult,
    DeployInput,
    DeploymentState,
    DeployResult,
    RollbackRequest,
    deployment_id,
)
from workflows.environments import environment_of
from workflows.identity import Actor
from workflows.policy.gates import NO_DEPLOY_HOOK, control_refusal
from workflows.policy.redact import Redactor, redactor_for

__all__ = [
    "find_deployment",
    "start_deployment",
    "approve",
    "reject",
    "control",
    "rollback",
    "RollbackOutcome",
    "deployment_state",
    "deployment_handle",
    "check_environment",
]

CONTROLS = (SIGNAL_PAUSE, SIGNAL_RESUME, SIGNAL_PROMOTE, SIGNAL_ABORT)
Control = Literal["pause", "resume", "promote", "abort"]


async def find_deployment(ctx: Context, service: str, env: str) -> str | None:
    """The running deployment of ``service`` to ``env``, else the latest one (its id), or None."""
    with temporal_errors():
        running = [
            ex
            async for ex in ctx.client.list_workflows(
                search.query("deployment", service=service, env=env, running=True), limit=100
            )
        ]
        if running:
            return max(running, key=lambda ex: ex.start_time).id
        latest = [
            ex
            async for ex in ctx.client.list_workflows(search.query("deployment", service=service, env=env), limit=1000)
        ]
    if latest:
        return max(latest, key=lambda ex: ex.start_time).id
    return None


def check_environment(config: Config, env: str) -> None:
    """Raise :class:`BadInput` naming ``--env`` unless the config can deploy to ``env``.

    Unknown environments, invalid ones, and ones marked ``production: true`` without a
    deploy hook (nothing would be deployed) are refused.
    """
    known = list(config.environments)
    if known and env not in config.environments:
        raise BadInput("--env", f"unknown environment {env!r} (known: {', '.join(known)})")
    try:
        policy = environment_of(config.environments, env)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInput("--env", f"environments.{env}{'.' + where if where else ''}: {first['msg']}") from None
    if policy.production is True and policy.hooks.deploy is None:
        raise BadInput(
            "--env",
            f"environments.{env} is marked production: true but has no hooks.deploy "
            f"(the deployment would be {NO_DEPLOY_HOOK})",
        )


def _redactor(ctx: Context) -> Redactor:
    """The config's redaction rules: comments, reasons and links are redacted before they enter Temporal."""
    return redactor_for(ctx.config.redact_patterns)


def _text(ctx: Context, text: str | None) -> str | None:
    """A comment or reason, redacted (None and empty stay as they are)."""
    return _redactor(ctx)(text) if text else text


def _attributes(service: str, env: str, status: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(search.KIND, "deployment"),
            SearchAttributePair(search.SERVICE, service),
            SearchAttributePair(search.ENVIRONMENT, env),
            SearchAttributePair(search.STATUS, status),
        ]
    )


async def start_deployment(ctx: Context, actor: Actor, request: DeployInput) -> tuple[WorkflowHandle, bool]:
    """Start ``deploy/<service>/<env>/<version>``.

    Returns:
        The handle and whether this call started it (False: it was already running).
    """
    require_actor(actor)
    authorize(ctx.config, actor, f"deployer:{request.env}")
    check_environment(ctx.config, request.env)
    redact = _redactor(ctx)
    request = request.model_copy(
        update={
            "actor": actor,
            "reason": _text(ctx, request.reason),
            "changes_url": redact.url(request.changes_url) if request.changes_url else request.changes_url,
        }
    )
    wid = deployment_id(request.service, request.env, request.version)
    summary = (
        ("[EMERGENCY] " if request.emergency else "")
        + f"deploy {request.service} {request.version} to {request.env} by {request.by}"
    )[:200]
    with temporal_errors():
        try:
            handle = await ctx.client.start_workflow(
                WORKFLOW,
                request,
                id=wid,
                task_queue=ctx.task_queue,
                result_type=DeployResult,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=_attributes(request.service, request.env, "starting"),
                static_summary=summary,
            )
            return handle, True
        except WorkflowAlreadyStartedError:
            return ctx.client.get_workflow_handle(wid, result_type=DeployResult), False


def deployment_handle(ctx: Context, deployment: str) -> WorkflowHandle:
    """A handle on a deployment by id (its result is a ``DeployResult``)."""
    return ctx.client.get_workflow_handle(deployment, result_type=DeployResult)


async def _decide(ctx: Context, deployment: str, kind: str, decision: Decision) -> DecisionResult:
    if not deployment.strip():
        raise BadInput("ID", "must not be empty")
    handle = ctx.client.get_workflow_handle(deployment)
    with temporal_errors():
        try:
            return await handle.execute_update(kind, decision, result_type=DecisionResult)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            reason = cause.message if isinstance(cause, ApplicationError) else str(cause)
            raise refused_by_state(decision.actor, decision.by, kind, reason) from None
        except RPCError as exc:
            message = exc.message.lower()
            if exc.status == RPCStatusCode.NOT_FOUND and not ("update" in message or "completed" in message):
                raise Refused(f"no deployment {deployment}") from None
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION) or "completed" in message:
                raise Refused(f"{deployment} is finished: {exc.message}") from None
            raise


async def _environment(ctx: Context, deployment: str, missing: type[OperationError] = Refused) -> str:
    """The environment of a deployment: the ``<env>`` of ``deploy/<service>/<env>/<version>``, or, when the
    id has more parts (a slash in a name, a ``/rollback`` run), its ``TocsinEnvironment``.

    Raises:
        BadInput: an empty id.
        Refused: no such deployment (or ``missing``), or not a deployment.
    """
    if not deployment.strip():
        raise BadInput("ID", "must not be empty")
    parts = deployment.split("/")
    if len(parts) == 4 and parts[0] == "deploy" and all(parts):
        return parts[2]
    with temporal_errors():
        try:
            desc = await ctx.client.get_workflow_handle(deployment).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise missing(f"no deployment {deployment}") from None
            raise
    env = desc.typed_search_attributes.get(search.ENVIRONMENT)
    if not env:
        raise Refused(f"{deployment} is not a deployment (its environment is unknown)")
    return env


async def approve(ctx: Context, actor: Actor, deployment: str, comment: str | None = None) -> DecisionResult:
    """Approve; answered at once (refused: not an approver, four eyes, not awaiting approval…).

    The actor needs ``approver:<env>`` (an unverified one never approves in a ``production: true``
    environment); the deployment itself refuses the deployer (four eyes, on verified identities).
    """
    require_actor(actor)
    authorize(ctx.config, actor, f"approver:{await _environment(ctx, deployment)}")
    decision = Decision(by=actor.name, comment=_text(ctx, comment), actor=actor)
    return await _decide(ctx, deployment, UPDATE_APPROVE, decision)


async def reject(ctx: Context, actor: Actor, deployment: str, reason: str) -> DecisionResult:
    """Reject; answered at once. Approvers may (``approver:<env>``), and the deployer may withdraw
    (``deployer:<env>``)."""
    require_actor(actor)
    if not reason.strip():
        raise BadInput("--reason", "must not be empty")
    env = await _environment(ctx, deployment)
    # Stopping is never the dangerous direction: an unverified actor may where unverified use is allowed
    # (even in production, where it never approves); the workflow then checks approvers or the deployer.
    withdraw = not actor.verified or has_role(ctx.config, actor, f"deployer:{env}")
    authorize(ctx.config, actor, f"deployer:{env}" if withdraw else f"approver:{env}")
    decision = Decision(by=actor.name, reason=_text(ctx, reason), actor=actor)
    return await _decide(ctx, deployment, UPDATE_REJECT, decision)


async def _state_if_answered(handle: WorkflowHandle) -> DeploymentState | None:
    """The deployment's state, or None when no worker answered in time (the signal is sent anyway).

    Raises:
        NotFound: no such deployment.
    """
    try:
        return await handle.query(QUERY_STATE, result_type=DeploymentState, rpc_timeout=timedelta(seconds=5))
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND and "workflow" in exc.message.lower():
            raise NotFound(f"no deployment {handle.id}") from None
        return None
    except WorkflowQueryFailedError:
        return None


async def control(ctx: Context, actor: Actor, deployment: str, what: Control, reason: str = "") -> None:
    """Steer a running canary: ``pause``, ``resume``, ``promote`` or ``abort`` (rolls back).

    A control that does not apply at the deployment's stage (``pause`` before the
    canary, ``resume`` when not paused, anything once finished) is refused with the
    reason rather than sent to be ignored.

    Raises:
        NotFound: no running deployment with that id.
        Refused: the control does not apply now.
    """
    require_actor(actor)
    if what not in CONTROLS:
        raise BadInput("action", f"must be one of {'|'.join(CONTROLS)}, got {what!r}")
    if not deployment.strip():
        raise BadInput("ID", "must not be empty")
    authorize(ctx.config, actor, f"deployer:{await _environment(ctx, deployment, NotFound)}")
    with temporal_errors():
        state = await _state_if_answered(ctx.client.get_workflow_handle(deployment))
        refusal = None if state is None else control_refusal(what, stage=state.stage, paused=state.paused)
        if refusal is not None:
            raise refused_by_state(actor, actor.name, what, f"{what} {deployment}: {refusal}")
        try:
            request = ControlRequest(by=actor.name, reason=_text(ctx, reason), actor=actor)
            await ctx.client.get_workflow_handle(deployment).signal(what, request)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise NotFound(f"no running deployment {deployment}") from None
            raise


async def deployment_state(ctx: Context, deployment: str) -> DeploymentState:
    """The deployment's state (a query)."""
    with temporal_errors():
        return await ctx.client.get_workflow_handle(deployment).query(QUERY_STATE, result_type=DeploymentState)


@dataclass
class RollbackOutcome:
    """What :func:`rollback` did."""

    workflow_id: str | None
    """The deployment signalled, or the rollback workflow started."""
    action: str
    """``signalled`` (a deployment on its way out), ``started`` (a rollback of the last one that went
    out), or ``nothing`` (nothing to roll back; see ``detail``)."""
    detail: str = ""


ROLLBACK_SUFFIX = "/rollback"
"""A rollback of a finished deployment runs as ``<its id>/rollback``."""
GOING_OUT = ("canary", "verifying", "deployed")
"""Statuses of a running deployment whose version is going out (or has just gone out)."""
WENT_OUT = ("deployed", "rolled_back")
"""Statuses of a finished deployment (or rollback run) whose version went out."""


async def rollback(
    ctx: Context, actor: Actor, service: str, env: str, reason: str, source: str | None = None
) -> RollbackOutcome:
    """Roll back what is going out, or what went out last.

    A running deployment whose version is going out (canary, health checks, or
    just deployed) gets the ``rollback`` signal. Otherwise the last deployment
    that went out is looked up — rejected and expired ones never did, and are
    passed over: when it ended ``deployed``, a rollback run of ``DeploymentWorkflow``
    is started as ``<its id>/rollback`` (it takes the service/environment lock,
    calls the rollback hook, notifies and records); when it is rolled back
    already, there is nothing to do. Deployments waiting for approval are left alone.
    """
    require_actor(actor)
    authorize(ctx.config, actor, f"deployer:{env}")
    if not reason.strip():
        raise BadInput("--reason", "must not be empty")
    request = RollbackRequest(
        by=actor.name, reason=_text(ctx, reason) or reason, source=source or actor.via, actor=actor
    )
    with temporal_errors():
        return await _rollback(ctx, service, env, request)


def _status(execution: WorkflowExecution) -> str:
    return execution.typed_search_attributes.get(search.STATUS) or ""


async def _deployments(ctx: Context, service: str, env: str) -> list[WorkflowExecution]:
    query = search.query("deployment", service=service, env=env)
    return [ex async for ex in ctx.client.list_workflows(query, limit=1000)]


async def _rollback(ctx: Context, service: str, env: str, request: RollbackRequest) -> RollbackOutcome:
    executions = await _deployments(ctx, service, env)
    running = [ex for ex in executions if ex.status == WorkflowExecutionStatus.RUNNING]
    for ex in running:
        if ex.id.endswith(ROLLBACK_SUFFIX) or _status(ex) == "rolling_back":
            return RollbackOutcome(ex.id, "nothing", f"a rollback is already in progress: {ex.id}")
    going = [ex for ex in running if _status(ex) in GOING_OUT]
    if going:
        wid = max(going, key=lambda ex: ex.start_time).id
        try:
            await ctx.client.get_workflow_handle(wid).signal(SIGNAL_ROLLBACK, request)
            return RollbackOutcome(wid, "signalled")
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            executions = await _deployments(ctx, service, env)  # it has just finished: look again
    return await _roll_back_last(ctx, service, env, request, executions)


async def _roll_back_last(
    ctx: Context, service: str, env: str, request: RollbackRequest, executions: list[WorkflowExecution]
) -> RollbackOutcome:
    """Start ``<id>/rollback`` of the last deployment that went out, unless it is rolled back already."""
    went_out = [ex for ex in executions if ex.status != WorkflowExecutionStatus.RUNNING and _status(ex) in WENT_OUT]
    if not went_out:
        latest = max(executions, key=lambda ex: ex.start_time, default=None)
        detail = f"no deployment of {service} to {env} has gone out" + (
            f" (the latest, {latest.id}, is {_status(latest) or 'unknown'})" if latest is not None else ""
        )
        return RollbackOutcome(None, "nothing", detail)
    last = max(went_out, key=lambda ex: ex.close_time or ex.start_time)
    desc = await ctx.client.get_workflow_handle(last.id, run_id=last.run_id).describe()
    if desc.typed_search_attributes.get(search.STATUS) != "deployed":
        rolled = last.id.removesuffix(ROLLBACK_SUFFIX)
        return RollbackOutcome(last.id, "nothing", f"the last deployment that went out, {rolled}, is rolled back")
    wid = last.id
    result = await ctx.client.get_workflow_handle(wid, run_id=last.run_id, result_type=DeployResult).result()
    rollback_id = f"{wid}{ROLLBACK_SUFFIX}"
    try:
        await ctx.client.start_workflow(
            WORKFLOW,
            DeployInput(
                service=service,
                env=env,
                version=result.version,
                by=request.by,
                reason=request.reason,
                rollback_of=wid,
                rollback_source=request.source,
                actor=request.actor,
            ),
            id=rollback_id,
            task_queue=ctx.task_queue,
            search_attributes=_attributes(service, env, "rolling_back"),
            static_summary=f"rollback {service} {result.version} in {env} by {request.by}"[:200],
        )
    except WorkflowAlreadyStartedError:
        return RollbackOutcome(rollback_id, "nothing", f"a rollback of {wid} is already running")
    return RollbackOutcome(rollback_id, "started")
