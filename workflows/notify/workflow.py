"""``NotifyWorkflow``: one durable notification to one receiver (``tocsin notify``).

Runs with the ``audit-journal`` patch journal the request (``notification.requested``, with who
asked) and what each channel did (``workflows.delivery``): receiver, channel, outcome, never the text.
"""

from __future__ import annotations

from temporalio import workflow

from workflows.delivery import deliver, load_config
from workflows.journal import Journal
from workflows.notify.models import NotifyInput, NotifyResult

__all__ = ["NotifyWorkflow"]


@workflow.defn(name="NotifyWorkflow")
class NotifyWorkflow:
    """Delivers one message to one receiver and records what each channel did (and what it gave up on)."""

    def __init__(self) -> None:
        self._result = NotifyResult()
        self._journal = Journal()

    @workflow.run
    async def run(self, input: NotifyInput) -> NotifyResult:
        detail = {"receiver": input.receiver, "severity": input.message.severity, "source": input.message.source}
        self._journal.record("notification.requested", actor=input.actor, detail=detail)
        config = await load_config()
        message = input.message.model_copy(update={"source": workflow.info().workflow_id})
        self._result.deliveries = await deliver(
            config, input.receiver, message, "notify", dead_letters=self._result.dead_letters
        )
        await self._journal.flushed()
        return self._result

    @workflow.query
    def deliveries(self) -> NotifyResult:
        """Delivery records so far."""
        return self._result
