"""What starters do with deployments: start, approve, reject, roll back, find.

Shared by the CLI, the gateway (Slack ``tocsin_approve``/``tocsin_reject``
buttons) and the incident side (rollback-trigger alerts), so every entry point
behaves the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.deployments import quote
from workflows import search
from workflows.deployment import (
    Decision,
    DecisionResult,
    DeployInput,
    DeployResult,
    DeploymentWorkflow,
    RollbackRequest,
    deployment_id,
)

__all__ = [
    "find_deployment",
    "start_deployment",
    "decide",
    "DecisionRefused",
    "RollbackOutcome",
    "request_rollback",
    "deployment_query",
]


def deployment_query(service: str, env: str) -> str:
    """Visibility query for one service's deployments to one environment."""
    return (f"TocsinKind='deployment' AND TocsinService={quote(service)} "
            f"AND TocsinEnvironment={quote(env)}")


async def find_deployment(client: Client, service: str, env: str) -> str | None:
    """The running deployment of ``service`` to ``env``, else the latest one.

    Returns:
        Its workflow id, or None when there has never been one.
    """
    base = deployment_query(service, env)
    running = [ex async for ex in client.list_workflows(f"{base} AND ExecutionStatus='Running'", limit=100)]
    if running:
        return max(running, key=lambda ex: ex.start_time).id
    latest = [ex async for ex in client.list_workflows(base, limit=1000)]
    if latest:
        return max(latest, key=lambda ex: ex.start_time).id
    return None


async def start_deployment(client: Client, request: DeployInput, task_queue: str) -> tuple[WorkflowHandle, bool]:
    """Start ``deploy/<service>/<env>/<version>``.

    Returns:
        The handle and whether this call started it (False: it was already running).
    """
    wid = deployment_id(request.service, request.env, request.version)
    try:
        handle = await client.start_workflow(
            DeploymentWorkflow.run, request, id=wid, task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(search.KIND, "deployment"),
                SearchAttributePair(search.SERVICE, request.service),
                SearchAttributePair(search.ENVIRONMENT, request.env),
                SearchAttributePair(search.STATUS, "starting"),
            ]),
            static_summary=(("[EMERGENCY] " if request.emergency else "")
                            + f"deploy {request.service} {request.version} to {request.env} by {request.by}")[:200],
        )
        return handle, True
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle(wid, result_type=DeployResult), False


class DecisionRefused(Exception):
    """An approval or rejection the deployment did not accept; ``str()`` is the reason."""


async def decide(client: Client, workflow_id: str, kind: str, decision: Decision) -> DecisionResult:
    """Send ``approve`` or ``reject`` as an update and wait for the answer.

    Raises:
        DecisionRefused: the deployment refused it (not an approver, four eyes,
            not awaiting approval, unknown or finished deployment).
    """
    handle = client.get_workflow_handle(workflow_id)
    try:
        return await handle.execute_update(kind, decision, result_type=DecisionResult)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise DecisionRefused(cause.message if isinstance(cause, ApplicationError) else str(cause)) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            if "update" in exc.message.lower() or "completed" in exc.message.lower():
                raise DecisionRefused(f"{workflow_id} is finished: {exc.message}") from None
            raise DecisionRefused(f"no deployment {workflow_id}") from None
        if exc.status == RPCStatusCode.FAILED_PRECONDITION or "completed" in exc.message.lower():
            raise DecisionRefused(f"{workflow_id} is finished: {exc.message}") from None
        raise


@dataclass
class RollbackOutcome:
    """What :func:`request_rollback` did."""

    workflow_id: str | None
    """The deployment signalled, or the rollback workflow started."""
    action: str
    """``signalled`` (a running deployment), ``started`` (a rollback of the last
    deployed one), or ``nothing`` (nothing to roll back; see ``detail``)."""
    detail: str = ""


async def request_rollback(client: Client, service: str, env: str, request: RollbackRequest,
                           task_queue: str) -> RollbackOutcome:
    """Abort the running deployment, or roll back the last deployed one.

    The running deployment gets the ``rollback`` signal. When none is running
    and the latest one ended ``deployed``, a rollback run of
    ``DeploymentWorkflow`` is started as ``<its id>/rollback`` (it takes the
    service/environment lock, calls the rollback hook, notifies and records).
    """
    wid = await find_deployment(client, service, env)
    if wid is None:
        return RollbackOutcome(None, "nothing", f"no deployment of {service} to {env} found")
    handle = client.get_workflow_handle(wid)
    desc = await handle.describe()
    if desc.status == WorkflowExecutionStatus.RUNNING:
        try:
            await handle.signal(DeploymentWorkflow.rollback, request)
            return RollbackOutcome(wid, "signalled")
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            desc = await handle.describe()
    status = desc.typed_search_attributes.get(search.STATUS)
    if status != "deployed":
        return RollbackOutcome(wid, "nothing", f"the latest deployment {wid} is {status or desc.status.name.lower()}")
    result = await client.get_workflow_handle(wid, result_type=DeployResult).result()
    rollback_id = f"{wid}/rollback"
    try:
        await client.start_workflow(
            DeploymentWorkflow.run,
            DeployInput(service=service, env=env, version=result.version, by=request.by, reason=request.reason,
                        rollback_of=wid, rollback_source=request.source),
            id=rollback_id, task_queue=task_queue,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(search.KIND, "deployment"),
                SearchAttributePair(search.SERVICE, service),
                SearchAttributePair(search.ENVIRONMENT, env),
                SearchAttributePair(search.STATUS, "rolling_back"),
            ]),
            static_summary=f"rollback {service} {result.version} in {env} by {request.by}"[:200],
        )
    except WorkflowAlreadyStartedError:
        return RollbackOutcome(rollback_id, "nothing", f"a rollback of {wid} is already running")
    return RollbackOutcome(rollback_id, "started")
