"""A flow's side of the audit journal: records made as events happen, appended in the background.

Each flow keeps one :class:`Journal` and calls :meth:`Journal.record` where an audited event
happens (``workflows.audit.ACTIONS``). Records are sent in batches by the ``journal_append``
activity (:data:`workflows.audit.ACTIVITY_APPEND`): one send at a time, the records made while
it is in flight go in the next batch, so the history grows by one activity per batch. Sends run
beside the flow and never hold up a page, an approval or a rollback; each retries for
:data:`SEND_TIMEOUT`, so a journal outage delays records and loses none. A batch that finally
gives up is logged, never fails the flow. The flow waits for :meth:`Journal.flushed` before it
completes or continues as new.

Keys are ``<workflow id>/<first run id>/<seq>``: ``seq`` counts the chain's records and is carried
across continue-as-new (``journal_seq`` on what the flow carries), and the first run id tells apart
two chains that reuse a workflow id (an incident id after the previous incident ended), so a key
is unique and the same on every replay: a retried send appends nothing twice.

Runs started before the journal (no ``audit-journal`` patch marker) record nothing; each flow
decides once per run, at the start of ``run`` or at its first record, whichever comes first.

**Holding the first batch.** A flow may :meth:`Journal.hold_while` a condition (an incident: its
first page is in flight). The first batch then waits until the condition is false, so the page's
workflow task schedules the page alone (no journal send competing with it for the worker and the
server) and the records of the page's start and of its deliveries go in one send instead of two.
A record with a person's identity ends the hold (people's actions are journaled at once), and so
do :meth:`Journal.flushed` and :meth:`Journal.release`; what the condition waits for must be
bounded (an incident's page gives up after ``give_up_after``).

**Local appends.** A flow that assumes ``LOCAL_JOURNAL_PATCH`` (incidents started with
``incident-local-journal``) tries each batch once as a local activity, for at most
``LOCAL_APPEND_TIMEOUT``, from the workflow task that made it: a marker in the history instead of
an activity's schedule, start and completion on the server, and no workflow task to hear of it.
What that try does not append (an error, a timeout) goes on as the durable send above; the journal
skips keys it holds, so a try that appended before it failed, or a worker lost before the task
completed, appends nothing twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, Protocol

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError

from workflows.audit import ACTIVITY_APPEND, JournalBatch, JournalEntry
from workflows.identity import Actor
from workflows.local import try_locally
from workflows.models import DeliveryRecord
from workflows.patches import assumed, patched

__all__ = [
    "JOURNAL_PATCH",
    "LOCAL_JOURNAL_PATCH",
    "LOCAL_APPEND_TIMEOUT",
    "SEND_TIMEOUT",
    "ATTEMPT_TIMEOUT",
    "SEND_RETRY",
    "MAX_BATCH",
    "Journal",
    "journal_of",
    "journal_deliveries",
]

JOURNAL_PATCH = "audit-journal"
SEND_TIMEOUT = timedelta(hours=24)
"""How long one batch keeps trying (a journal outage shorter than this loses nothing)."""
ATTEMPT_TIMEOUT = timedelta(minutes=1)
"""One attempt: an attempt lost with its worker (a crash) is retried after this, not after a day."""
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["NotFoundError"],
)
"""``NotFoundError``: no worker on the task queue registers ``journal_append`` (a worker built without
the journal): retrying would only keep the flow from completing; the batch is logged as not appended."""
LOCAL_JOURNAL_PATCH = "incident-local-journal"
LOCAL_APPEND_TIMEOUT = timedelta(seconds=2)
"""One local try of a batch (flows that assume ``LOCAL_JOURNAL_PATCH``); what it does not append goes on durably."""
MAX_BATCH = 100
MAX_TEXT = 500
"""Longest string kept in ``detail`` (reasons, errors); longer ones are cut."""


class SeqCarrier(Protocol):
    """What a flow carries across continue-as-new: the journal's counter."""

    journal_seq: int


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + "…"
    return value


class Journal:
    """One run's journal: numbers records, sends them in batches in the background."""

    def __init__(
        self,
        carrier: SeqCarrier | None = None,
        spawn: Callable[[Coroutine[Any, Any, None]], object] | None = None,
    ) -> None:
        """Args:
        carrier: keeps ``journal_seq`` (carried across continue-as-new); None for flows that never continue.
        spawn: starts the sender (a flow that tracks its background tasks passes its own).
        """
        self._carrier = carrier
        self._seq = 0
        self._spawn = spawn
        self._enabled: bool | None = None
        self._pending: list[JournalEntry] = []
        self._sending = False
        self._held: Callable[[], bool] | None = None
        self.lost = 0
        """Records whose batch gave up (logged)."""

    @property
    def seq(self) -> int:
        return self._carrier.journal_seq if self._carrier is not None else self._seq

    def _next_seq(self) -> int:
        if self._carrier is not None:
            self._carrier.journal_seq += 1
        else:
            self._seq += 1
        return self.seq

    def start(self) -> bool:
        """Whether this run journals (``audit-journal``); asked once per run."""
        if self._enabled is None:
            self._enabled = patched(JOURNAL_PATCH)
        return self._enabled

    def record(
        self,
        action: str,
        *,
        object: str = "",
        actor: Actor | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Journal one event now (``time`` is the workflow's clock); sent in the background."""
        if not self.start():
            return
        info = workflow.info()
        entry = JournalEntry(
            key=f"{info.workflow_id}/{info.first_execution_run_id}/{self._next_seq()}",
            time=workflow.now(),
            actor=actor,
            action=action,
            object=object or info.workflow_id,
            detail={k: _short(v) for k, v in (detail or {}).items() if v is not None},
        )
        self._pending.append(entry)
        if actor is not None:
            self.release()  # a person's action is journaled now
        if not self._sending:
            self._sending = True
            if self._spawn is not None:
                self._spawn(self._send())
            else:
                asyncio.create_task(self._send())

    def hold_while(self, held: Callable[[], bool]) -> None:
        """Keep the first batch back while ``held()`` is true (see the module's docstring)."""
        self._held = held

    def release(self) -> None:
        """End a hold: what is pending is sent now."""
        self._held = None

    def _holding(self) -> bool:
        if self._held is not None and not self._held():
            self._held = None
        return self._held is not None

    def busy(self) -> bool:
        """Records not yet appended (or given up on)."""
        return self._sending or bool(self._pending)

    async def flushed(self) -> None:
        """Wait until every record made so far was appended or given up on (each send is bounded)."""
        self.release()
        if self.busy():
            await workflow.wait_condition(lambda: not self.busy())

    async def _send(self) -> None:
        try:
            if self._holding():
                await workflow.wait_condition(lambda: not self._holding())
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                try:
                    if not (assumed(LOCAL_JOURNAL_PATCH) and await _appended_locally(batch)):
                        await workflow.execute_activity(
                            ACTIVITY_APPEND,
                            JournalBatch(entries=batch),
                            schedule_to_close_timeout=SEND_TIMEOUT,
                            start_to_close_timeout=ATTEMPT_TIMEOUT,
                            retry_policy=SEND_RETRY,
                        )
                except ActivityError as exc:
                    self.lost += len(batch)
                    workflow.logger.error(
                        "audit journal: %d record(s) not appended (%s … %s): %s",
                        len(batch),
                        batch[0].key,
                        batch[-1].key,
                        exc.cause or exc,
                    )
        finally:
            self._sending = False


async def _appended_locally(batch: list[JournalEntry]) -> bool:
    """One local try of ``batch`` (at most ``LOCAL_APPEND_TIMEOUT``): whether it was appended."""
    outcome = await try_locally(ACTIVITY_APPEND, JournalBatch(entries=batch), LOCAL_APPEND_TIMEOUT)
    if isinstance(outcome, FailureError):
        workflow.logger.warning(
            "audit journal: local append of %d record(s) failed, sent durably: %s", len(batch), outcome
        )
        return False
    return True


def journal_of() -> Journal | None:
    """The running flow's journal (its ``_journal``), for helpers shared by flows."""
    journal = getattr(workflow.instance(), "_journal", None)
    return journal if isinstance(journal, Journal) else None


def journal_deliveries(records: list[DeliveryRecord], step: str, dead_lettered: bool) -> None:
    """Journal what each channel did with one notification: receiver, channel, outcome, error (never the text)."""
    journal = journal_of()
    if journal is None:
        return
    for r in records:
        if r.outcome == "skipped":
            continue
        failed = r.outcome == "failed"
        journal.record(
            "notification.dead_lettered" if failed and dead_lettered else "notification.delivered",
            detail={
                "receiver": r.receiver,
                "channel": r.channel,
                "channel_type": r.channel_type or None,
                "outcome": r.outcome,
                "step": step,
                "attempts": r.attempts,
                "backup": r.backup or None,
                "error": r.error,
            },
        )
