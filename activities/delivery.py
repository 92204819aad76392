"""The delivery activities: config snapshot, one send on one channel, dead letters.

Built once per worker (:class:`DeliveryActivities`), holding the long-lived
HTTP clients and the config store; Temporal calls its methods.

**Pacing.** A post on a channel whose worker polls a paced send queue for it (``send_queues``,
set by ``workers.main``) was paced by Temporal before it reached this worker, and is sent at
once. Otherwise the worker's token bucket paces it (``Channel.pace``, by ``SendRequest.priority``):
a send over budget ends its attempt with a *benign* ``Paced`` error whose ``next_retry_delay``
is the wait (no traceback in the log, no failure metric) and records in the activity's
heartbeat details how many attempts were deferred so; the channel is told the attempt number
counting only the attempts that may have reached its API, so the look-up that guards a retry
(Slack's history search, GitHub's and Jira's comment search, SMS's recent messages) runs only
after a real failure, never after a deferral.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.channels import REGISTRY, Channel, ChannelDeps, ChannelError, SendContext
from activities.metrics import DEAD_LETTERS, NOTIFICATIONS, NOTIFY_LATENCY, PACING_DELAY, start_channel_series
from activities.redact import redact_message, redactor_for
from operations.config import ConfigStore, resolve_env
from workflows.config import ChannelConfig, Config
from workflows.models import DeliveryRecord, Message, SendRequest
from workflows.notify.models import DeadLetterNotice

__all__ = ["DeliveryActivities"]


class DeliveryActivities:
    """Activities that read config and deliver notifications."""

    def __init__(self, store: ConfigStore, *, home: Path, http: httpx.AsyncClient | None = None):
        self._store = store
        self._deps = ChannelDeps(http=http or httpx.AsyncClient(timeout=httpx.Timeout(10.0)), home=home)
        self._channels: dict[tuple[str, str], Channel] = {}
        self.send_queues: dict[str, str] = {}
        """channel → the paced task queue this worker polls for its posts (advertised in the snapshot)."""
        start_channel_series(store.get().channels)

    async def aclose(self) -> None:
        """Close the long-lived clients."""
        for channel in self._channels.values():
            await channel.aclose()
        await self._deps.http.aclose()
        session = self._deps.extra.get("aiohttp")
        if session is not None:
            await session.close()

    @activity.defn(name="load_config")
    async def load_config(self) -> Config:
        """The current config, with channel settings stripped (safe for history), and the send queues polled."""
        snapshot = self._store.get().snapshot()
        for name, queue in self.send_queues.items():
            spec = snapshot.channels.get(name)
            if spec is not None:
                snapshot.channels[name] = ChannelConfig(type=spec.type, send_queue=queue)
        return snapshot

    def pace_groups(self, config: Config, max_rate: float) -> list[tuple[str, float, list[str]]]:
        """Channels paced below ``max_rate`` per second, grouped by what their API limits.

        Returns:
            (the group's first channel name, the lowest rate of the group, every channel of the
            group), one per pace key (``Channel.pace_key``: channels posting to one Slack channel
            share one budget). Channels that cannot be built here (a missing secret) are left out.
        """
        groups: dict[str, tuple[float, list[str]]] = {}
        for name in sorted(config.channels):
            try:
                channel = self._channel(name, config)
            except ApplicationError:
                continue
            rate = channel.pace_rate()
            if rate is None or rate >= max_rate:
                continue
            lowest, names = groups.get(channel.pace_key(), (rate, []))
            groups[channel.pace_key()] = (min(lowest, rate), [*names, name])
        return [(names[0], rate, names) for rate, names in groups.values()]

    def _channel(self, name: str, config: Config) -> Channel:
        spec = config.channels.get(name)
        if spec is None:
            raise ApplicationError(f"unknown channel '{name}'", type="UnknownChannel", non_retryable=True)
        try:
            settings: dict[str, Any] = resolve_env(spec.settings())
        except KeyError as exc:
            raise ApplicationError(
                f"channel '{name}': environment variable {exc.args[0]} is not set",
                type="MissingSecret",
                non_retryable=True,
            ) from None
        cache_key = (name, repr(sorted(settings.items())))
        channel = self._channels.get(cache_key)
        if channel is None:
            cls = REGISTRY.get(spec.type)
            if cls is None:
                raise ApplicationError(
                    f"channel '{name}': type '{spec.type}' is not available", type="UnknownChannel", non_retryable=True
                )
            try:
                channel = cls(name, settings, self._deps)
            except ChannelError as exc:
                raise ApplicationError(str(exc), type=exc.kind, non_retryable=True) from None
            self._channels[cache_key] = channel
        return channel

    @staticmethod
    def _redact(message: Message, config: Config) -> Message:
        """The whole message a channel renders from, redacted (fails closed on a bad pattern)."""
        try:
            return redact_message(message, redactor_for(config.redact_patterns))
        except ValueError as exc:  # never send unredacted: a bad redact_patterns entry stops the send
            raise ApplicationError(str(exc), type="BadRedactPattern", non_retryable=True) from None

    @activity.defn(name="send_notification")
    async def send(self, request: SendRequest) -> DeliveryRecord:
        """Send one message on one channel; raise so Temporal retries what can be retried."""
        config = self._store.get()
        channel = self._channel(request.channel, config)
        message = self._redact(request.message, config)
        info = activity.info()
        attempt = info.attempt
        deferred = _deferred(info.heartbeat_details)
        tried = max(1, attempt - deferred)  # this attempt's number among those that may have reached the API
        if request.tried_at is not None:
            tried += 1  # a local try came first (workflows.delivery, local pages)
        started = time.monotonic()
        ctx = SendContext(
            attempt=tried,
            action=request.action,
            update_of=request.update_of,
            thread_of=request.thread_of,
            dedup_key=request.dedup_key,
            tried_since=request.tried_at.timestamp() if request.tried_at is not None else None,
        )
        try:
            if not request.update_of and info.task_queue != self.send_queues.get(request.channel):
                channel.pace(request.priority)
            sent = await channel.send(message, request.idempotency_key, tried, ctx)
        except ChannelError as exc:
            paced = exc.kind == "Paced"
            NOTIFICATIONS.labels(request.channel, "paced" if paced else ("retry" if exc.retryable else "failed")).inc()
            if paced and not info.is_local:
                activity.heartbeat(deferred + 1)  # carried to the next attempt: it skips the duplicate look-up
            delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
            raise ApplicationError(
                str(exc),
                type=exc.kind,
                non_retryable=not exc.retryable,
                next_retry_delay=delay,
                category=ApplicationErrorCategory.BENIGN if paced else ApplicationErrorCategory.UNSPECIFIED,
            ) from None
        latency = time.monotonic() - started
        NOTIFICATIONS.labels(request.channel, "duplicate" if sent.duplicate else "delivered").inc()
        NOTIFY_LATENCY.labels(request.channel).observe(latency)
        PACING_DELAY.labels(request.channel).observe(
            _pacing_delay(info, deferred, info.task_queue == self.send_queues.get(request.channel))
        )
        return DeliveryRecord(
            channel=request.channel,
            receiver=request.receiver,
            channel_type=channel.type,
            outcome="delivered",
            attempts=attempt,
            latency_ms=round(latency * 1000, 2),
            message_id=sent.message_id,
            url=sent.url,
        )

    @activity.defn(name="dead_letter")
    async def dead_letter(self, notice: DeadLetterNotice) -> None:
        """Count dead letters (``tocsin_dead_letters_total``) and, if asked, tell the console.

        The count is taken on the first attempt only, so the activity's own retries never
        count a dead letter twice. The console is the built-in dead-letter receiver: it
        prints the notice and appends it to the outbox, once per key.
        """
        if notice.count and activity.info().attempt == 1:
            for letter in notice.letters:
                DEAD_LETTERS.labels(letter.receiver, letter.channel).inc()
        if notice.console:
            console = self._channels.get(("console", "dead-letter"))
            if console is None:
                console = self._channels[("console", "dead-letter")] = REGISTRY["console"]("console", {}, self._deps)
            message = self._redact(notice.message, self._store.get())
            try:
                await console.send(message, notice.key, activity.info().attempt)
            except (ChannelError, OSError) as exc:
                raise ApplicationError(f"dead-letter console: {exc}", type="ConsoleUnavailable") from None


def _deferred(details: Any) -> int:
    """Attempts of this send deferred by pacing so far (the heartbeat details a deferral leaves)."""
    try:
        value = details[0] if details else 0
        return max(0, int(value))
    except (TypeError, ValueError, IndexError):
        return 0


def _pacing_delay(info: activity.Info, deferred: int, paced_queue: bool) -> float:
    """Seconds pacing held this send back: since its first scheduling when this worker's bucket deferred it,
    since this attempt's scheduling when it waited on a queue Temporal paces; else 0."""
    if deferred:
        since = info.scheduled_time
    elif paced_queue:
        since = info.current_attempt_scheduled_time
    else:
        return 0.0
    return max(0.0, (info.started_time - since).total_seconds())
