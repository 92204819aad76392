"""Silences (maintenance windows): updates on the durable ``SilencesWorkflow``."""

from __future__ import annotations

from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from operations.auth import authorize, refused_by_state
from operations.context import Context, require_actor, temporal_errors
from operations.errors import BadInput, NotFound
from workflows import search, silences
from workflows.identity import Actor
from workflows.policy.durations import DurationError, parse_duration
from workflows.policy.matchers import MatcherError
from workflows.policy.redact import redactor_for
from workflows.policy.silences import silence_matchers
from workflows.silences import SILENCES_ID, AddSilence, ExpireSilence, SilenceRecord, SilencesState

__all__ = ["add_silence", "list_silences", "expire_silence", "check_silence", "ROLE"]

ROLE = "silencer"
"""What adding or expiring a silence needs."""


def check_silence(matchers: list[str], duration: str, comment: str) -> None:
    """Raise :class:`BadInput` naming the field unless the matchers, duration and comment make a silence."""
    try:
        silence_matchers(matchers)
    except MatcherError as exc:
        raise BadInput("--matcher", str(exc)) from None
    try:
        if parse_duration(duration).total_seconds() <= 0:
            raise BadInput("--duration", "must be positive")
    except DurationError as exc:
        raise BadInput("--duration", str(exc)) from None
    if not comment.strip():
        raise BadInput("--comment", "must not be empty")


async def add_silence(ctx: Context, actor: Actor, matchers: list[str], duration: str, comment: str) -> SilenceRecord:
    """Start the store if needed and add one silence (its comment redacted before it enters Temporal).

    Raises:
        BadInput: a matcher, the duration or the comment is wrong.
        Refused: the store refused it.
    """
    require_actor(actor)
    authorize(ctx.config, actor, ROLE)
    check_silence(matchers, duration, comment)
    redact = redactor_for(ctx.config.redact_patterns)
    with temporal_errors():
        handle = await ctx.client.start_workflow(
            silences.WORKFLOW,
            None,
            id=SILENCES_ID,
            task_queue=ctx.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes([SearchAttributePair(search.KIND, "silences")]),
        )
        try:
            return await handle.execute_update(
                silences.UPDATE_ADD,
                AddSilence(matchers=matchers, duration=duration, by=actor.name, comment=redact(comment), actor=actor),
                result_type=SilenceRecord,
            )
        except WorkflowUpdateFailedError as exc:
            reason = getattr(exc.cause, "message", str(exc.cause))
            raise refused_by_state(actor, actor.name, silences.UPDATE_ADD, reason) from None


async def list_silences(ctx: Context) -> SilencesState:
    """Every silence the store holds (none when it was never started)."""
    with temporal_errors():
        try:
            return await ctx.client.get_workflow_handle(SILENCES_ID).query(
                silences.QUERY_LIST, result_type=SilencesState
            )
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return SilencesState()
            raise


async def expire_silence(ctx: Context, actor: Actor, silence_id: str) -> SilenceRecord:
    """End a silence now.

    Raises:
        NotFound: unknown silence (or no store).
        Refused: the store refused (already expired).
    """
    require_actor(actor)
    authorize(ctx.config, actor, ROLE)
    handle = ctx.client.get_workflow_handle(SILENCES_ID)
    with temporal_errors():
        try:
            return await handle.execute_update(
                silences.UPDATE_EXPIRE,
                ExpireSilence(id=silence_id, by=actor.name, actor=actor),
                result_type=SilenceRecord,
            )
        except WorkflowUpdateFailedError as exc:
            reason = getattr(exc.cause, "message", str(exc.cause))
            raise refused_by_state(actor, actor.name, silences.UPDATE_EXPIRE, reason) from None
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise NotFound(f"unknown silence {silence_id}") from None
            raise
