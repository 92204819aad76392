"""Deployments: start, approve or reject, steer the canary, roll back, find.

The CLI, the gateway and the incident side (rollback-trigger alerts) all come
here, so every door behaves the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from operations.context import Context, require_actor, temporal_errors
from operations.errors import BadInput, NotFound, Refused
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
    """Raise :class:`BadInput` naming ``--env`` unless the config can deploy to ``env``."""
    known = list(config.environments)
    if known and env not in config.environments:
        raise BadInput("--env", f"unknown environment {env!r} (known: {', '.join(known)})")
    try:
        environment_of(config.environments, env)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInput("--env", f"environments.{env}{'.' + where if where else ''}: {first['msg']}") from None


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
    check_environment(ctx.config, request.env)
    redact = _redactor(ctx)
    request = request.model_copy(
        update={
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
            raise Refused(cause.message if isinstance(cause, ApplicationError) else str(cause)) from None
        except RPCError as exc:
            message = exc.message.lower()
            if exc.status == RPCStatusCode.NOT_FOUND and not ("update" in message or "completed" in message):
                raise Refused(f"no deployment {deployment}") from None
            if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION) or "completed" in message:
                raise Refused(f"{deployment} is finished: {exc.message}") from None
            raise


async def approve(ctx: Context, actor: Actor, deployment: str, comment: str | None = None) -> DecisionResult:
    """Approve; answered at once (refused: not an approver, four eyes, not awaiting approval…)."""
    require_actor(actor)
    return await _decide(ctx, deployment, UPDATE_APPROVE, Decision(by=actor.name, comment=_text(ctx, comment)))


async def reject(ctx: Context, actor: Actor, deployment: str, reason: str) -> DecisionResult:
    """Reject; answered at once."""
    require_actor(actor)
    if not reason.strip():
        raise BadInput("--reason", "must not be empty")
    return await _decide(ctx, deployment, UPDATE_REJECT, Decision(by=actor.name, reason=_text(ctx, reason)))


async def control(ctx: Context, actor: Actor, deployment: str, what: Control, reason: str = "") -> None:
    """Steer a running canary: ``pause``, ``resume``, ``promote`` or ``abort`` (rolls back).

    Raises:
        NotFound: no running deployment with that id.
    """
    require_actor(actor)
    if what not in CONTROLS:
        raise BadInput("action", f"must be one of {'|'.join(CONTROLS)}, got {what!r}")
    with temporal_errors():
        try:
            request = ControlRequest(by=actor.name, reason=_text(ctx, reason))
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
    """``signalled`` (a running deployment), ``started`` (a rollback of the last deployed one), or
    ``nothing`` (nothing to roll back; see ``detail``)."""
    detail: str = ""


async def rollback(
    ctx: Context, actor: Actor, service: str, env: str, reason: str, source: str | None = None
) -> RollbackOutcome:
    """Abort the running deployment, or roll back the last deployed one.

    The running deployment gets the ``rollback`` signal. When none is running
    and the latest one ended ``deployed``, a rollback run of
    ``DeploymentWorkflow`` is started as ``<its id>/rollback`` (it takes the
    service/environment lock, calls the rollback hook, notifies and records).
    """
    require_actor(actor)
    if not reason.strip():
        raise BadInput("--reason", "must not be empty")
    request = RollbackRequest(by=actor.name, reason=_text(ctx, reason) or reason, source=source or actor.via)
    with temporal_errors():
        return await _rollback(ctx, service, env, request)


async def _rollback(ctx: Context, service: str, env: str, request: RollbackRequest) -> RollbackOutcome:
    wid = await find_deployment(ctx, service, env)
    if wid is None:
        return RollbackOutcome(None, "nothing", f"no deployment of {service} to {env} found")
    handle = ctx.client.get_workflow_handle(wid)
    desc = await handle.describe()
    if desc.status == WorkflowExecutionStatus.RUNNING:
        try:
            await handle.signal(SIGNAL_ROLLBACK, request)
            return RollbackOutcome(wid, "signalled")
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            desc = await handle.describe()
    status = desc.typed_search_attributes.get(search.STATUS)
    if status != "deployed":
        state = status or (desc.status.name.lower() if desc.status else "unknown")
        return RollbackOutcome(wid, "nothing", f"the latest deployment {wid} is {state}")
    result = await ctx.client.get_workflow_handle(wid, result_type=DeployResult).result()
    rollback_id = f"{wid}/rollback"
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
            ),
            id=rollback_id,
            task_queue=ctx.task_queue,
            search_attributes=_attributes(service, env, "rolling_back"),
            static_summary=f"rollback {service} {result.version} in {env} by {request.by}"[:200],
        )
    except WorkflowAlreadyStartedError:
        return RollbackOutcome(rollback_id, "nothing", f"a rollback of {wid} is already running")
    return RollbackOutcome(rollback_id, "started")
