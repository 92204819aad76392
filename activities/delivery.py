"""The delivery activities: config snapshot, one send on one channel, dead letters.

Built once per worker (:class:`DeliveryActivities`), holding the long-lived
HTTP clients and the config store; Temporal calls its methods.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels import REGISTRY, Channel, ChannelDeps, ChannelError, SendContext
from activities.metrics import DEAD_LETTERS, NOTIFICATIONS, NOTIFY_LATENCY
from activities.redact import redact_message, redactor_for
from operations.config import ConfigStore, resolve_env
from workflows.config import Config
from workflows.models import DeliveryRecord, Message, SendRequest
from workflows.notify.models import DeadLetterNotice

__all__ = ["DeliveryActivities"]


class DeliveryActivities:
    """Activities that read config and deliver notifications."""

    def __init__(self, store: ConfigStore, *, home: Path, http: httpx.AsyncClient | None = None):
        self._store = store
        self._deps = ChannelDeps(http=http or httpx.AsyncClient(timeout=httpx.Timeout(10.0)), home=home)
        self._channels: dict[tuple[str, str], Channel] = {}

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
        """The current config, with channel settings stripped (safe for history)."""
        return self._store.get().snapshot()

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
        attempt = activity.info().attempt
        started = time.monotonic()
        ctx = SendContext(
            attempt=attempt,
            action=request.action,
            update_of=request.update_of,
            thread_of=request.thread_of,
            dedup_key=request.dedup_key,
        )
        try:
            if not request.update_of:
                channel.pace()
            sent = await channel.send(message, request.idempotency_key, attempt, ctx)
        except ChannelError as exc:
            outcome = "paced" if exc.kind == "Paced" else ("retry" if exc.retryable else "failed")
            NOTIFICATIONS.labels(request.channel, outcome).inc()
            delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
            raise ApplicationError(
                str(exc), type=exc.kind, non_retryable=not exc.retryable, next_retry_delay=delay
            ) from None
        latency = time.monotonic() - started
        NOTIFICATIONS.labels(request.channel, "duplicate" if sent.duplicate else "delivered").inc()
        NOTIFY_LATENCY.labels(request.channel).observe(latency)
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
