"""Silences from the CLI: updates on the durable ``SilencesWorkflow``."""

from __future__ import annotations

from temporalio.client import WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from workers.settings import Settings
from workers.temporal import connect
from workflows import search
from workflows.silences.models import SILENCES_ID, AddSilence, ExpireSilence, SilenceRecord, SilencesState
from workflows.silences.workflow import SilencesWorkflow

__all__ = ["add_silence", "list_silences", "expire_silence", "SilenceRefused"]


class SilenceRefused(Exception):
    """The silences store refused (unknown or inactive id, bad matcher)."""


async def add_silence(settings: Settings, matchers: list[str], duration: str, by: str, comment: str) -> SilenceRecord:
    """Start the store if needed and add one silence."""
    client = await connect(settings)
    handle = await client.start_workflow(
        SilencesWorkflow.run, None, id=SILENCES_ID, task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes([SearchAttributePair(search.KIND, "silences")]))
    try:
        return await handle.execute_update(SilencesWorkflow.add,
                                           AddSilence(matchers=matchers, duration=duration, by=by, comment=comment))
    except WorkflowUpdateFailedError as exc:
        raise SilenceRefused(getattr(exc.cause, "message", str(exc.cause))) from None


async def list_silences(settings: Settings) -> SilencesState:
    """Every silence the store holds (none when it was never started)."""
    client = await connect(settings)
    try:
        return await client.get_workflow_handle_for(SilencesWorkflow.run, SILENCES_ID).query(SilencesWorkflow.list)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return SilencesState()
        raise


async def expire_silence(settings: Settings, silence_id: str, by: str) -> SilenceRecord:
    """End a silence now."""
    client = await connect(settings)
    handle = client.get_workflow_handle_for(SilencesWorkflow.run, SILENCES_ID)
    try:
        return await handle.execute_update(SilencesWorkflow.expire, ExpireSilence(id=silence_id, by=by))
    except WorkflowUpdateFailedError as exc:
        raise SilenceRefused(getattr(exc.cause, "message", str(exc.cause))) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise SilenceRefused(f"unknown silence {silence_id}") from None
        raise
