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
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

from workflows.config import Config, Receiver
from workflows.models import DeliveryRecord, Message, MessageField, SendRequest
from workflows.notify.models import DeadLetter, DeadLetterNotice
from workflows.policy.durations import parse_duration

with workflow.unsafe.imports_passed_through():
    from activities.delivery import DeliveryActivities

__all__ = ["SEND_RETRY", "DEAD_LETTER_PATCH", "load_config", "deliver", "dead_letter_message"]

SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=60)
)
"""Unlimited attempts, bounded by the schedule-to-close timeout (the receiver's ``give_up_after``)."""
SEND_START_TO_CLOSE = timedelta(seconds=30)
MIN_SEND_WINDOW = timedelta(seconds=1)
DEAD_LETTER_PATCH = "dead-letters"
DEAD_LETTER_TIMEOUT = timedelta(minutes=10)
"""How long counting a dead letter and telling the console may retry before it is only logged."""


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
        records = await _send(config, receiver, message, step, action, dedup_key, refs, thread, only_types)
    if dead_letter:
        await _dead_letter(config, message, step, records, dead_letters)
    return records


async def _send(
    config: Config,
    receiver: Receiver,
    message: Message,
    step: str,
    action: str,
    dedup_key: str | None,
    refs: dict[str, str] | None,
    thread: bool,
    only_types: Collection[str] | None,
) -> list[DeliveryRecord]:
    """The sends of one receiver: primaries, backups after ``failover_after``, all until ``give_up_after``."""
    wid = workflow.info().workflow_id
    deadline = workflow.now() + parse_duration(receiver.give_up_after)

    def start(channel: str) -> Any:
        ref = (refs or {}).get(channel)
        return workflow.start_activity_method(
            DeliveryActivities.send,
            SendRequest(
                channel=channel,
                receiver=receiver.name,
                message=message,
                idempotency_key=f"{wid}/{step}/{channel}",
                action=action,
                dedup_key=dedup_key,
                update_of=None if thread else ref,
                thread_of=ref if thread else None,
            ),
            start_to_close_timeout=SEND_START_TO_CLOSE,
            schedule_to_close_timeout=max(deadline - workflow.now(), MIN_SEND_WINDOW),
            retry_policy=SEND_RETRY,
            summary=f"{receiver.name} → {channel}",
        )

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
    if not workflow.patched(DEAD_LETTER_PATCH):
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
