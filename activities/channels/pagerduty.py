"""The ``pagerduty`` channel: PagerDuty Events API v2 (trigger, acknowledge, resolve).

Settings:
    ``routing_key``: the Events API v2 integration key (reference it as ``${ENV_VAR}``);
    ``api_url``: default ``https://events.pagerduty.com/v2/enqueue``;
    ``timeout``: seconds per request (default 10); ``rate_per_second``/``burst`` override the pace
    (default 2/s: PagerDuty allows about 120 events a minute per integration key).

Actions (``ctx.action``): ``notify`` and ``trigger`` send ``trigger``;
``acknowledge`` and ``resolve`` send only ``routing_key``, ``dedup_key`` and
``event_action``, and need ``ctx.dedup_key`` (without it there is no alert to
act on, which is a non-retryable error).

Deduplication: ``dedup_key`` is ``ctx.dedup_key`` (stable for an incident) or
the send's idempotency key; keys over PagerDuty's 255 characters are replaced
by their SHA-256 hex digest, the same for every send. PagerDuty folds events
with the same key into one alert, so a retried send never pages twice.

Trigger payload: ``summary`` (title, plus the first line of text; ≤ 1024),
``source`` (label ``service``, else ``message.source``, else ``tocsin``),
``severity``, ``component``/``group``/``class`` from labels of those names,
``custom_details`` (the fields by title, plus ``labels`` and ``text``),
``links`` (``href``/``text``) and ``client: "Tocsin"``.

Severity: critical, error, warning and info map to themselves, success to
info. Urgency rule (PagerDuty services set urgency from severity: critical and
error page with high urgency, warning and info with low): a label
``urgency=high`` raises info/warning/success to ``critical``; ``urgency=low``
lowers error/critical to ``warning``; a severity already in the asked urgency
band is kept. The channel setting ``urgency: high|low`` applies the same rule to
every event of that channel (one channel instance per urgency, e.g.
``pagerduty-high`` for market hours and ``pagerduty-low`` otherwise).

Answers: 202 → ``Sent(message_id=dedup_key)``; 400 → not retryable, with
PagerDuty's ``errors``; 429 → retryable (PagerDuty sends no ``Retry-After`` and
advises waiting; ``retry_after`` is 30 s); 5xx, timeouts and connection errors
→ retryable; other 4xx → not retryable.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

from activities.channels.base import Channel, ChannelError, SendContext, Sent, json_object, raise_for_http
from activities.channels.render import trim
from workflows.models import Message

__all__ = ["PagerDutyChannel", "pagerduty_event", "pagerduty_severity", "dedup_key_for", "DEFAULT_API_URL"]

DEFAULT_API_URL = "https://events.pagerduty.com/v2/enqueue"
RATE_LIMIT_BACKOFF = 30.0
"""Seconds to wait after a 429 (PagerDuty gives no hint; its docs suggest retrying about 30 s apart)."""
_SEVERITY = {"critical": "critical", "error": "error", "warning": "warning", "info": "info", "success": "info"}
_HIGH = ("critical", "error")


def pagerduty_severity(message: Message, urgency: str | None = None) -> str:
    """PagerDuty's severity for ``message``, after the urgency rule (see the module docstring).

    Args:
        message: the message.
        urgency: the channel's ``urgency`` setting, which wins over the message's ``urgency`` label.
    """
    severity = _SEVERITY.get(message.severity, "info")
    urgency = (urgency or message.labels.get("urgency", "")).strip().lower()
    if urgency == "high" and severity not in _HIGH:
        return "critical"
    if urgency == "low" and severity in _HIGH:
        return "warning"
    return severity


def dedup_key_for(key: str) -> str:
    """``key`` itself when PagerDuty accepts it (≤ 255 characters), else its SHA-256 hex digest."""
    return key if len(key) <= 255 else hashlib.sha256(key.encode("utf-8")).hexdigest()


def pagerduty_event(
    message: Message, routing_key: str, dedup_key: str, action: str, urgency: str | None = None
) -> dict[str, Any]:
    """The Events API v2 body.

    Args:
        message: the channel-neutral message.
        routing_key: the integration key.
        dedup_key: the alert's key (already within 255 characters).
        action: ``trigger``, ``acknowledge`` or ``resolve``.
        urgency: the channel's ``urgency`` setting (``high``/``low``), if any.
    """
    event: dict[str, Any] = {"routing_key": routing_key, "dedup_key": dedup_key, "event_action": action}
    if action != "trigger":
        return event
    first_line = message.text.strip().splitlines()[0] if message.text.strip() else ""
    summary = message.title.strip() or "(no title)"
    if first_line:
        summary += f" — {first_line}"
    labels = message.labels
    details: dict[str, Any] = {f.title: f.value for f in message.fields}
    if labels:
        details["labels"] = dict(labels)
    if message.text.strip():
        details["text"] = message.text
    payload: dict[str, Any] = {
        "summary": trim(summary, 1024),
        "source": labels.get("service") or message.source or "tocsin",
        "severity": pagerduty_severity(message, urgency),
    }
    for key in ("component", "group", "class"):
        if labels.get(key):
            payload[key] = labels[key]
    if details:
        payload["custom_details"] = details
    event["payload"] = payload
    links = [{"href": link.url, "text": link.text} for link in message.links]
    links += [{"href": a.url, "text": a.text or a.action_id} for a in message.actions if a.url]
    if links:
        event["links"] = links
    event["client"] = "Tocsin"
    return event


class PagerDutyChannel(Channel):
    """Sends alert events to one PagerDuty integration (Events API v2)."""

    type = "pagerduty"
    required = ("routing_key",)
    rate_per_second = 2.0  # about 120 events per minute per integration key
    burst = 5

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._url = str(self.settings.get("api_url") or DEFAULT_API_URL).strip()
        parts = urlsplit(self._url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ChannelError(
                f"channel '{self.name}' (pagerduty): api_url must be an http(s) URL",
                retryable=False,
                kind="ChannelMisconfigured",
            )
        self._timeout = float(self.settings.get("timeout", 10))
        key_id = hashlib.sha256(str(self.settings["routing_key"]).encode()).hexdigest()[:16]
        self._pace_key = f"pagerduty:{parts.netloc}:{key_id}"

    def pace_key(self) -> str:
        """PagerDuty limits each integration key (kept hashed: it is a secret)."""
        return self._pace_key

    async def send(self, message: Message, idempotency_key: str, attempt: int, ctx: SendContext | None = None) -> Sent:
        """Send one event: trigger (``notify``/``trigger``), acknowledge or resolve.

        Returns:
            ``Sent`` whose ``message_id`` is the alert's ``dedup_key``.

        Raises:
            ChannelError: classified as described in the module docstring.
        """
        ctx = ctx or SendContext(attempt=attempt)
        action = "trigger" if ctx.action in ("notify", "trigger") else ctx.action
        what = f"pagerduty {action} (channel '{self.name}')"
        if action != "trigger" and not ctx.dedup_key:
            raise ChannelError(
                f"{what}: {action} needs the incident's dedup_key, and none was given",
                retryable=False,
                kind="ChannelPermanent",
            )
        dedup_key = dedup_key_for(ctx.dedup_key or idempotency_key)
        event = pagerduty_event(
            message, str(self.settings["routing_key"]), dedup_key, action, self.settings.get("urgency")
        )
        response = await self.request("POST", self._url, what, json=event, timeout=self._timeout)
        body = json_object(response)
        if response.status_code == 429:
            hint = f": {body['message']}" if body.get("message") else ""
            raise ChannelError(
                f"{what}: rate limited (429){hint}", retryable=True, retry_after=RATE_LIMIT_BACKOFF, kind="RateLimited"
            )
        if response.status_code == 400:
            errors = body.get("errors")
            detail = "; ".join(str(e) for e in errors) if isinstance(errors, list) and errors else response.text[:300]
            raise ChannelError(
                f"{what}: rejected (400): {body.get('message', 'invalid event')}: {detail}",
                retryable=False,
                kind="PagerDutyInvalidEvent",
            )
        raise_for_http(response, what)
        return Sent(message_id=str(body.get("dedup_key") or dedup_key))
