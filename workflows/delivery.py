"""Delivery from inside a workflow: one receiver, its channels, failover, dead letters.

Used by every workflow that notifies. Each channel send is one activity with
an idempotency key ``<workflow id>/<step>/<channel>``; Temporal's retry policy
retries what the channel classified as retryable. When a receiver has
``backup`` channels and a primary has not delivered within
``failover_after``, the backups are sent the same message and, once one of
them delivers, still-pending primaries are cancelled.

Every send gives up once the receiver's ``give_up_after`` (default 1 h) has
passed since the delivery began (the activities' schedule-to-close timeout).
What no channel of the receiver delivered is *dead-lettered*: returned to the
caller's list (for its state and query), counted in
``tocsin_dead_letters_total{receiver,channel}`` and told to the config's
``dead_letter`` receiver (default: the console). Telling the dead-letter
receiver never dead-letters again: when it fails too, the console is told.
Workflows whose history predates dead letters (no ``dead-letters`` patch
marker) replay without those steps.

**Pacing and priority.** Each send carries a priority (``SendRequest.priority``): ``critical``
for a first notification of critical severity, ``page`` for any other first notification,
``update`` for thread replies, edits and announcements. Runs with the ``paced-send-queues``
patch schedule a post on a paced channel on that channel's own task queue when the worker
advertises one in the config snapshot (``send_queue``: ``<task queue>/send/<channel>``, whose
rate Temporal enforces across every worker polling it, see ``workers.main``), with the
priority as Temporal's task priority, so that pages leave the queue before updates; edits
stay on the workflow's queue (channels do not pace them). Older runs send on the workflow's
task queue, paced by the worker's bucket.

**Local pages.** A flow that assumes ``LOCAL_PAGE_PATCH`` (incidents started with
``incident-local-page``) first tries a page on a channel with no paced queue (an unpaced
channel: webhooks, PagerDuty, a Slack workspace with a high rate) as a local activity, once,
for at most ``LOCAL_SEND_TIMEOUT``: it is sent from the workflow task that decided it, not after
that task's completion went to the server and an activity task came back (under load that round
trip was the largest part of a first page's delay). The worker's bucket still paces it. If that
try fails or times out, the send goes on as above, a durable activity with retries, failover and
``give_up_after``; it then counts as a retry and looks for a duplicate from the time of the local
try (``SendRequest.tried_at``). One case is weaker than a durable send: a worker killed after the
channel accepted a local page and before its workflow task completed leaves no trace of the try,
so the replacement worker sends it again (a durable send's retry would find the duplicate).

**Ordering.** A caller that runs deliveries concurrently (the incident) passes a
:class:`Sequencer`: each channel's send then starts only when the sequencer says it is its
turn (after earlier sends on the same receiver and channel), reads ``refs`` at that moment, so
an edit or a thread reply follows the message it refers to, and a thread reply with nothing to
reply under is skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, RetryState
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

from workflows.config import Config, Receiver
from workflows.journal import journal_deliveries
from workflows.local import try_locally
from workflows.models import DeliveryRecord, Message, MessageField, SendPriority, SendRequest
from workflows.notify.models import DeadLetter, DeadLetterNotice
from workflows.patches import assumed, patched
from workflows.policy.durations import parse_duration

with workflow.unsafe.imports_passed_through():
    from activities.delivery import DeliveryActivities

__all__ = [
    "SEND_RETRY",
    "DEAD_LETTER_PATCH",
    "SEND_QUEUES_PATCH",
    "LOCAL_PAGE_PATCH",
    "PRIORITY_KEYS",
    "Sequencer",
    "load_config",
    "deliver",
    "send_queue",
    "dead_letter_message",
]

SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=60)
)
"""Unlimited attempts, bounded by the schedule-to-close timeout (the receiver's ``give_up_after``)."""
SEND_START_TO_CLOSE = timedelta(seconds=30)
MIN_SEND_WINDOW = timedelta(seconds=1)
DEAD_LETTER_PATCH = "dead-letters"
DEAD_LETTER_TIMEOUT = timedelta(minutes=10)
"""How long counting a dead letter and telling the console may retry before it is only logged."""
SEND_QUEUES_PATCH = "paced-send-queues"
LOCAL_PAGE_PATCH = "incident-local-page"
LOCAL_SEND_TIMEOUT = timedelta(seconds=2)
"""The local try of a page: longer, and the durable send takes over (the incident handles no other
event while a local try runs: an acknowledgement waits at most this long)."""
PRIORITY_KEYS: dict[str, int] = {"critical": 1, "page": 2, "update": 3}
"""Temporal task priority (lower goes first) of each send priority."""


class Sequencer(Protocol):
    """Decides when each channel send of a delivery may start (see the module docstring)."""

    def start(
        self, receiver: str, channel: str, send: Callable[[], Awaitable[DeliveryRecord]]
    ) -> asyncio.Task[DeliveryRecord]:
        """A task that runs ``send`` when it is this receiver and channel's turn, and returns its record."""
        ...


def send_queue(config: Config, channel: str) -> str | None:
    """The task queue a worker advertised for this channel's paced posts (None: the workflow's own)."""
    spec = config.channels.get(channel)
    queue = spec.settings().get("send_queue") if spec is not None else None
    return queue if isinstance(queue, str) and queue else None


async def load_config() -> Config:
    """The worker's config snapshot, recorded in history (a local activity)."""
    return await workflow.execute_local_activity_method(
        DeliveryActivities.load_config,
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
    )


def _error_text(exc: BaseException, give_up_after: str = "") -> str:
    """What went wrong, in one line; a send that ran out of time says it gave up, and on what."""
    if isinstance(exc, ActivityError) and exc.retry_state == RetryState.TIMEOUT:
        last = exc.cause.cause if isinstance(exc.cause, TemporalTimeoutError) else exc.cause
        why = _error_text(last) if last is not None else "timed out"
        return f"gave up after {give_up_after or 'its time limit'}: {why}"
    cause: BaseException | None = exc
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    if isinstance(cause, asyncio.CancelledError) or type(cause).__name__ == "CancelledError":
        return "cancelled: a backup channel delivered"
    return str(cause)


async def deliver(
    config: Config,
    receiver_name: str,
    message: Message,
    step: str,
    *,
    action: str = "notify",
    dedup_key: str | None = None,
    refs: dict[str, str] | None = None,
    thread: bool = False,
    only_types: Collection[str] | None = None,
    dead_letters: list[DeadLetter] | None = None,
    dead_letter: bool = True,
    priority: SendPriority | None = None,
    sequencer: Sequencer | None = None,
) -> list[DeliveryRecord]:
    """Deliver ``message`` to every channel of a receiver (with failover), dead-lettering what fails.

    Args:
        config: the snapshot to resolve the receiver in.
        receiver_name: receiver to notify.
        message: what to send.
        step: a name unique within the workflow for this notification.
        action: lifecycle for incident-style channels (trigger/acknowledge/resolve).
        dedup_key: stable key across an incident's life.
        refs: ``channel → message_id`` of earlier sends; with ``thread`` False those channels
            edit that message in place, with ``thread`` True they reply under it.
        only_types: send only on channels of these types (Slack thread replies); no backups then.
        dead_letters: where to append the dead letters of this delivery (the caller's state).
        dead_letter: False for the dead-letter notice itself (its failure is logged, never re-told).
        priority: of every send; default ``update`` for thread replies and edits, else ``critical``
            for a critical message and ``page`` for the others.
        sequencer: orders the sends among the caller's concurrent deliveries (``refs`` is then read
            when each send starts).

    Returns:
        One record per channel tried (none for a "blackhole" receiver, as in Alertmanager);
        dead-lettered channels are ``failed`` records.
    """
    receiver = config.receiver(receiver_name)
    if receiver is None:
        workflow.logger.warning("unknown receiver %r: notification not sent", receiver_name)
        error = f"unknown receiver '{receiver_name}'"
        records = [DeliveryRecord(channel="", receiver=receiver_name, outcome="failed", error=error)]
    else:
        how = _How(action, dedup_key, refs or {}, thread, only_types, priority, sequencer)
        records = await _send(config, receiver, message, step, how)
    failed = any(r.outcome == "failed" for r in records)
    dead = dead_letter and failed and not any(r.backup and r.outcome == "delivered" for r in records)
    journal_deliveries(records, step, dead_lettered=dead)
    if dead_letter:
        await _dead_letter(config, message, step, records, dead_letters)
    return records


class _How:
    """How one delivery sends (``deliver``'s keyword arguments)."""

    def __init__(
        self,
        action: str,
        dedup_key: str | None,
        refs: Mapping[str, str],
        thread: bool,
        only_types: Collection[str] | None,
        priority: SendPriority | None,
        sequencer: Sequencer | None,
    ) -> None:
        self.action, self.dedup_key, self.refs, self.thread = action, dedup_key, refs, thread
        self.only_types, self.priority, self.sequencer = only_types, priority, sequencer

    def request(self, receiver: str, message: Message, key: str, channel: str) -> SendRequest:
        """The activity input, with ``refs`` as they are now."""
        ref = self.refs.get(channel)
        priority = self.priority or (
            "update" if self.thread or ref else ("critical" if message.severity == "critical" else "page")
        )
        return SendRequest(
            channel=channel,
            receiver=receiver,
            message=message,
            idempotency_key=key,
            action=self.action,
            dedup_key=self.dedup_key,
            update_of=None if self.thread else ref,
            thread_of=ref if self.thread else None,
            priority=priority,
        )


def _start_send(config: Config, receiver: Receiver, request: SendRequest, deadline: datetime) -> Any:
    """Schedule one send activity (on the channel's paced queue, with a priority, in runs with the patch).

    A page on an unpaced channel, in a flow that assumes ``LOCAL_PAGE_PATCH``, is tried locally first.
    """
    options: dict[str, Any] = {}
    if patched(SEND_QUEUES_PATCH):
        queue = send_queue(config, request.channel)
        if queue is not None and request.update_of is None:
            options["task_queue"] = queue
        options["priority"] = Priority(priority_key=PRIORITY_KEYS[request.priority])
    page = request.priority != "update" and request.update_of is None and request.thread_of is None
    if page and "task_queue" not in options and assumed(LOCAL_PAGE_PATCH):
        return asyncio.create_task(_local_page(receiver, request, deadline, options))
    return _durable_send(receiver, request, deadline, options)


async def _local_page(
    receiver: Receiver, request: SendRequest, deadline: datetime, options: dict[str, Any]
) -> DeliveryRecord:
    """One local try of a page; what it did not deliver goes on as a durable send (module docstring)."""
    tried_at = workflow.now()
    outcome = await try_locally(DeliveryActivities.send, request, LOCAL_SEND_TIMEOUT)
    if not isinstance(outcome, FailureError):
        record: DeliveryRecord = outcome
        return record
    cause = outcome.cause if isinstance(outcome, ActivityError) else outcome
    if not (isinstance(cause, ApplicationError) and cause.type == "Paced"):  # a deferral reached no channel
        request = request.model_copy(update={"tried_at": tried_at})
    durable: DeliveryRecord = await _durable_send(receiver, request, deadline, options)
    return durable


def _durable_send(receiver: Receiver, request: SendRequest, deadline: datetime, options: dict[str, Any]) -> Any:
    return workflow.start_activity_method(
        DeliveryActivities.send,
        request,
        start_to_close_timeout=SEND_START_TO_CLOSE,
        schedule_to_close_timeout=max(deadline - workflow.now(), MIN_SEND_WINDOW),
        retry_policy=SEND_RETRY,
        summary=f"{receiver.name} → {request.channel}",
        **options,
    )


async def _send(config: Config, receiver: Receiver, message: Message, step: str, how: _How) -> list[DeliveryRecord]:
    """The sends of one receiver: primaries, backups after ``failover_after``, all until ``give_up_after``."""
    wid = workflow.info().workflow_id
    deadline = workflow.now() + parse_duration(receiver.give_up_after)

    def start(channel: str) -> Any:
        key = f"{wid}/{step}/{channel}"
        if how.sequencer is None:
            return _start_send(config, receiver, how.request(receiver.name, message, key, channel), deadline)

        async def send() -> DeliveryRecord:
            request = how.request(receiver.name, message, key, channel)
            if how.thread and request.thread_of is None:
                error = "nothing to reply under: the message was not delivered on this channel"
                return DeliveryRecord(channel=channel, receiver=receiver.name, outcome="skipped", error=error)
            record: DeliveryRecord = await _start_send(config, receiver, request, deadline)
            return record

        return how.sequencer.start(receiver.name, channel, send)

    only_types = how.only_types
    channels = receiver.channels
    if only_types is not None:
        channels = [ch for ch in channels if ch in config.channels and config.channels[ch].type in only_types]
    primaries = {ch: start(ch) for ch in channels}
    backups: dict[str, Any] = {}
    if primaries and receiver.backup and only_types is None:
        await workflow.wait(list(primaries.values()), timeout=parse_duration(receiver.failover_after).total_seconds())
        lagging = [ch for ch, task in primaries.items() if not task.done() or task.exception() is not None]
        if lagging:
            workflow.logger.warning(
                "receiver %s: %s not delivered in %s, failing over to %s",
                receiver.name,
                ", ".join(lagging),
                receiver.failover_after,
                ", ".join(receiver.backup),
            )
            backups = {ch: start(ch) for ch in receiver.backup}
            await workflow.wait(list(backups.values()))
            if any(t.exception() is None for t in backups.values()):
                for ch in lagging:
                    if not primaries[ch].done():
                        primaries[ch].cancel()
    return await _records(receiver, primaries, backups)


async def _records(receiver: Receiver, primaries: dict[str, Any], backups: dict[str, Any]) -> list[DeliveryRecord]:
    """One record per channel tried, primaries first (a failure becomes a ``failed`` record)."""
    records: list[DeliveryRecord] = []
    for is_backup, tasks in ((False, primaries), (True, backups)):
        results = await asyncio.gather(*tasks.values(), return_exceptions=True)
        for ch, result in zip(tasks, results, strict=False):
            if isinstance(result, BaseException):
                records.append(
                    DeliveryRecord(
                        channel=ch,
                        receiver=receiver.name,
                        outcome="failed",
                        error=_error_text(result, receiver.give_up_after),
                        backup=is_backup,
                    )
                )
            else:
                result.backup = is_backup
                records.append(result)
    return records


def dead_letter_message(letters: list[DeadLetter], original: Message) -> Message:
    """What the dead-letter receiver is told: which message, where it could not go, and why."""
    lines = [f"• {d.receiver} → {d.channel or '(no such receiver)'}: {d.error}" for d in letters]
    return Message(
        title=f"Not delivered: {original.title}"[:300],
        text="Tocsin gave up on this notification:\n" + "\n".join(lines),
        severity="warning",
        fields=[
            MessageField(title="Source", value=letters[0].workflow_id),
            MessageField(title="Step", value=letters[0].step),
        ],
        links=original.links,
        labels={"alertname": "TocsinDeadLetter", "receiver": letters[0].receiver},
        source=letters[0].workflow_id,
    )


async def _dead_letter(
    config: Config, message: Message, step: str, records: list[DeliveryRecord], sink: list[DeadLetter] | None
) -> None:
    """Record, count and tell what no channel of the receiver delivered (nothing when a backup delivered)."""
    failed = [r for r in records if r.outcome == "failed"]
    if not failed or any(r.backup and r.outcome == "delivered" for r in records):
        return
    if not patched(DEAD_LETTER_PATCH):
        return
    wid, now = workflow.info().workflow_id, workflow.now()
    letters = [
        DeadLetter(
            workflow_id=wid,
            step=step,
            title=message.title,
            receiver=r.receiver,
            channel=r.channel,
            error=r.error or "not delivered",
            at=now,
        )
        for r in failed
    ]
    if sink is not None:
        sink.extend(letters)
    workflow.logger.warning(
        "dead letter: %s not delivered to %s", message.title, ", ".join(f"{d.receiver}/{d.channel}" for d in letters)
    )
    notice = dead_letter_message(letters, message)
    target = config.dead_letter if config.dead_letter and config.receiver(config.dead_letter) else None
    request = DeadLetterNotice(letters=letters, message=notice, key=f"{wid}/{step}/dead-letter", console=target is None)
    await _tell(request)
    if target is not None:
        told = await deliver(config, target, notice, f"{step}/dead-letter", dead_letter=False)
        if not any(r.outcome == "delivered" for r in told):
            workflow.logger.warning("dead-letter receiver %s unreachable: telling the console", target)
            await _tell(request.model_copy(update={"count": False, "console": True}))


async def _tell(request: DeadLetterNotice) -> None:
    """Run the ``dead_letter`` activity (count, console); its own failure is only logged."""
    try:
        await workflow.execute_activity_method(
            DeliveryActivities.dead_letter,
            request,
            start_to_close_timeout=SEND_START_TO_CLOSE,
            schedule_to_close_timeout=DEAD_LETTER_TIMEOUT,
            retry_policy=SEND_RETRY,
            summary="dead letter",
        )
    except ActivityError as exc:
        workflow.logger.error("dead letter %s could not be counted or told: %s", request.key, _error_text(exc))
