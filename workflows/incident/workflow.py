"""``IncidentWorkflow``: one per alert group, ``incident/<hash>``.

States: triggered → notified → acknowledged → resolved (and silenced / inhibited while
suppressed). Alerts arrive by signal-with-start (``add_alerts``); people act through updates
with identity (``acknowledge``, ``resolve``, ``escalate_now``, ``snooze``). The ladder is a
schedule from the first notification; ``rungs_done`` counts the rungs delivered, so each level
notifies exactly once, across a worker crash too (idempotency keys name the rung), and every
rung missed while the worker was down is delivered when it comes back. Deliveries run beside
the ladder (``workflows.incident.deliveries``): a dead channel holds up nothing but its own lane.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.config import Config, EscalationPolicy
from workflows.delivery import DEAD_LETTER_PATCH, LOCAL_PAGE_PATCH, SEND_QUEUES_PATCH, load_config
from workflows.identity import Actor
from workflows.incident.bounded import AlertBook, add_to_timeline, batch_entries
from workflows.incident.chat import IncidentChat
from workflows.incident.deliveries import CONCURRENT_DELIVERIES_PATCH, Lanes
from workflows.incident.journal import IncidentJournal
from workflows.incident.models import (
    ActionResult,
    AlertBatch,
    HumanAction,
    IncidentInput,
    IncidentMetrics,
    IncidentState,
    SnoozeAction,
)
from workflows.incident.muting import MUTING_STAGE_PATCH, MutingStage
from workflows.incident.rollback import IncidentRollback
from workflows.incident.visibility import OWN_ATTRIBUTES_PATCH, IncidentVisibility
from workflows.journal import JOURNAL_PATCH, LOCAL_JOURNAL_PATCH, Journal
from workflows.patches import patched
from workflows.policy.durations import parse_duration
from workflows.policy.incidents import Repeats, Rung, ladder
from workflows.policy.routing import RouteNode, build_tree, effective_repeat_interval, find_node
from workflows.timer import Alarm, wait_until

with workflow.unsafe.imports_passed_through():
    from activities.incidents import IncidentActivities

__all__ = ["IncidentWorkflow"]

ACTIVITY_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
BOUNDED_PATCH = "bounded-incident"
"""Runs started with it continue as new also by history size and before the first notification,
fold queued alerts into the state first, and carry unannounced actions over."""
MAX_HISTORY_BYTES = 4 * 1024 * 1024
HOLD_FACTOR = 4
"""Past ``HOLD_FACTOR`` x the history limits, a run waits for its deliveries to continue as new."""
LEAN_PATCH = "incident-lean"
"""Runs started with it publish only what their start did not, reload the config only when an update is
due, and keep their timer while its deadline stands (no cancel-and-restart per signal)."""
LEAN_IMPLIES = frozenset(
    {BOUNDED_PATCH, CONCURRENT_DELIVERIES_PATCH, MUTING_STAGE_PATCH, SEND_QUEUES_PATCH, DEAD_LETTER_PATCH}
)
FIRST_LOOK_PATCH = "incident-first-look"
"""Runs started with it take their config snapshot and, on a route with no group_wait, their mute
verdict in one local activity (``first_look``) instead of two in a row."""
FIRST_LOOK_IMPLIES = LEAN_IMPLIES | {LEAN_PATCH, JOURNAL_PATCH}
FIRST_PAGE_ALONE_PATCH = "incident-first-page-alone"
"""Runs started with it hold their audit journal's first batch while their first page is in flight
(``Journal.hold_while``): the page is scheduled alone, its records go in one send with its deliveries'."""
UMBRELLA = (FIRST_LOOK_PATCH, FIRST_PAGE_ALONE_PATCH, LOCAL_PAGE_PATCH, LOCAL_JOURNAL_PATCH, OWN_ATTRIBUTES_PATCH)
NEWEST_FIRST = [(p, FIRST_LOOK_IMPLIES | set(UMBRELLA[: i + 1])) for i, p in enumerate(UMBRELLA)][::-1]
"""Umbrella patches, newest first, each with what its runs follow without asking (one marker): the
earlier ones too. With ``incident-local-page``, pages on unpaced channels are tried locally first; with
``incident-local-journal``, audit journal batches too (``workflows.journal``); with ``incident-own-attributes``,
a run whose start carried no search attributes publishes them (``workflows.incident.visibility``)."""


@workflow.defn(name="IncidentWorkflow")
class IncidentWorkflow(MutingStage, IncidentChat, IncidentVisibility, IncidentRollback, IncidentJournal):
    """One alert group's incident, from first alert to resolution."""

    @workflow.init
    def __init__(self, input: IncidentInput) -> None:
        self._st = input.state or IncidentState(
            id=input.id, route_path=input.route_path, group_labels=input.group_labels, created_at=workflow.now()
        )
        self._fresh = input.state is None
        self._input = input
        self._book = AlertBook(self._st, input.ledger)
        self._bounded = False
        """This run follows ``BOUNDED_PATCH`` (decided at the start of ``run``)."""
        self._pending: list[AlertBatch] = list(input.pending)
        self._events: list[tuple[str, str, str]] = list(input.events)
        """(event, actor, note) waiting to be announced: acknowledged, resolved, escalated…"""
        self._advance = input.advance
        self._ack_seq = 0
        self._lean = False
        """This run follows ``LEAN_PATCH`` (decided at the start of ``run``)."""
        self.assumed_patches: frozenset[str] = frozenset()
        """Patches this run follows without asking (``workflows.patches``)."""
        self._alarm = Alarm()
        self._concurrent = False
        """This run delivers in the background (``CONCURRENT_DELIVERIES_PATCH``, decided at the start of ``run``)."""
        self._lanes = Lanes()
        self._deliveries: list[asyncio.Task[None]] = []
        self._journal = Journal(input, spawn=self._spawn)
        self._first_page: asyncio.Task[None] | None = None
        """The run's first page (rung 0 after the first notification), while the journal waits for it."""

    # ------------------------------------------------------------------ handlers

    @property
    def st(self) -> IncidentState:
        return self._st

    def _log(self, actor: str, action: str, detail: str = "", who: Actor | None = None) -> None:
        add_to_timeline(self.st, workflow.now(), actor, action, detail, who)
        self._journal_event(actor, action, detail, who)

    @workflow.signal(name="add_alerts")
    def add_alerts(self, batch: AlertBatch) -> None:
        """Alerts for this group, firing or resolved."""
        self._pending.append(batch)

    @workflow.signal(name="digest_sent")
    def digest_sent(self, report: str) -> None:
        """The receiver's scheduled digest carried this incident."""
        if self._st.held_for_digest and self._st.digest is None:
            self._st.digest = report
            self._log(report, "sent in digest")

    @workflow.query(name="state")
    def state(self) -> IncidentState:
        """The incident: status, alerts, escalation level, timeline, MTTA/MTTR."""
        return self.st

    def _refuse_if_resolved(self, action: HumanAction) -> None:
        if not action.by.strip():
            raise ValueError("'by' is required: every action has an identity")
        if self._st.status == "resolved":
            raise ValueError(f"incident is already resolved (by {self._st.resolved_by})")

    @workflow.update(name="acknowledge")
    async def acknowledge(self, action: HumanAction) -> ActionResult:
        """Someone owns the incident: the ladder stops."""
        if self.st.status == "acknowledged":
            return ActionResult(
                accepted=True, status="acknowledged", detail=f"already acknowledged by {self.st.acknowledged_by}"
            )
        now = workflow.now()
        self.st.status = "acknowledged"
        self.st.acknowledged_by = action.by
        self.st.handled_note = action.note
        self.st.acknowledged_at = now
        if self.st.mtta_seconds is None:
            self.st.mtta_seconds = (now - (self.st.created_at or now)).total_seconds()
        self._ack_seq += 1
        self._log(
            action.by, "acknowledged", f"via {action.via}" + (f": {action.note}" if action.note else ""), action.actor
        )
        self._events.append(("acknowledged", action.by, action.note))
        return ActionResult(accepted=True, status="acknowledged")

    @acknowledge.validator
    def _validate_ack(self, action: HumanAction) -> None:
        self._refuse_if_resolved(action)

    @workflow.update(name="resolve")
    async def resolve(self, action: HumanAction) -> ActionResult:
        """Close the incident; everyone notified is told."""
        detail = f"via {action.via}" + (f": {action.note}" if action.note else "")
        self._mark_resolved(action.by, detail, note=action.note, who=action.actor)
        return ActionResult(accepted=True, status="resolved")

    @resolve.validator
    def _validate_resolve(self, action: HumanAction) -> None:
        self._refuse_if_resolved(action)

    @workflow.update(name="escalate_now")
    async def escalate_now(self, action: HumanAction) -> ActionResult:
        """Skip the wait: notify the next level at once."""
        self._log(action.by, "escalate_now", action.note, action.actor)
        if self.st.status == "acknowledged":
            self.st.status = "notified"
        self._advance = True
        return ActionResult(accepted=True, status=self.st.status)

    @escalate_now.validator
    def _validate_escalate(self, action: HumanAction) -> None:
        self._refuse_if_resolved(action)

    @workflow.update(name="snooze")
    async def snooze(self, action: SnoozeAction) -> ActionResult:
        """Hold escalation until a time; the ladder resumes where it was."""
        now = workflow.now()
        if self.st.escalation_restart is not None:
            current = max(self.st.snoozed_until or now, now)
            self.st.escalation_restart += max(timedelta(0), action.until - current)
        self.st.snoozed_until = action.until
        detail = f"until {action.until.isoformat()}" + (f": {action.note}" if action.note else "")
        self._log(action.by, "snoozed", detail, action.actor)
        return ActionResult(accepted=True, status=self.st.status, detail=f"snoozed until {action.until.isoformat()}")

    @snooze.validator
    def _validate_snooze(self, action: SnoozeAction) -> None:
        self._refuse_if_resolved(action)

    # ------------------------------------------------------------------ helpers

    def _mark_resolved(self, actor: str, detail: str, note: str | None = None, who: Actor | None = None) -> None:
        if self.st.status == "resolved":
            return
        now = workflow.now()
        self.st.status = "resolved"
        self.st.resolved_by = actor
        self.st.handled_note = note or ""
        self.st.resolved_at = now
        self.st.mttr_seconds = (now - (self.st.created_at or now)).total_seconds()
        self._log(actor, "resolved", detail, who)
        self._events.append(("resolved", actor, detail if note is None else note))

    def _apply_pending(self) -> bool:
        """Merge queued alerts; True when the group changed. Malformed or oversized input never raises."""
        changed = False
        while self._pending:
            batch = self._pending.pop(0)
            alerts = self._book.apply(batch)
            for actor, action, detail in batch_entries(batch.source, alerts):
                self._log(actor, action, detail)
            changed = changed or bool(alerts)
        if changed or self._own_attributes:
            self._set_severity(self._book.severity())
        if changed and self._book.all_resolved() and self.st.status != "resolved":
            self._mark_resolved("alertmanager", "all alerts resolved")
        return changed

    def _policy(self, config: Config) -> EscalationPolicy | None:
        if self.st.escalation and self.st.escalation in config.escalation_policies:
            return config.escalation_policies[self.st.escalation]
        return None

    def _schedule(self, config: Config, node: RouteNode) -> Sequence[Rung]:
        """The rungs of this incident: the escalation ladder, or the route receiver with repeats."""
        if self.st.held_for_digest:
            return []  # the digest was the notification
        start = self.st.escalation_restart or workflow.now()
        policy = self._policy(config)
        if policy is not None and policy.levels:
            return ladder(policy, start)
        repeat = effective_repeat_interval(node)
        # No ladder: notify the route's receiver, then repeat every repeat_interval while unacknowledged.
        return Repeats(node.receiver, start, repeat, 1000)

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, input: IncidentInput) -> IncidentState:
        self.assumed_patches = next((implied for p, implied in NEWEST_FIRST if workflow.patched(p)), frozenset())
        first_look = FIRST_LOOK_PATCH in self.assumed_patches
        self._lean = first_look or workflow.patched(LEAN_PATCH)
        if FIRST_PAGE_ALONE_PATCH in self.assumed_patches and self.st.notified_at is None:
            self._journal.hold_while(self._first_page_in_flight)
        self._journal.start()  # asks audit-journal unless first-look implies it
        if self._lean:
            self.assumed_patches |= LEAN_IMPLIES
            self._inherit_published(own=OWN_ATTRIBUTES_PATCH in self.assumed_patches)
        self._bounded = patched(BOUNDED_PATCH)
        self._concurrent = patched(CONCURRENT_DELIVERIES_PATCH)
        self._apply_pending()
        if first_look and self.st.notified_at is None and self.st.status != "resolved":
            config = await self._first_look()
        else:
            config = await load_config()
        root = build_tree(config.route)
        node = find_node(root, self.st.route_path) or root
        self.st.receiver, self.st.escalation = node.receiver, input.escalation or node.escalation
        if self.st.notified_at is None and self.st.status == "resolved" and self._concurrent:
            self._closed("resolved within group_wait: nothing was sent")  # resolved in its first batches
            return await self._finish(record=False)
        if self.st.notified_at is None and self.st.status != "resolved":
            if not await self._first_notification(config, node):
                return await self._finish(record=False)
        await self._escalate(input, config, node)
        return await self._finish(record=True)

    async def _finish(self, record: bool) -> IncidentState:
        """Publish ``resolved``, record MTTA/MTTR when the incident was notified, and end."""
        self._set_status("resolved")
        if record:
            await workflow.execute_activity_method(
                IncidentActivities.record_metrics,
                IncidentMetrics(
                    severity=self.st.severity,
                    service=self.st.group_labels.get("service", ""),
                    mtta_seconds=self.st.mtta_seconds,
                    mttr_seconds=self.st.mttr_seconds,
                ),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=ACTIVITY_RETRY,
            )
        await self._deliveries_done()
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self._journal.busy())
        if self._concurrent and any(a.status == "firing" for b in self._pending for a in b.alerts):
            # Alerts that fired again after the resolution (while its notices went out): a new incident.
            fresh = IncidentInput(
                **self._input.model_dump(
                    include={"id", "route_path", "group_labels", "max_history", "journal_seq", "escalation"}
                )
            )
            workflow.continue_as_new(fresh.model_copy(update={"pending": self._pending}))
        return self.st

    async def _first_notification(self, config: Config, node: RouteNode) -> bool:
        """group_wait, then silences/inhibition, then time-based routing.

        Returns:
            True when the incident goes on to notify; False when it ended first
            (resolved, or carried by a digest) — the caller closes it.
        """
        if self._fresh:
            self._log("tocsin", "triggered", f"route {node.path} → {node.receiver}")
            if self._lean and self._published_status == "triggered":
                self.st.status = "triggered"  # the start published it; the memo goes out if the group waits
            else:
                self._set_status("triggered")
        # group_wait: collect the group; an alert resolved within it sends nothing.
        deadline = (self.st.created_at or workflow.now()) + node.group_wait
        while workflow.now() < deadline and self.st.status != "resolved":
            if self._lean:
                self._set_status(self.st.status)
            await wait_until(lambda: bool(self._pending) or self.st.status == "resolved", deadline - workflow.now())
            self._apply_pending()
            await self._continue_if_long()
        if self.st.status == "resolved":
            return self._closed("resolved within group_wait: nothing was sent")
        if not await (self._muting_stage() if patched(MUTING_STAGE_PATCH) else self._legacy_muting()):
            return False
        self.st.notified_at = workflow.now()
        self.st.escalation_restart = self.st.notified_at
        if self.st.status in ("triggered", "silenced", "inhibited"):
            if self._lean:
                self.st.status = "notified"  # published with the first rung's level, before the ladder waits
            else:
                self._set_status("notified")
        await self._maybe_rollback(config)
        return True

    def _closed(self, why: str) -> bool:
        self._events.clear()
        self._log("tocsin", "closed", why)
        return False

    async def _deliver_due_rungs(self, config: Config, node: RouteNode) -> Sequence[Rung]:
        """Deliver every rung that is due (all of them if the worker was down), exactly once each."""
        schedule = self._schedule(config, node)
        while self.st.status not in ("acknowledged", "resolved") and self.st.rungs_done < len(schedule):
            now = workflow.now()
            if self.st.snoozed_until and now < self.st.snoozed_until:
                break
            rung = schedule[self.st.rungs_done]
            if rung.due > now and not self._advance:
                break
            if self._advance and rung.due > now:
                # escalate now: pull the ladder forward so the rest keeps its spacing
                self.st.escalation_restart = (self.st.escalation_restart or now) - (rung.due - now)
                self._advance = False
            await self._notify_rung(config, rung)
            self.st.rungs_done += 1
            schedule = self._schedule(config, node)
        if (
            self._advance
            and self.st.status not in ("acknowledged", "resolved")
            and self.st.rungs_done >= len(schedule)
            and schedule
        ):
            # Ladder exhausted: escalating again re-notifies the last level.
            last = schedule[-1]
            await self._notify_rung(config, Rung(self.st.rungs_done, last.level, last.receiver, workflow.now()))
            self.st.rungs_done += 1
        self._advance = False
        return schedule

    def _next_wake(
        self,
        schedule: Sequence[Rung],
        policy: EscalationPolicy | None,
        dirty: bool,
        last_update: datetime,
        node: RouteNode,
    ) -> timedelta | None:
        """How long to sleep until the next thing that can happen (None: until a signal or update)."""
        wakes: list[datetime] = []
        now = workflow.now()
        if self.st.status != "acknowledged" and self.st.rungs_done < len(schedule):
            wakes.append(max(schedule[self.st.rungs_done].due, self.st.snoozed_until or now))
        if self.st.status == "acknowledged" and policy and policy.ack_timeout and self.st.acknowledged_at:
            wakes.append(self.st.acknowledged_at + parse_duration(policy.ack_timeout))
        if dirty:
            wakes.append(last_update + node.group_interval)
        return max(min(wakes) - now, timedelta(0)) if wakes else None

    def _check_ack_timeout(self, policy: EscalationPolicy | None) -> None:
        if (
            self.st.status == "acknowledged"
            and policy
            and policy.ack_timeout
            and self.st.acknowledged_at
            and workflow.now() >= self.st.acknowledged_at + parse_duration(policy.ack_timeout)
        ):
            self._log(
                "tocsin", "ack timed out", f"still open {policy.ack_timeout} after acknowledgement: re-escalating"
            )
            self.st.status = "notified"
            self.st.acknowledged_at = None
            self._advance = True

    async def _escalate(self, input: IncidentInput, config: Config, node: RouteNode) -> None:
        """Climb the ladder, announce actions and changes, until resolved (continuing-as-new when long)."""
        last_update = workflow.now()
        dirty = input.changed
        while True:
            update_due = dirty and workflow.now() - last_update >= node.group_interval
            config = await load_config() if self._events or (update_due if self._lean else dirty) else config
            schedule = await self._deliver_due_rungs(config, node)
            # Announce human actions and alert changes.
            while self._events:
                event, actor, note = self._events.pop(0)
                await self._announce(config, event, actor, note)
                if event == "resolved":
                    break
            if dirty and workflow.now() - last_update >= node.group_interval and self.st.status != "resolved":
                dirty = False
                last_update = workflow.now()
                await self._announce(config, "updated", "alertmanager", f"{self.st.counts.firing} firing")
                await self._maybe_rollback(config)
            if self.st.status == "resolved":
                return
            self._set_status(self.st.status)
            policy = self._policy(config)
            ack_seq = self._ack_seq
            await (self._alarm.wait if self._lean else wait_until)(
                lambda: (
                    bool(self._pending)
                    or bool(self._events)
                    or self._advance
                    or self.st.status == "resolved"
                    or self._ack_seq != ack_seq  # noqa: B023 - the wait ends before the loop goes on
                    or (self._concurrent and self._history_long() and not self._in_flight())
                ),
                self._next_wake(schedule, policy, dirty, last_update, node),
            )
            if self._apply_pending():
                dirty = True
            self._check_ack_timeout(policy)
            if not self._bounded and self._history_long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                carried = {"state": self.st, "pending": self._pending, "ledger": self._book.pack()}
                workflow.continue_as_new(input.model_copy(update=carried))
            await self._continue_if_long(changed=dirty)

    def _history_long(self, factor: int = 1) -> bool:
        info = workflow.info()
        return (
            (factor == 1 and info.is_continue_as_new_suggested())
            or info.get_current_history_length() > self._input.max_history * factor
            or (self._bounded and info.get_current_history_size() > MAX_HISTORY_BYTES * factor)
        )

    async def _continue_if_long(self, changed: bool = False) -> None:
        """Continue as new when the history is long (runs under ``BOUNDED_PATCH``); nothing queued is lost.

        Queued alerts are folded into the state first (the input carries no alert batches);
        actions not yet announced, an ``escalate_now`` and alert changes not yet announced are
        carried over. Returns (without continuing) when the incident has just resolved. Deliveries
        still running are never dropped: the run goes on (it is woken when they are done) unless
        the history has grown past ``HOLD_FACTOR`` x its limits; then it waits for them here.
        """
        if not self._bounded or not self._history_long():
            return
        if self._in_flight():
            if not self._history_long(HOLD_FACTOR):
                return
            await self._deliveries_done()
        await workflow.wait_condition(lambda: workflow.all_handlers_finished() and not self._journal.busy())
        folded = self._apply_pending()
        changed = changed or (folded and self.st.notified_at is not None)
        if self.st.status == "resolved":
            return
        carried = {
            "state": self.st,
            "pending": [],
            "ledger": self._book.pack(),
            "events": list(self._events),
            "advance": self._advance,
            "changed": changed,
        }
        workflow.continue_as_new(self._input.model_copy(update=carried))
