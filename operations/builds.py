"""CI events and ad-hoc notifications: ``tocsin build``, ``tocsin notify``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from temporalio.common import SearchAttributePair, TypedSearchAttributes

from operations.auth import authorize
from operations.context import Context, require_actor, temporal_errors
from operations.errors import BadInput
from workflows import notify, pipeline, search
from workflows.config import Config
from workflows.identity import Actor
from workflows.models import Message
from workflows.notify import NotifyInput
from workflows.pipeline import BuildEvent, PipelineInput, pipeline_id
from workflows.pipeline.models import MAX_LOG_TAIL
from workflows.policy.redact import redact_build_event, redact_message, redactor_for

__all__ = ["send_build_event", "send_notification", "check_receiver", "ROLE"]

ROLE = "builder"
"""What sending a CI event or a notification needs."""


async def send_build_event(ctx: Context, actor: Actor, event: BuildEvent) -> str:
    """Signal-with-start the pipeline's entity workflow with one CI event.

    The event's free text (URL, author, failing step, log tail, failing tests, findings) is redacted
    first: secrets never enter workflow history. The log tail is kept to its last ``MAX_LOG_TAIL``
    characters whatever the door.

    Returns:
        The workflow id, ``pipeline/<repo>/<branch>``.
    """
    require_actor(actor)
    authorize(ctx.config, actor, ROLE)
    event = event.model_copy(update={"actor": actor})  # the sender; ``author`` stays the commit's
    event = redact_build_event(event, redactor_for(ctx.config.redact_patterns))
    if event.log_tail is not None and len(event.log_tail) > MAX_LOG_TAIL:
        event = event.model_copy(update={"log_tail": event.log_tail[-MAX_LOG_TAIL:]})
    if event.sent_at is None:
        event = event.model_copy(update={"sent_at": datetime.now(UTC)})
    wid = pipeline_id(event.repo, event.branch)
    with temporal_errors():
        await ctx.client.start_workflow(
            pipeline.WORKFLOW,
            PipelineInput(repo=event.repo, branch=event.branch),
            id=wid,
            task_queue=ctx.task_queue,
            start_signal=pipeline.SIGNAL_BUILD_EVENT,
            start_signal_args=[event],
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search.KIND, "pipeline"),
                    SearchAttributePair(search.SERVICE, event.repo),
                ]
            ),
            static_summary=f"CI pipeline {event.repo}@{event.branch}",
        )
    return wid


def check_receiver(config: Config, receiver: str) -> None:
    """Raise :class:`BadInput` naming ``--receiver`` unless the config has that receiver."""
    if config.receiver(receiver) is None:
        known = ", ".join(r.name for r in config.receivers) or "none"
        raise BadInput("--receiver", f"unknown receiver {receiver!r} (known: {known})")


async def send_notification(ctx: Context, actor: Actor, receiver: str, message: Message) -> str:
    """Start one ``NotifyWorkflow`` (``notify/<uuid>``) to a receiver of the config.

    The message (text, fields, links, buttons, labels) is redacted before it enters Temporal.

    Raises:
        BadInput: ``--receiver`` is not in the config.
    """
    require_actor(actor)
    authorize(ctx.config, actor, ROLE)
    check_receiver(ctx.config, receiver)
    message = redact_message(message, redactor_for(ctx.config.redact_patterns))
    with temporal_errors():
        handle = await ctx.client.start_workflow(
            notify.WORKFLOW,
            NotifyInput(receiver=receiver, message=message, actor=actor),
            id=f"notify/{uuid.uuid4()}",
            task_queue=ctx.task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search.KIND, "notification"),
                    SearchAttributePair(search.SEVERITY, message.severity),
                ]
            ),
            static_summary=message.title[:200],
        )
    return handle.id
