"""The ``slack`` channel: ``chat.postMessage`` through slack-sdk's async client.

Settings: ``token``, ``channel``, ``api_url`` (default ``https://slack.com/api/``).
Each post carries the idempotency key in Slack message ``metadata``; on a
retry the channel first looks for a message with that key in the conversation's
history since the first attempt was scheduled (``oldest``, every page), so a
retried send never posts twice however many messages came in between.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from temporalio import activity

from activities.channels.base import Channel, ChannelError, SendContext, Sent, parse_retry_after
from activities.channels.render import slack_blocks, slack_fallback_text
from workflows.models import Message

__all__ = ["SlackChannel", "PERMANENT_ERRORS"]

PERMANENT_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "invalid_arg_name",
        "restricted_action",
        "ekm_access_denied",
        "team_access_not_granted",
        "invalid_metadata_format",
        "invalid_metadata_schema",
    }
)
EVENT_TYPE = "tocsin_notification"
LOOKBACK_SKEW = 60.0
"""Seconds looked back before the first attempt: Slack's clock and Temporal's may differ a little."""
HISTORY_PAGE = 200
HISTORY_PAGES = 25
"""At most this many pages (5,000 messages) are searched; beyond that the retry posts (at-least-once)."""
LOOKUP_BUDGET = 20.0
"""Seconds the whole look-up may take (the send's start-to-close is 30 s); then the retry posts."""


def _first_attempt_at() -> float | None:
    """When Temporal scheduled this send's first attempt (epoch seconds); ``None`` outside an activity."""
    if not activity.in_activity():
        return None
    return activity.info().scheduled_time.timestamp()


class SlackChannel(Channel):
    """Posts Block Kit messages to one Slack channel (edits and thread replies on request)."""

    type = "slack"
    required = ("token", "channel")
    rate_per_second = 1.0  # Slack: about one message per second per channel, short bursts allowed
    burst = 5

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._timeout = float(self.settings.get("timeout", 10))
        base = self.settings.get("api_url") or "https://slack.com/api/"
        if not base.endswith("/"):
            base += "/"
        self._client = AsyncWebClient(
            token=self.settings["token"],
            base_url=base,
            timeout=int(self._timeout),
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
        # slack-sdk hands back a raw aiohttp response when the body is not JSON.
        status = getattr(exc.response, "status_code", None) or getattr(exc.response, "status", None) or 200
        data = getattr(exc.response, "data", None)
        data = data if isinstance(data, dict) else {}
        error = str(data.get("error") or "")
        if status == 429 or error == "ratelimited":
            headers = getattr(exc.response, "headers", {}) or {}
            retry_after = parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))
            return ChannelError(
                f"slack {call}: rate limited", retryable=True, retry_after=retry_after, kind="RateLimited"
            )
        if status >= 500:
            return ChannelError(f"slack {call}: server error {status}", retryable=True)
        if error in PERMANENT_ERRORS or (400 <= status < 500):
            return ChannelError(
                f"slack {call} to {self.settings['channel']}: {error or status}", retryable=False, kind="SlackPermanent"
            )
        return ChannelError(f"slack {call}: {error or status}", retryable=True)

    async def _channel_for_history(self) -> str | None:
        """The channel id (``conversations.history`` needs one; names are looked up once)."""
        if self._channel_id:
            return self._channel_id
        channel = self.settings["channel"]
        if not channel.startswith("#"):
            return channel
        cursor = None
        for _ in range(20):  # at most 20 pages of 1000 channels
            resp = await self._client.conversations_list(
                types="public_channel,private_channel", exclude_archived=True, limit=1000, cursor=cursor
            )
            channels: list[dict[str, Any]] = resp.get("channels", []) or []
            for item in channels:
                if item.get("name") == channel[1:]:
                    self._channel_id = item.get("id")
                    return self._channel_id
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return None

    async def _find_existing(self, key: str, since: float | None = None) -> Sent | None:
        """The message posted with ``key`` since the first attempt (or ``since``, when earlier), page by page."""
        first = _first_attempt_at()
        if since is not None:
            first = since if first is None else min(first, since)
        args: dict[str, Any] = {"limit": HISTORY_PAGE, "include_all_metadata": True}
        if first is not None:
            args["oldest"] = f"{max(first - LOOKBACK_SKEW, 0):.6f}"
        try:
            async with asyncio.timeout(LOOKUP_BUDGET):
                return await self._search_history(key, args)
        except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError):
            return None  # cannot tell: post (at-least-once beats never)

    async def _search_history(self, key: str, args: dict[str, Any]) -> Sent | None:
        async with asyncio.timeout(self._timeout):
            channel = await self._channel_for_history()
        if channel is None:
            return None
        for _ in range(HISTORY_PAGES):
            async with asyncio.timeout(self._timeout):
                resp = await self._client.conversations_history(channel=channel, **args)
            messages: list[dict[str, Any]] = resp.get("messages", []) or []
            for msg in messages:
                meta = msg.get("metadata") or {}
                if meta.get("event_type") == EVENT_TYPE and (meta.get("event_payload") or {}).get("key") == key:
                    return Sent(message_id=msg.get("ts"), duplicate=True)
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not resp.get("has_more") or not cursor:
                return None
            args["cursor"] = cursor
        return None

    async def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._client.api_call(method, json=kwargs)
        except SlackApiError as exc:
            raise self._classify(exc, method) from None
        except TimeoutError:
            raise ChannelError(f"slack {method}: no answer in {self._timeout:g}s", retryable=True) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise ChannelError(f"slack {method}: {type(exc).__name__}: {exc}", retryable=True) from None

    async def send(self, message: Message, idempotency_key: str, attempt: int, ctx: SendContext | None = None) -> Sent:
        ctx = ctx or SendContext(attempt=attempt)
        body: dict[str, Any] = {
            "text": slack_fallback_text(message),
            "blocks": slack_blocks(message),
            "metadata": {"event_type": EVENT_TYPE, "event_payload": {"key": idempotency_key}},
        }
        if ctx.update_of:
            # Editing is idempotent: a retried chat.update leaves the same message.
            channel = await self._channel_for_history()
            if channel is None:
                raise ChannelError(
                    f"slack chat.update: cannot resolve channel {self.settings['channel']}",
                    retryable=False,
                    kind="SlackPermanent",
                )
            resp = await self._call("chat.update", channel=channel, ts=ctx.update_of, **body)
            return Sent(message_id=resp.get("ts") or ctx.update_of)
        if attempt > 1:
            existing = await self._find_existing(idempotency_key, ctx.tried_since)
            if existing is not None:
                return existing
        if ctx.thread_of:
            body["thread_ts"] = ctx.thread_of
        resp = await self._call("chat.postMessage", channel=self.settings["channel"], unfurl_links=False, **body)
        self._channel_id = resp.get("channel") or self._channel_id
        return Sent(message_id=resp.get("ts"), url=None)

    def pace_key(self) -> str:
        return f"slack:{self.settings.get('api_url', '')}:{self.settings['channel']}"
