"""``NotifyWorkflow``: one durable notification to one receiver (``tocsin notify``)."""

from __future__ import annotations

from temporalio import workflow

from workflows.delivery import deliver, load_config
from workflows.notify.models import NotifyInput, NotifyResult

__all__ = ["NotifyWorkflow"]


@workflow.defn(name="NotifyWorkflow")
class NotifyWorkflow:
    """Delivers one message to one receiver and records what each channel did (and what it gave up on)."""

    def __init__(self) -> None:
        self._result = NotifyResult()

    @workflow.run
    async def run(self, input: NotifyInput) -> NotifyResult:
        config = await load_config()
        message = input.message.model_copy(update={"source": workflow.info().workflow_id})
        self._result.deliveries = await deliver(
            config, input.receiver, message, "notify", dead_letters=self._result.dead_letters
        )
        return self._result

    @workflow.query
    def deliveries(self) -> NotifyResult:
        """Delivery records so far."""
        return self._result
