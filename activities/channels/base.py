"""The one small interface every channel implements, and failure classification.

A channel turns a :class:`~workflows.models.Message` into one API call. It
raises :class:`ChannelError` saying whether a retry can help; the delivery
activity turns that into Temporal's retry behaviour. Retry rules live here,
beside the HTTP status codes they interpret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

import httpx

from workflows.models import Message

__all__ = ["Channel", "ChannelDeps", "ChannelError", "Sent", "raise_for_http", "parse_retry_after"]


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


@dataclass
class ChannelDeps:
    """Long-lived things channels share, built once per worker."""

    http: httpx.AsyncClient
    home: Path
    """Tocsin's state folder (``.tocsin``): console outbox and such."""
    extra: dict[str, Any] = field(default_factory=dict)


class Channel:
    """Base class: one named channel instance with resolved settings."""

    type: ClassVar[str] = ""
    required: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, settings: Mapping[str, Any], deps: ChannelDeps):
        missing = [key for key in self.required if not settings.get(key)]
        if missing:
            raise ChannelError(
                f"channel '{name}' ({self.type}): missing setting(s) {', '.join(missing)}", retryable=False,
                kind="ChannelMisconfigured")
        self.name = name
        self.settings = dict(settings)
        self.deps = deps

    async def send(self, message: Message, idempotency_key: str, attempt: int) -> Sent:
        """Deliver ``message``; ``attempt`` starts at 1 (a retry may need a duplicate check)."""
        raise NotImplementedError  # pragma: no cover - abstract

    async def aclose(self) -> None:
        """Release per-channel resources."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


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
        raise ChannelError(f"{what}: rate limited (429)", retryable=True,
                           retry_after=parse_retry_after(response.headers.get("retry-after")), kind="RateLimited")
    if status >= 500 or status == 408:
        raise ChannelError(f"{what}: server error {status}: {body}", retryable=True)
    if status in (401, 403):
        raise ChannelError(f"{what}: bad credentials ({status}): {body}", retryable=False, kind="BadCredentials")
    raise ChannelError(f"{what}: rejected ({status}): {body}", retryable=False)
