"""The ``webhook`` channel: a signed JSON POST to any HTTP endpoint.

Settings:
    ``url``: where to POST; ``secret``: the shared signing secret (reference it as
    ``${ENV_VAR}``); ``timeout``: seconds per request (default 10);
    ``rate_per_second``/``burst`` override the pace (default 10/s, bursts of 20).

Body (``Content-Type: application/json``, UTF-8)::

    {"version": "1", "idempotency_key": "...", "title": "...", "text": "...",
     "severity": "info|success|warning|error|critical",
     "fields": [{"title": "...", "value": "...", "short": true}],
     "links": [{"text": "...", "url": "..."}], "labels": {"...": "..."},
     "source": "<workflow id>", "action": "notify|trigger|acknowledge|resolve",
     "dedup_key": "<stable incident key or null>", "sent_at": "2024-01-01T00:00:00+00:00"}

Headers:
    ``X-Tocsin-Timestamp``: Unix seconds when this attempt was sent;
    ``X-Tocsin-Signature``: ``sha256=`` + hex HMAC-SHA256 of ``f"{timestamp}.{body}"`` keyed with the
    secret, where ``body`` is the raw request body bytes;
    ``X-Tocsin-Idempotency-Key``: the same for every retry of one notification (the header is not
    signed; its signed copy is the body's ``idempotency_key``, and a strict receiver checks they agree).

Verifying a delivery (receiver side)::

    import hashlib, hmac, time

    def verify(secret: bytes, headers, raw_body: bytes, tolerance: int = 300) -> bool:
        timestamp = headers["X-Tocsin-Timestamp"]
        if abs(time.time() - int(timestamp)) > tolerance:        # replayed or badly delayed
            return False
        expected = "sha256=" + hmac.new(secret, timestamp.encode() + b"." + raw_body,
                                        hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, headers["X-Tocsin-Signature"])

Sign and check over the *raw* body bytes (never re-serialised JSON), compare
in constant time, reject stale timestamps, then dedupe: a retry carries the
same ``X-Tocsin-Idempotency-Key`` (with a fresh timestamp and signature), so a
receiver that remembers keys it has processed (for at least a day: Tocsin
retries for up to 24 hours) and answers 2xx for a repeat shows each
notification exactly once.

Answers: any 2xx is delivered; 429 retries after ``Retry-After``; 408 and 5xx,
timeouts and connection errors retry; other 4xx (and 3xx: redirects are not
followed, the signature is for this URL) fail without retry.

At-least-once corner: delivery is at least once; exactly once holds only for
receivers that dedupe on ``X-Tocsin-Idempotency-Key`` as described above.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from activities.channels.base import Channel, ChannelError, SendContext, Sent, raise_for_http
from workflows.models import Message

__all__ = ["WebhookChannel", "webhook_body", "sign", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "IDEMPOTENCY_HEADER"]

SIGNATURE_HEADER = "X-Tocsin-Signature"
TIMESTAMP_HEADER = "X-Tocsin-Timestamp"
IDEMPOTENCY_HEADER = "X-Tocsin-Idempotency-Key"
VERSION = "1"


def webhook_body(
    message: Message,
    idempotency_key: str,
    action: str = "notify",
    *,
    dedup_key: str | None = None,
    sent_at: datetime | None = None,
) -> dict[str, Any]:
    """The JSON document POSTed for ``message`` (see the module docstring for its fields).

    Args:
        message: the channel-neutral message.
        idempotency_key: the send's key (also sent as a header).
        action: the lifecycle action (``notify``, ``trigger``, ``acknowledge``, ``resolve``).
        dedup_key: the incident-wide key, when there is one.
        sent_at: when this attempt is sent (UTC now by default).
    """
    sent_at = sent_at or datetime.now(UTC)
    return {
        "version": VERSION,
        "idempotency_key": idempotency_key,
        "title": message.title,
        "text": message.text,
        "severity": message.severity,
        "fields": [{"title": f.title, "value": f.value, "short": f.short} for f in message.fields],
        "links": [{"text": link.text, "url": link.url} for link in message.links],
        "labels": dict(message.labels),
        "source": message.source,
        "action": action,
        "dedup_key": dedup_key,
        "sent_at": sent_at.isoformat(),
    }


def sign(secret: str | bytes, timestamp: str | int, body: bytes) -> str:
    """The ``X-Tocsin-Signature`` value: ``sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    digest = hmac.new(key, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookChannel(Channel):
    """POSTs signed JSON notifications to one URL."""

    type = "webhook"
    required = ("url", "secret")
    rate_per_second = 10.0  # be gentle with receivers by default; the setting overrides
    burst = 20

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._url = str(self.settings["url"]).strip()
        parts = urlsplit(self._url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ChannelError(
                f"channel '{self.name}' (webhook): url must be an http(s) URL",
                retryable=False,
                kind="ChannelMisconfigured",
            )
        self._where = f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"
        self._timeout = float(self.settings.get("timeout", 10))

    def pace_key(self) -> str:
        """One bucket per receiver URL."""
        return f"webhook:{self._url}"

    async def send(self, message: Message, idempotency_key: str, attempt: int, ctx: SendContext | None = None) -> Sent:
        """POST the signed notification.

        Returns:
            ``Sent`` with the idempotency key as ``message_id`` (the receiver's handle for it).

        Raises:
            ChannelError: classified as described in the module docstring.
        """
        ctx = ctx or SendContext(attempt=attempt)
        now = time.time()
        body = webhook_body(
            message, idempotency_key, ctx.action, dedup_key=ctx.dedup_key, sent_at=datetime.fromtimestamp(now, UTC)
        )
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(now))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(str(self.settings["secret"]), timestamp, raw),
            IDEMPOTENCY_HEADER: idempotency_key,
            "User-Agent": "Tocsin-Webhook/1",
        }
        # Only scheme and host: webhook paths and query strings often carry a token.
        what = f"webhook POST to {self._where} (channel '{self.name}')"
        response = await self.request("POST", self._url, what, content=raw, headers=headers, timeout=self._timeout)
        raise_for_http(response, what)
        return Sent(message_id=idempotency_key)
