"""``FailurePatternsWorkflow``: the same failure across pipelines, told once (issue 14, item 4).

Id ``report/failure-patterns``, one for the whole installation. Every failed (not flaky) build of any
pipeline arrives by signal-with-start (``failure_seen``, sent by the pipeline's ``report_failure_pattern``
activity) carrying its signature. Each goes into its signature's window
(``workflows.policy.failure_patterns.add_failure``, thresholds from the config's
``pipelines.health.patterns``):

* when the window reaches ``group_at`` distinct pipelines (repo@branch), or a critical failure is shared by
  a second pipeline, ONE grouped message is sent at once ("Same failure on 3 branches since 10:02 …",
  with the hint naming the first run, commit and author);
* otherwise the window is held until it closes (one timer, on the earliest closing window): then a window
  with at least two pipelines is sent; a window with one pipeline is dropped quietly (that pipeline's own
  message already told it);
* further occurrences of a group already sent are counted (query ``state``), not sent again;
* an occurrence already in its open window (a retried report: same pipeline, commit, run and time) is
  ignored.

The message is routed through the route tree with labels ``alertname=BuildFailurePattern``, ``kind=build``,
``category``, ``signature``, ``severity`` (and ``repo``/``service`` when all pipelines are of one repo);
a matching silence keeps it quiet. Deliveries run beside the grouping and are journalled by
``workflows.delivery``. The state is bounded (``PatternConfig`` limits, the last ``RECENT_NOTICES``
messages); the workflow continues-as-new, carrying it and any queued failures, before its history grows
large, once its deliveries have finished.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow

from workflows.config import Config
from workflows.delivery import deliver, load_config
from workflows.entity import Entity
from workflows.incident.models import SuppressionQuery
from workflows.journal import Journal
from workflows.models import Message
from workflows.notify.models import DeadLetter
from workflows.patterns.message import pattern_message
from workflows.patterns.models import (
    MAX_PENDING,
    RECENT_NOTICES,
    FailureGroup,
    FailurePatternsInput,
    FailurePatternsState,
    FailureSeen,
    Occurrence,
    PatternNotice,
)
from workflows.policy.failure_patterns import Signature, add_failure, due_groups, mark_sent
from workflows.policy.routing import receivers_for
from workflows.timer import Alarm

with workflow.unsafe.imports_passed_through():
    from activities.incidents import IncidentActivities

__all__ = ["FailurePatternsWorkflow"]

MIN_PIPELINES = 2
"""A group names at least this many pipelines, else it is not a pattern."""


@workflow.defn(name="FailurePatternsWorkflow")
class FailurePatternsWorkflow(Entity):
    """Groups one failure signature's occurrences across pipelines."""

    def __init__(self) -> None:
        self._queue: list[FailureSeen] = []
        self._state = FailurePatternsState()
        self._deliveries: list[asyncio.Task[None]] = []
        self._journal = Journal(self)
        self._alarm = Alarm()

    @workflow.signal(name="failure_seen")
    def failure_seen(self, seen: FailureSeen) -> None:
        """One failed build of one pipeline (from ``report_failure_pattern``)."""
        self._queue.append(seen)

    @workflow.query(name="state")
    def state(self) -> FailurePatternsState:
        """Open windows, first sightings, counters and the last grouped messages."""
        return self._state

    def _next_close(self) -> datetime | None:
        closes = [g.closes for g in self._state.patterns.groups if g.state == "holding"]
        return min(closes) if closes else None

    @workflow.run
    async def run(self, input: FailurePatternsInput) -> None:
        if input.state is not None:
            self._state = input.state
        self._queue[:0] = input.pending
        self._journal.start()
        while True:
            closes = self._next_close()
            wait = None if closes is None else max(closes - workflow.now(), timedelta(milliseconds=1))
            await self._alarm.wait(
                lambda: bool(self._queue) or (self._should_continue(input.max_history) and not self._in_flight()),
                wait,
            )
            if self._queue:
                await self._group(self._queue)
            await self._send_due()
            if self._should_continue(input.max_history) and not self._in_flight():
                await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self._journal.busy())
                self._state.runs += 1
                workflow.continue_as_new(
                    input.model_copy(update={"state": self._state, "pending": self._queue[-MAX_PENDING:]})
                )

    async def _snapshot(self) -> Config:
        return await load_config()

    async def _group(self, queue: list[FailureSeen]) -> None:
        """Put every queued failure in its window; send the groups that are due at once."""
        config = await self._snapshot()
        limits = config.pipelines.health.patterns
        while queue:
            seen = queue.pop(0)
            now = workflow.now()
            self._state.received += 1
            if self._repeated(seen, now):
                workflow.logger.info("repeated failure report ignored: %s", seen.key)
                continue
            sig = Signature(key=seen.key, category=seen.category, summary=seen.summary, kind=seen.kind)
            decision = add_failure(
                self._state.patterns,
                sig,
                seen.occurrence,
                now=now,
                critical=seen.critical and self._shared(seen, now),
                config=limits,
            )
            self._state.patterns = decision.state
            if decision.action == "send":
                self._send(config, decision.group, decision.first, critical=seen.critical)

    def _repeated(self, seen: FailureSeen, now: datetime) -> bool:
        """The same occurrence again (a retried ``report_failure_pattern``): already in its open window."""
        group = next((g for g in self._state.patterns.groups if g.key == seen.key and g.closes > now), None)
        return group is not None and seen.occurrence in group.occurrences

    def _shared(self, seen: FailureSeen, now: datetime) -> bool:
        """Whether this failure's open window already names another pipeline (a critical one goes at once then)."""
        here = f"{seen.occurrence.repo}@{seen.occurrence.branch}"
        group = next((g for g in self._state.patterns.groups if g.key == seen.key and g.closes > now), None)
        return group is not None and any(p != here for p in group.pipelines)

    async def _send_due(self) -> None:
        """Send the held windows that have closed with at least two pipelines; drop the others."""
        due = due_groups(self._state.patterns, workflow.now())
        if not due:
            return
        config = await self._snapshot()  # the receivers as they are when the window closes
        for group in due:
            self._state.patterns = mark_sent(self._state.patterns, group.key, group.opened)
            if len(group.pipelines) >= MIN_PIPELINES:
                first = self._state.patterns.first_seen.get(group.key) or group.occurrences[0]
                self._send(config, group, first, critical=False)

    def _send(self, config: Config, group: FailureGroup, first: Occurrence, *, critical: bool) -> None:
        """Start delivering one group's message beside the grouping."""
        self._state.sent += 1
        message = pattern_message(group, first, workflow.info().workflow_id, critical=critical)
        notice = PatternNotice(
            seq=self._state.sent,
            key=group.key,
            title=message.title,
            pipelines=list(group.pipelines),
            count=group.count,
            delivering=True,
        )
        self._state.notices = [*self._state.notices, notice][-RECENT_NOTICES:]
        self._deliveries.append(asyncio.create_task(self._deliver(config, notice, message)))

    async def _deliver(self, config: Config, notice: PatternNotice, message: Message) -> None:
        """Route one grouped message (unless silenced) and deliver it; record deliveries and dead letters."""
        letters: list[DeadLetter] = []
        try:
            held = await workflow.execute_local_activity_method(
                IncidentActivities.check_suppression,
                SuppressionQuery(
                    incident=workflow.info().workflow_id, alerts=[message.labels], at=workflow.now(), inhibition=False
                ),
                start_to_close_timeout=timedelta(seconds=30),
            )
            notice.silenced_by = held.silenced_by
            if notice.silenced_by:
                return
            notice.receivers = list(dict.fromkeys(receivers_for(config.route_tree(), message.labels)))
            batches = await asyncio.gather(
                *(
                    deliver(config, rcv, message, f"pattern-{notice.seq}/{rcv}", dead_letters=letters)
                    for rcv in notice.receivers
                )
            )
            notice.deliveries = [record for batch in batches for record in batch]
        finally:
            notice.delivering = False
        self._dead_lettered(letters)
