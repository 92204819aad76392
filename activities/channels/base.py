"""The one small interface every channel implements, and failure classification.

A channel turns a :class:`~workflows.models.Message` into one API call. It
raises :class:`ChannelError` saying whether a retry can help; the delivery
activity turns that into Temporal's retry behaviour. Retry rules live here,
beside the HTTP status codes they interpret.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import httpx

from workflows.models import Message

__all__ = [
    "Channel",
    "ChannelDeps",
    "ChannelError",
    "Sent",
    "SendContext",
    "raise_for_http",
    "parse_retry_after",
    "json_object",
]


class ChannelError(Exception):
    """A failed send.

    Attributes:
        retryable: whether Temporal should retry the activity.
        retry_after: seconds the API asked us to wait (429), if any.
    """

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None, kind: str = ""):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.kind = kind or ("ChannelRetryable" if retryable else "ChannelPermanent")


@dataclass
class Sent:
    """What a channel reports after a successful send."""

    message_id: str | None = None
    url: str | None = None
    duplicate: bool = False
    """True when the channel found this send already delivered (a retry)."""


@dataclass(frozen=True)
class SendContext:
    """How a send relates to earlier ones (channels ignore what they cannot express)."""

    attempt: int = 1
    """Temporal's attempt number, from 1; a retry may need a duplicate check."""
    action: Literal["notify", "trigger", "acknowledge", "resolve"] = "notify"
    """Incident-style channels (PagerDuty, GitHub issues, Jira) map these to their own lifecycle."""
    update_of: str | None = None
    """``message_id`` of an earlier send on this channel to edit in place (Slack ``chat.update``)."""
    thread_of: str | None = None
    """``message_id`` of an earlier send on this channel to reply under (Slack thread)."""
    dedup_key: str | None = None
    """A key stable across the life of an incident/pipeline (PagerDuty ``dedup_key``, GitHub marker)."""
    tried_since: float | None = None
    """Epoch seconds of an earlier try outside this activity (a local page) that may have reached the
    channel: duplicate look-ups start there, not at this activity's first attempt."""


PACE_RANK = {"critical": 0, "page": 1, "update": 2}
"""Send priorities (``SendRequest.priority``), most urgent first."""
UPDATE_RESERVE = 2.0
"""Tokens of a bucket's burst that only pages may take: an update waits while fewer than this plus one remain."""


@dataclass
class _Bucket:
    rate: float
    burst: float
    tokens: float
    stamp: float
    held: dict[str, float] = field(default_factory=dict)
    """priority → when the latest send of that priority deferred by this bucket comes back (clock seconds)."""


@dataclass
class ChannelDeps:
    """Long-lived things channels share, built once per worker."""

    http: httpx.AsyncClient
    home: Path
    """Tocsin's state folder (``.tocsin``): console outbox and such."""
    extra: dict[str, Any] = field(default_factory=dict)


class Channel(abc.ABC):
    """Base class: one named channel instance with resolved settings."""

    type: ClassVar[str] = ""
    required: ClassVar[tuple[str, ...]] = ()
    rate_per_second: ClassVar[float | None] = None
    """Default pace for one instance (None: unpaced); the ``rate_per_second`` setting overrides."""
    burst: ClassVar[int] = 1

    def __init__(self, name: str, settings: Mapping[str, Any], deps: ChannelDeps):
        missing = [key for key in self.required if not settings.get(key)]
        if missing:
            raise ChannelError(
                f"channel '{name}' ({self.type}): missing setting(s) {', '.join(missing)}",
                retryable=False,
                kind="ChannelMisconfigured",
            )
        self.name = name
        self.settings = dict(settings)
        self.deps = deps

    @abc.abstractmethod
    async def send(self, message: Message, idempotency_key: str, attempt: int, ctx: SendContext | None = None) -> Sent:
        """Deliver ``message``; ``attempt`` starts at 1 (a retry may need a duplicate check)."""

    def pace_key(self) -> str:
        """What the API rate-limits on (a channel, a webhook); instances sharing it share a bucket."""
        return f"{self.type}:{self.name}"

    def pace_rate(self) -> float | None:
        """Sends per second this instance may make (the ``rate_per_second`` setting, else the type's); None: unpaced."""
        rate = self.settings.get("rate_per_second", self.rate_per_second)
        return float(rate) if rate else None

    def pace(self, priority: str = "page", now: float | None = None) -> None:
        """Take one send from this channel's token bucket, the most urgent sends first.

        A ``critical`` or ``page`` send takes a token when one is there, the whole burst included;
        an ``update`` leaves ``UPDATE_RESERVE`` tokens of the burst to pages, and waits while a
        more urgent send on this bucket is deferred (and one token interval longer), so that pages
        deferred here go out before updates whatever order their retries come back in. A ``page``
        likewise waits behind a deferred ``critical`` one.

        Raises:
            ChannelError: retryable, kind ``Paced``, with ``retry_after`` set to when this send may
                try again, so Temporal's retry (not a sleep in the worker) paces the send.
        """
        rate = self.pace_rate()
        if rate is None:
            return
        burst = float(self.settings.get("burst", self.burst))
        now = time.monotonic() if now is None else now
        buckets: dict[str, _Bucket] = self.deps.extra.setdefault("pace", {})
        bucket = buckets.get(self.pace_key())
        if bucket is None:
            bucket = buckets[self.pace_key()] = _Bucket(rate, burst, burst, now)
        bucket.tokens = min(bucket.burst, bucket.tokens + (now - bucket.stamp) * bucket.rate)
        bucket.stamp = now
        bucket.held = {p: until for p, until in bucket.held.items() if until > now}
        rank = PACE_RANK.get(priority, PACE_RANK["page"])
        ahead = max((until for p, until in bucket.held.items() if PACE_RANK[p] < rank), default=None)
        need = min(bucket.burst, 1.0 + UPDATE_RESERVE) if rank == PACE_RANK["update"] else 1.0
        if ahead is None and bucket.tokens >= need:
            bucket.tokens -= 1
            return
        wait = max(0.0, (need - bucket.tokens) / bucket.rate)
        if ahead is not None:
            wait = max(wait, ahead - now + 1 / bucket.rate)
        if rank == PACE_RANK["update"]:
            wait += 1 / bucket.rate
        bucket.held[priority] = max(bucket.held.get(priority, now), now + wait)
        raise ChannelError(
            f"{self.type} channel '{self.name}': paced to {rate:g}/s, next {priority} send in {wait:.2f}s",
            retryable=True,
            retry_after=wait,
            kind="Paced",
        )

    async def aclose(self) -> None:  # noqa: B027 - an optional hook: most channels hold nothing of their own
        """Release per-channel resources."""

    async def request(
        self, verb: str, url: str, what: str, *, timeout: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One HTTP call on the worker's shared client.

        Args:
            verb: HTTP method.
            url: where (never put into error text: URLs often carry tokens).
            what: how errors name the call, e.g. ``"github GET /repos/…"``.
            timeout: seconds; default the channel's ``timeout`` setting (10).

        Raises:
            ChannelError: retryable, for a timeout or a transport failure. HTTP
                statuses are the caller's to classify (``raise_for_http``).
        """
        limit = float(self.settings.get("timeout", 10)) if timeout is None else timeout
        try:
            return await self.deps.http.request(verb, url, timeout=limit, **kwargs)
        except httpx.TimeoutException:
            raise ChannelError(f"{what}: no answer in {limit:g}s", retryable=True) from None
        except httpx.HTTPError as exc:
            raise ChannelError(f"{what}: {type(exc).__name__}: {exc}", retryable=True) from None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The body when it is a JSON object, else ``{}`` (error pages are often HTML, text or empty)."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def raise_for_http(response: httpx.Response, what: str) -> None:
    """Classify an HTTP response: 2xx passes; 429 and 5xx retry; other 4xx do not.

    Raises:
        ChannelError: for any non-2xx status.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    body = response.text[:300]
    if status == 429:
        raise ChannelError(
            f"{what}: rate limited (429)",
            retryable=True,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            kind="RateLimited",
        )
    if status >= 500 or status == 408:
        raise ChannelError(f"{what}: server error {status}: {body}", retryable=True)
    if status in (401, 403):
        raise ChannelError(f"{what}: bad credentials ({status}): {body}", retryable=False, kind="BadCredentials")
    raise ChannelError(f"{what}: rejected ({status}): {body}", retryable=False)
