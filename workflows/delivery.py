"""Delivery from inside a workflow: one receiver, its channels, failover.

Used by every workflow that notifies. Each channel send is one activity with
an idempotency key ``<workflow id>/<step>/<channel>``; Temporal's retry policy
retries what the channel classified as retryable. When a receiver has
``backup`` channels and a primary has not delivered within
``failover_after``, the backups are sent the same message and, once one of
them delivers, still-pending primaries are cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.config import Config
from workflows.models import DeliveryRecord, Message, SendRequest
from workflows.policy.durations import parse_duration

with workflow.unsafe.imports_passed_through():
    from activities.delivery import DeliveryActivities

__all__ = ["SEND_RETRY", "load_config", "deliver"]

SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=60)
)
"""Unlimited attempts (bounded by the schedule-to-close timeout): an outage never drops a notification."""
SEND_START_TO_CLOSE = timedelta(seconds=30)
SEND_SCHEDULE_TO_CLOSE = timedelta(hours=24)


async def load_config() -> Config:
    """The worker's config snapshot, recorded in history (a local activity)."""
    return await workflow.execute_local_activity_method(
        DeliveryActivities.load_config,
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
    )


def _error_text(exc: BaseException) -> str:
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
) -> list[DeliveryRecord]:
    """Deliver ``message`` to every channel of a receiver (with failover).

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

    Returns:
        One record per channel tried (none for a "blackhole" receiver, as in Alertmanager).
    """
    receiver = config.receiver(receiver_name)
    if receiver is None:
        workflow.logger.warning("unknown receiver %r: notification not sent", receiver_name)
        error = f"unknown receiver '{receiver_name}'"
        return [DeliveryRecord(channel="", receiver=receiver_name, outcome="failed", error=error)]
    wid = workflow.info().workflow_id

    def start(channel: str) -> Any:
        ref = (refs or {}).get(channel)
        return workflow.start_activity_method(
            DeliveryActivities.send,
            SendRequest(
                channel=channel,
                receiver=receiver_name,
                message=message,
                idempotency_key=f"{wid}/{step}/{channel}",
                action=action,
                dedup_key=dedup_key,
                update_of=None if thread else ref,
                thread_of=ref if thread else None,
            ),
            start_to_close_timeout=SEND_START_TO_CLOSE,
            schedule_to_close_timeout=SEND_SCHEDULE_TO_CLOSE,
            retry_policy=SEND_RETRY,
            summary=f"{receiver_name} → {channel}",
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
                receiver_name,
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
    return await _records(receiver_name, primaries, backups)


async def _records(receiver_name: str, primaries: dict[str, Any], backups: dict[str, Any]) -> list[DeliveryRecord]:
    """One record per channel tried, primaries first (a failure becomes a ``failed`` record)."""
    records: list[DeliveryRecord] = []
    for is_backup, tasks in ((False, primaries), (True, backups)):
        results = await asyncio.gather(*tasks.values(), return_exceptions=True)
        for ch, result in zip(tasks, results, strict=False):
            if isinstance(result, BaseException):
                records.append(
                    DeliveryRecord(
                        channel=ch,
                        receiver=receiver_name,
                        outcome="failed",
                        error=_error_text(result),
                        backup=is_backup,
                    )
                )
            else:
                result.backup = is_backup
                records.append(result)
    return records
