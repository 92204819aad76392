"""People acting on incidents: acknowledge, resolve, escalate now, snooze."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from operations.auth import authorize, refused_by_state
from operations.context import Context, require_actor, temporal_errors
from operations.errors import BadInput, NotFound
from workflows import incident
from workflows.identity import Actor
from workflows.incident import ActionResult, HumanAction, IncidentState, SnoozeAction
from workflows.policy.redact import redactor_for

__all__ = ["acknowledge", "resolve", "escalate", "snooze", "incident_state"]


def _check_id(incident_id: str) -> str:
    incident_id = incident_id.strip()
    if not incident_id:
        raise BadInput("ID", "must not be empty")
    return incident_id


async def _act(ctx: Context, incident_id: str, update: str, action: HumanAction) -> ActionResult:
    """Run one human action (an update with identity) on an incident.

    Raises:
        NotFound: no such incident.
        Refused: the incident refused (already resolved, closed).
    """
    handle = ctx.client.get_workflow_handle(incident_id)
    with temporal_errors():
        try:
            return await handle.execute_update(update, action, result_type=ActionResult)
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            reason = getattr(cause, "message", None) or str(cause)
            raise refused_by_state(action.actor, action.by, update, reason) from None
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND and "completed" not in exc.message:
                raise
        # Not running: closed (resolved) or never existed?
        try:
            desc = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise NotFound(f"no incident {incident_id}") from None
            raise
    closed = desc.status.name.lower() if desc.status else "closed"
    raise refused_by_state(
        action.actor, action.by, update, f"incident {incident_id} is closed ({closed}), it was resolved"
    )


def _note(ctx: Context, note: str) -> str:
    """A person's note, redacted before it enters the incident's history."""
    return redactor_for(ctx.config.redact_patterns)(note)


ROLE = "responder"
"""What acting on an incident needs (acknowledge, resolve, escalate, snooze)."""


def _action(ctx: Context, actor: Actor, note: str) -> HumanAction:
    require_actor(actor)
    authorize(ctx.config, actor, ROLE)
    return HumanAction(by=actor.name, note=_note(ctx, note), via=actor.via, actor=actor)


async def acknowledge(ctx: Context, actor: Actor, incident_id: str, note: str = "") -> ActionResult:
    """Someone owns the incident: its escalation stops."""
    return await _act(ctx, _check_id(incident_id), incident.UPDATE_ACKNOWLEDGE, _action(ctx, actor, note))


async def resolve(ctx: Context, actor: Actor, incident_id: str, note: str = "") -> ActionResult:
    """Close the incident; everyone notified is told."""
    return await _act(ctx, _check_id(incident_id), incident.UPDATE_RESOLVE, _action(ctx, actor, note))


async def escalate(ctx: Context, actor: Actor, incident_id: str, note: str = "") -> ActionResult:
    """Notify the next level now."""
    return await _act(ctx, _check_id(incident_id), incident.UPDATE_ESCALATE, _action(ctx, actor, note))


async def snooze(ctx: Context, actor: Actor, incident_id: str, duration: timedelta, note: str = "") -> ActionResult:
    """Hold escalation for ``duration``; the ladder resumes where it was."""
    action = _action(ctx, actor, note)
    if duration <= timedelta(0):
        raise BadInput("--for", "must be positive")
    until = datetime.now(UTC) + duration
    snoozed = SnoozeAction(by=action.by, note=action.note, via=action.via, actor=action.actor, until=until)
    return await _act(ctx, _check_id(incident_id), incident.UPDATE_SNOOZE, snoozed)


async def incident_state(ctx: Context, incident_id: str) -> IncidentState:
    """The incident's state (a query: needs a worker).

    Raises:
        NotFound: no such incident.
    """
    handle = ctx.client.get_workflow_handle(_check_id(incident_id))
    with temporal_errors():
        try:
            return await handle.query(incident.QUERY_STATE, result_type=IncidentState)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise NotFound(f"no incident {incident_id}") from None
            raise
