"""``PipelineWorkflow``: one entity workflow per repository branch.

Id ``pipeline/<repo>/<branch>``. CI events arrive by signal-with-start
(``build_event``); each is classified against its CI workflow's track,
routed through the route tree and delivered. The workflow continues-as-new,
carrying its state and any queued events, before its history grows large.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.incidents import IncidentActivities
    from workflows import search
    from workflows.incident_models import SuppressionQuery
    from workflows.delivery import deliver, load_config
    from workflows.models import BuildEvent, DeliveryRecord
    from workflows.policy.builds import Track, build_labels, build_message, classify
    from workflows.policy.routing import build_tree, match_routes

__all__ = ["PipelineWorkflow", "PipelineInput", "PipelineState", "PipelineNotice"]

RECENT_KEYS = 200
RECENT_NOTICES = 20


class PipelineNotice(BaseModel):
    """One processed event and what it notified."""

    seq: int
    alertname: str
    commit: str
    workflow: str
    notified: bool
    receivers: list[str] = Field(default_factory=list)
    deliveries: list[DeliveryRecord] = Field(default_factory=list)
    silenced_by: list[str] = Field(default_factory=list)
    """Silences that kept this event quiet (it is still recorded)."""


class PipelineState(BaseModel):
    """Everything the entity remembers across continue-as-new."""

    tracks: dict[str, Track] = Field(default_factory=dict)
    """One track per CI workflow name."""
    seq: int = 0
    """Events processed so far (numbers each notification's idempotency key)."""
    recent_keys: list[str] = Field(default_factory=list)
    """Dedupe keys of recent events: a CI retry of the same event changes nothing."""
    notices: list[PipelineNotice] = Field(default_factory=list)
    runs: int = 1
    """How many runs (continue-as-new generations) this entity has had."""


class PipelineInput(BaseModel):
    """Input of ``PipelineWorkflow`` (also its continue-as-new input)."""

    repo: str
    branch: str
    state: PipelineState | None = None
    pending: list[BuildEvent] = Field(default_factory=list)
    max_history: int = 2000
    """Continue-as-new once the history holds this many events."""


@workflow.defn(name="PipelineWorkflow")
class PipelineWorkflow:
    """The pipeline of one repository branch."""

    def __init__(self) -> None:
        self._queue: list[BuildEvent] = []
        self._state = PipelineState()
        self._status = ""

    @workflow.signal(name="build_event")
    def build_event(self, event: BuildEvent) -> None:
        """A CI event from ``tocsin build``."""
        self._queue.append(event)

    @workflow.query(name="state")
    def state(self) -> PipelineState:
        """Tracks, counters and the most recent notifications."""
        return self._state

    def _should_continue(self, limit: int) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= limit

    @workflow.run
    async def run(self, input: PipelineInput) -> None:
        if input.state is not None:
            self._state = input.state
        self._queue[:0] = input.pending
        while True:
            await workflow.wait_condition(lambda: bool(self._queue))
            while self._queue:
                await self._handle(input, self._queue.pop(0))
                if self._should_continue(input.max_history):
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    self._state.runs += 1
                    workflow.continue_as_new(input.model_copy(update={
                        "state": self._state, "pending": list(self._queue)}))

    async def _handle(self, input: PipelineInput, event: BuildEvent) -> None:
        key = event.dedupe_key()
        if key in self._state.recent_keys:
            workflow.logger.info("duplicate CI event ignored: %s", key)
            return
        self._state.recent_keys = [*self._state.recent_keys, key][-RECENT_KEYS:]
        config = await load_config()
        track = self._state.tracks.get(event.workflow, Track())
        result = classify(track, event, config.pipelines)
        self._state.tracks[event.workflow] = result.track
        self._state.seq += 1
        seq = self._state.seq
        notice = PipelineNotice(seq=seq, alertname=result.alertname, commit=event.commit,
                                workflow=event.workflow, notified=result.notify)
        labels = build_labels(event, result.alertname)
        if result.notify:
            held = await workflow.execute_local_activity_method(
                IncidentActivities.check_suppression,
                SuppressionQuery(incident=workflow.info().workflow_id, alerts=[labels], at=workflow.now(),
                                 inhibition=False),
                start_to_close_timeout=timedelta(seconds=30))
            # A maintenance window keeps it quiet; the event is still recorded here.
            notice.silenced_by = held.silenced_by
        if result.notify and not notice.silenced_by:
            receivers: list[str] = []
            for node in match_routes(build_tree(config.route), labels):
                if node.receiver not in receivers:
                    receivers.append(node.receiver)
            message = build_message(event, result, workflow.info().workflow_id)
            batches = await asyncio.gather(
                *(deliver(config, rcv, message, f"event-{seq}/{rcv}") for rcv in receivers))
            notice.receivers = receivers
            notice.deliveries = [record for batch in batches for record in batch]
        self._state.notices = [*self._state.notices, notice][-RECENT_NOTICES:]
        status = "failing" if any(t.consecutive_failures for t in self._state.tracks.values()) else "passing"
        if status != self._status:
            self._status = status
            workflow.upsert_search_attributes([search.STATUS.value_set(status)])
