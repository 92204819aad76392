"""``PipelineWorkflow``: one entity workflow per repository branch.

Id ``pipeline/<repo>/<branch>``. CI events arrive by signal-with-start
(``build_event``); each is classified against its CI workflow's track,
routed through the route tree and delivered. Events are classified one at a
time, in arrival order; their deliveries run beside, so a dead channel never
holds up the next event (each delivery gives up after its receiver's
``give_up_after`` and dead-letters what it could not deliver, see
``workflows.delivery``). Runs with the ``audit-journal`` patch journal each event
(``build.reported``, with the sender's actor when it carries one) and each delivery
(``workflows.delivery``) as they happen. The workflow continues-as-new, carrying its state and
any queued events, before its history grows large: it first waits for the
deliveries still running (never dropping one) while it goes on classifying
events and starting their deliveries; only if the history reaches
``HOLD_FACTOR`` × ``max_history`` meanwhile are new events held in the queue
(carried into the next run) until the last delivery has finished or given up.
Runs whose history predates concurrent deliveries (no
``pipeline-concurrent-deliveries`` patch marker) deliver inline, as they did.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

from workflows import search
from workflows.config import Config
from workflows.delivery import deliver, load_config
from workflows.incident.models import SuppressionQuery
from workflows.journal import Journal
from workflows.models import Message, MessageField
from workflows.notify.models import DeadLetter
from workflows.pipeline.health import HEALTH_PATCH, PipelineHealth
from workflows.pipeline.models import BuildEvent, PipelineInput, PipelineNotice, PipelineState, Track
from workflows.policy.builds import Classified, build_labels, build_message, classify, flaky_build, pipeline_status
from workflows.policy.flaky import flaky_tests
from workflows.policy.pipeline_health import Assessment, apply, routing_labels

with workflow.unsafe.imports_passed_through():
    from activities.incidents import IncidentActivities

__all__ = ["PipelineWorkflow"]

RECENT_KEYS = 200
RECENT_NOTICES = 20
HOLD_FACTOR = 5
CONCURRENT_DELIVERIES_PATCH = "pipeline-concurrent-deliveries"


@workflow.defn(name="PipelineWorkflow")
class PipelineWorkflow(PipelineHealth):
    """The pipeline of one repository branch."""

    def __init__(self) -> None:
        self._queue: list[BuildEvent] = []
        self._state = PipelineState()
        self._status = ""
        self._deliveries: list[asyncio.Task[None]] = []
        self._journal = Journal(self)
        self._health = False

    @workflow.signal(name="build_event")
    def build_event(self, event: BuildEvent) -> None:
        """A CI event from ``tocsin build``."""
        self._queue.append(event)

    @workflow.query(name="state")
    def state(self) -> PipelineState:
        """Tracks, counters and the most recent notifications."""
        return self._state

    def _holding(self, input: PipelineInput) -> bool:
        """Hold new events only when deliveries keep the run from continuing and history grows large."""
        return bool(self._deliveries) and workflow.info().get_current_history_length() >= (
            input.max_history * HOLD_FACTOR
        )

    @workflow.run
    async def run(self, input: PipelineInput) -> None:
        if input.state is not None:
            self._state = input.state
        self._queue[:0] = input.pending
        self._journal.start()
        # Asked once, before any activity: a patch first asked right after a local activity resolves can be
        # seen a workflow task early on replay (the activity's marker is in the same task), which diverges.
        self._health = workflow.patched(HEALTH_PATCH)
        while True:
            await workflow.wait_condition(
                lambda: (
                    (bool(self._queue) and not self._holding(input))
                    or (self._should_continue(input.max_history) and not self._in_flight())
                )
            )
            if self._queue and not self._holding(input):
                await self._handle(input, self._queue.pop(0))
            if self._should_continue(input.max_history) and not self._in_flight():
                await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self._journal.busy())
                self._state.runs += 1
                workflow.continue_as_new(input.model_copy(update={"state": self._state, "pending": list(self._queue)}))

    async def _handle(self, input: PipelineInput, event: BuildEvent) -> None:
        key = event.dedupe_key()
        if key in self._state.recent_keys:
            workflow.logger.info("duplicate CI event ignored: %s", key)
            return
        self._state.recent_keys = [*self._state.recent_keys, key][-RECENT_KEYS:]
        config = await load_config()
        track = self._state.tracks.get(event.workflow, Track())
        self._state.seq += 1
        seq = self._state.seq
        found = self._assess(config, event, seq) if self._health else None
        flaky = self.is_flaky(event, found)
        result = flaky_build(track, event) if flaky else classify(track, event, config.pipelines)
        self._state.tracks[event.workflow] = result.track
        notice = PipelineNotice(
            seq=seq, alertname=result.alertname, commit=event.commit, workflow=event.workflow, notified=result.notify
        )
        known_flaky = len(flaky_tests(self._state.health.tests, config.pipelines.health.flaky)) if found else None
        self._journal_event(event, seq, result.alertname, flaky, known_flaky)
        labels = build_labels(event, result.alertname)
        if found is not None:
            labels = routing_labels(labels, found)
        if result.notify:
            held = await workflow.execute_local_activity_method(
                IncidentActivities.check_suppression,
                SuppressionQuery(
                    incident=workflow.info().workflow_id, alerts=[labels], at=workflow.now(), inhibition=False
                ),
                start_to_close_timeout=timedelta(seconds=30),
            )
            # A maintenance window keeps it quiet; the event is still recorded here.
            notice.silenced_by = held.silenced_by
        receivers = self._routes(config, labels)
        if result.notify and not notice.silenced_by:
            message = self._message(event, result, found)
            notice.receivers = receivers
            if workflow.patched(CONCURRENT_DELIVERIES_PATCH):
                notice.delivering = True
                self._deliveries.append(asyncio.create_task(self._deliver(config, notice, message)))
            else:
                await self._deliver(config, notice, message)
        if found is not None:
            self._follow_up(config, event, notice, found, receivers)
        self._state.notices = [*self._state.notices, notice][-RECENT_NOTICES:]
        status = pipeline_status(self._state.tracks.values())
        if status != self._status:
            self._status = status
            workflow.upsert_search_attributes([search.STATUS.value_set(status)])

    @staticmethod
    def _message(event: BuildEvent, result: Classified, found: Assessment | None) -> Message:
        """The event's message; with the health memory, its trends, flaky tests and failure signature."""
        message = build_message(event, result, workflow.info().workflow_id)
        if found is None:
            return message
        message = apply(message, found)
        extra: list[MessageField] = []
        if found.flakiness is not None and found.flakiness.flaky:
            extra.append(MessageField(title="Flaky tests", value=", ".join(found.flakiness.flaky)[:500]))
        labels = dict(message.labels)
        if found.trends is not None and found.trends.coverage is not None:
            kinds = {f.kind for f in found.trends.findings}
            state = "below_min" if "coverage_below_min" in kinds else "dropped" if "coverage_drop" in kinds else "ok"
            labels["coverage_state"] = state
        return message.model_copy(update={"fields": [*message.fields, *extra], "labels": labels})

    def _journal_event(
        self, event: BuildEvent, seq: int, alertname: str, flaky: bool = False, known_flaky: int | None = None
    ) -> None:
        detail = {"repo": event.repo, "branch": event.branch, "commit": event.commit, "workflow": event.workflow}
        extra: dict[str, object] = {"status": event.status, "pr": event.pr, "author": event.author, "seq": seq}
        if self._health:
            tests = event.tests
            extra.update(
                {
                    "duration_seconds": event.duration_seconds,
                    "queued_seconds": event.queued_seconds,
                    "coverage": event.coverage.line_percent if event.coverage is not None else None,
                    "tests_failed": (tests.failed + tests.errors) if tests is not None else None,
                    "flaky": flaky,
                    "flaky_tests": known_flaky,
                }
            )
        self._journal.record("build.reported", actor=event.actor, detail={**detail, **extra, "alertname": alertname})

    async def _deliver(self, config: Config, notice: PipelineNotice, message: Message) -> None:
        """Deliver one event's message to its receivers; record the deliveries and any dead letters."""
        letters: list[DeadLetter] = []
        try:
            batches = await asyncio.gather(
                *(
                    deliver(config, rcv, message, f"event-{notice.seq}/{rcv}", dead_letters=letters)
                    for rcv in notice.receivers
                )
            )
            notice.deliveries = [record for batch in batches for record in batch]
        finally:
            notice.delivering = False
        self._dead_lettered(letters)
