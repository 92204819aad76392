"""The ``slack`` channel: ``chat.postMessage`` through slack-sdk's async client.

Settings: ``token``, ``channel``, ``api_url`` (default ``https://slack.com/api/``).
Each post carries the idempotency key in Slack message ``metadata``; on a
retry the channel first looks in the conversation's recent history for a
message with that key, so a retried send never posts twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from activities.channels.base import Channel, ChannelError, Sent, parse_retry_after
from activities.channels.render import slack_blocks, slack_fallback_text
from workflows.models import Message

__all__ = ["SlackChannel", "PERMANENT_ERRORS"]

PERMANENT_ERRORS = frozenset({
    "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "no_permission",
    "missing_scope", "channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "no_text",
    "invalid_blocks", "invalid_blocks_format", "invalid_arguments", "invalid_arg_name", "restricted_action",
    "ekm_access_denied", "team_access_not_granted", "invalid_metadata_format", "invalid_metadata_schema",
})
EVENT_TYPE = "tocsin_notification"


class SlackChannel(Channel):
    """Posts Block Kit messages to one Slack channel."""

    type = "slack"
    required = ("token", "channel")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        base = self.settings.get("api_url") or "https://slack.com/api/"
        if not base.endswith("/"):
            base += "/"
        self._client = AsyncWebClient(
            token=self.settings["token"],
            base_url=base,
            timeout=int(self.settings.get("timeout", 10)),
            session=self._session(),
            retry_handlers=[],  # Temporal owns retries
        )
        self._channel_id: str | None = None

    def _session(self) -> aiohttp.ClientSession:
        session: aiohttp.ClientSession | None = self.deps.extra.get("aiohttp")
        if session is None or session.closed:
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
            self.deps.extra["aiohttp"] = session
        return session

    def _classify(self, exc: SlackApiError, call: str) -> ChannelError:
        status = getattr(exc.response, "status_code", 200)
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        error = str(data.get("error") or "")
        if status == 429 or error == "ratelimited":
            headers = getattr(exc.response, "headers", {}) or {}
            retry_after = parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))
            return ChannelError(f"slack {call}: rate limited", retryable=True, retry_after=retry_after,
                                kind="RateLimited")
        if status >= 500:
            return ChannelError(f"slack {call}: server error {status}", retryable=True)
        if error in PERMANENT_ERRORS or (400 <= status < 500):
            return ChannelError(f"slack {call} to {self.settings['channel']}: {error or status}", retryable=False,
                                kind="SlackPermanent")
        return ChannelError(f"slack {call}: {error or status}", retryable=True)

    async def _find_existing(self, key: str) -> Sent | None:
        channel = self._channel_id or self.settings["channel"]
        if channel.startswith("#"):
            return None  # history needs a channel id; unknown until the first post answers
        try:
            resp = await self._client.conversations_history(channel=channel, limit=50, include_all_metadata=True)
        except (SlackApiError, aiohttp.ClientError, asyncio.TimeoutError):
            return None
        for msg in resp.get("messages", []) or []:
            meta = msg.get("metadata") or {}
            if meta.get("event_type") == EVENT_TYPE and (meta.get("event_payload") or {}).get("key") == key:
                return Sent(message_id=msg.get("ts"), duplicate=True)
        return None

    async def send(self, message: Message, idempotency_key: str, attempt: int) -> Sent:
        if attempt > 1:
            existing = await self._find_existing(idempotency_key)
            if existing is not None:
                return existing
        try:
            resp = await self._client.chat_postMessage(
                channel=self.settings["channel"],
                text=slack_fallback_text(message),
                blocks=slack_blocks(message),
                metadata={"event_type": EVENT_TYPE, "event_payload": {"key": idempotency_key}},
                unfurl_links=False,
            )
        except SlackApiError as exc:
            raise self._classify(exc, "chat.postMessage") from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ChannelError(f"slack chat.postMessage: {type(exc).__name__}: {exc}", retryable=True) from None
        self._channel_id = resp.get("channel") or self._channel_id
        return Sent(message_id=resp.get("ts"), url=None)
