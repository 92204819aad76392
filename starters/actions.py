"""What starters do with Temporal: validate, translate, call. Shared by the CLI,
the gateway and the benchmarks so every entry point behaves the same.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from workflows import search
from workflows.pipeline.models import BuildEvent
from workflows.models import Message
from workflows.notify.models import NotifyInput
from workflows.notify.workflow import NotifyWorkflow
from workflows.pipeline.models import PipelineInput
from workflows.pipeline.workflow import PipelineWorkflow

__all__ = ["pipeline_id", "send_build_event", "start_notify"]


def pipeline_id(repo: str, branch: str) -> str:
    """``pipeline/<repo>/<branch>``."""
    return f"pipeline/{repo}/{branch}"


async def send_build_event(client: Client, event: BuildEvent, task_queue: str) -> str:
    """Signal-with-start the pipeline's entity workflow with one CI event.

    Returns:
        The workflow id.
    """
    if event.sent_at is None:
        event = event.model_copy(update={"sent_at": datetime.now(timezone.utc)})
    wid = pipeline_id(event.repo, event.branch)
    await client.start_workflow(
        PipelineWorkflow.run,
        PipelineInput(repo=event.repo, branch=event.branch),
        id=wid,
        task_queue=task_queue,
        start_signal="build_event",
        start_signal_args=[event],
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(search.KIND, "pipeline"),
            SearchAttributePair(search.SERVICE, event.repo),
        ]),
        static_summary=f"CI pipeline {event.repo}@{event.branch}",
    )
    return wid


async def start_notify(client: Client, receiver: str, message: Message, task_queue: str) -> WorkflowHandle:
    """Start one ``NotifyWorkflow``; returns its handle (id ``notify/<uuid>``)."""
    return await client.start_workflow(
        NotifyWorkflow.run,
        NotifyInput(receiver=receiver, message=message),
        id=f"notify/{uuid.uuid4()}",
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(search.KIND, "notification"),
            SearchAttributePair(search.SEVERITY, message.severity),
        ]),
        static_summary=message.title[:200],
    )
