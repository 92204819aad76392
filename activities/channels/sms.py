"""The ``sms`` channel: short text messages through Twilio's Messages API.

Settings:
    ``provider``: ``twilio`` (the only one so far; the default);
    ``account_sid``, ``auth_token``: Twilio credentials (reference the token as ``${ENV_VAR}``);
    ``from``: the sending number (E.164) or a Messaging Service SID (``MG...``);
    ``to``: one number, a comma-separated string or a list;
    ``api_url``: default ``https://api.twilio.com``; ``timeout``: seconds per request (default 10);
    ``dedupe``: look for an earlier delivery before re-sending on a retry (default true);
    ``rate_per_second``/``burst`` override the pace (default 1/s, bursts of 5: a long code sends
    about one segment a second, and Twilio queues the rest).

Each recipient gets one ``POST {api_url}/2010-04-01/Accounts/{sid}/Messages.json``
(form-encoded ``To``, ``From`` or ``MessagingServiceSid``, ``Body``; HTTP basic
auth) answered 201 with the message ``sid``; ``message_id`` is the sids joined
by commas. The body is ``[SEVERITY] title — first line of text`` cut to 320
characters, ending in `` ref:<8 hex>`` derived from the idempotency key.

Failures: 401/403 (credentials) and 404 (account) stop at once, not
retryable; 400 with 21211 (invalid number), 21610 (unsubscribed), 21614 (not a
mobile) etc. fail that recipient, not retryable; an invalid ``From`` (21606,
21212, 21659...) stops at once, not retryable; 429 (20429) retries after
``Retry-After`` when given; 5xx, timeouts and connection errors retry. With
several recipients every one is tried; a retryable failure of any makes the
send retryable (recipients already served are skipped on the retry, see
below), else a permanent failure of any makes it fail without retry.

Duplicates: Twilio's Messages API takes no idempotency key (the
``I-Twilio-Idempotency-Token`` header is one Twilio *sends* to your webhooks,
not one it honours on requests). So on a retry, with ``dedupe`` on, the channel
first lists the recent messages from ``from`` to each recipient
(``GET Messages.json?To=&From=&PageSize=50``) and skips a recipient whose
message already carries this send's ``ref``.

At-least-once corner: when that lookup fails (timeout, 5xx) the message is
sent anyway (at least once beats never), so a lost 201 followed by a failed
lookup sends a second SMS; with ``dedupe: false`` every retry after a lost
201 does.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlsplit

import httpx

from activities.channels.base import Channel, ChannelError, SendContext, Sent, json_object, parse_retry_after
from activities.channels.render import trim
from workflows.models import Message

__all__ = ["SmsChannel", "sms_body", "sms_ref", "MAX_CHARS", "DEFAULT_API_URL"]

DEFAULT_API_URL = "https://api.twilio.com"
MAX_CHARS = 320
INVALID_RECIPIENT = frozenset({21211, 21214, 21265, 21408, 21610, 21612, 21614, 21217, 21421})
"""Twilio error codes that concern one ``To`` number."""
INVALID_SENDER = frozenset({21212, 21606, 21659, 21660, 21701, 21703, 21704, 21705})
"""Twilio error codes that concern the ``From`` number / Messaging Service: stop, fix the config."""


def sms_ref(idempotency_key: str) -> str:
    """Eight hex characters identifying one send (the same for every retry)."""
    return hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:8]


def sms_body(message: Message, ref: str | None = None) -> str:
    """``[SEVERITY] title — first line``, at most :data:`MAX_CHARS`, with `` ref:<ref>`` at the end.

    Args:
        message: the channel-neutral message.
        ref: the send's reference (see :func:`sms_ref`); left out when None.
    """
    text = f"[{message.severity.upper()}] {' '.join(message.title.split()) or '(no title)'}"
    first = next((line.strip() for line in message.text.splitlines() if line.strip()), "")
    if first:
        text += f" — {first}"
    suffix = f" ref:{ref}" if ref else ""
    return trim(text, MAX_CHARS - len(suffix)) + suffix


class SmsChannel(Channel):
    """Sends a short text to each configured number through Twilio."""

    type = "sms"
    required = ("account_sid", "auth_token", "from", "to")
    rate_per_second = 1.0
    burst = 5

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        provider = str(self.settings.get("provider") or "twilio").lower()
        if provider != "twilio":
            raise self._misconfigured(f"provider '{provider}' is not supported (only twilio)")
        base = str(self.settings.get("api_url") or DEFAULT_API_URL).strip().rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self._misconfigured("api_url must be an http(s) URL")
        to = self.settings["to"]
        numbers = to.split(",") if isinstance(to, str) else list(to)
        self._to = [str(n).strip() for n in numbers if str(n).strip()]
        if not self._to:
            raise self._misconfigured("'to' names no number")
        self._sid = str(self.settings["account_sid"]).strip()
        self._from = str(self.settings["from"]).strip()
        self._service = self._from.startswith("MG")
        self._messages_url = f"{base}/2010-04-01/Accounts/{self._sid}/Messages.json"
        self._auth = httpx.BasicAuth(self._sid, str(self.settings["auth_token"]))
        self._timeout = float(self.settings.get("timeout", 10))
        dedupe = self.settings.get("dedupe", True)
        self._dedupe = (
            dedupe.strip().lower() not in ("0", "false", "no", "off") if isinstance(dedupe, str) else bool(dedupe)
        )

    def _misconfigured(self, why: str) -> ChannelError:
        return ChannelError(f"channel '{self.name}' (sms): {why}", retryable=False, kind="ChannelMisconfigured")

    def pace_key(self) -> str:
        """Twilio paces per sender: instances sending from one number share a bucket."""
        return f"sms:{self._sid}:{self._from}"

    async def _request(self, verb: str, what: str, **kwargs: Any) -> httpx.Response:
        return await self.request(verb, self._messages_url, what, auth=self._auth, timeout=self._timeout, **kwargs)

    async def _find_existing(self, to: str, ref: str) -> str | None:
        """The sid of an earlier message to ``to`` carrying ``ref``, if Twilio lists one."""
        params = {"To": to, "PageSize": "50"}
        if not self._service:
            params["From"] = self._from
        try:
            response = await self._request("GET", "twilio list", params=params)
            if response.status_code != 200:
                return None
            messages = response.json().get("messages") or []
        except (ChannelError, ValueError, AttributeError):
            return None  # cannot tell: send (at least once beats never)
        marker = f"ref:{ref}"
        for item in messages:
            if (
                isinstance(item, dict)
                and str(item.get("body") or "").endswith(marker)
                and str(item.get("direction") or "outbound").startswith("outbound")
            ):
                return str(item.get("sid")) if item.get("sid") else None
        return None

    def _classify(self, response: httpx.Response, what: str) -> ChannelError:
        status = response.status_code
        body = json_object(response)
        code = body.get("code")
        detail = f"error {code}: {body.get('message')}" if code else response.text[:300]
        if status == 429:
            return ChannelError(
                f"{what}: rate limited (429) {detail}",
                retryable=True,
                kind="RateLimited",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        if status >= 500 or status == 408:
            return ChannelError(f"{what}: server error {status}: {detail}", retryable=True)
        if status in (401, 403):
            return ChannelError(f"{what}: bad credentials ({status}) {detail}", retryable=False, kind="BadCredentials")
        if status == 404:
            return ChannelError(
                f"{what}: account {self._sid} not found (404) {detail}", retryable=False, kind="ChannelMisconfigured"
            )
        if code in INVALID_SENDER:
            return ChannelError(f"{what}: sender rejected (400) {detail}", retryable=False, kind="ChannelMisconfigured")
        return ChannelError(
            f"{what}: rejected ({status}) {detail}",
            retryable=False,
            kind="InvalidRecipient" if code in INVALID_RECIPIENT else "ChannelPermanent",
        )

    async def _create(self, to: str, text: str) -> str:
        what = f"twilio send to {to} (channel '{self.name}')"
        form = {"To": to, "Body": text}
        form["MessagingServiceSid" if self._service else "From"] = self._from
        response = await self._request("POST", what, data=form)
        if response.status_code not in (200, 201):
            raise self._classify(response, what)
        try:
            sid = response.json().get("sid")
        except (ValueError, AttributeError):
            sid = None
        return str(sid or "")

    async def send(self, message: Message, idempotency_key: str, attempt: int, ctx: SendContext | None = None) -> Sent:
        """Text every recipient (skipping, on a retry, those already served).

        ``ctx.update_of`` and ``ctx.thread_of`` cannot be expressed by SMS: an update is a new text.

        Returns:
            ``Sent`` with the message sids joined by commas (``duplicate`` when a retry found every
            recipient already served).

        Raises:
            ChannelError: classified as described in the module docstring.
        """
        ref = sms_ref(idempotency_key)
        text = sms_body(message, ref)
        sids: list[str] = []
        found = 0
        retry: list[ChannelError] = []
        failed: list[ChannelError] = []
        for to in self._to:
            if attempt > 1 and self._dedupe:
                existing = await self._find_existing(to, ref)
                if existing:
                    sids.append(existing)
                    found += 1
                    continue
            try:
                sids.append(await self._create(to, text))
            except ChannelError as exc:
                if exc.kind in ("BadCredentials", "ChannelMisconfigured"):
                    raise  # the same for every recipient: stop here
                (retry if exc.retryable else failed).append(exc)
        if retry or failed:
            served = f"{len(sids)} of {len(self._to)} recipient(s) served"
            errors = "; ".join(str(e) for e in [*retry, *failed])
            if retry:
                waits = [e.retry_after for e in retry if e.retry_after is not None]
                raise ChannelError(
                    f"sms: {served}; {errors}",
                    retryable=True,
                    retry_after=max(waits) if waits else None,
                    kind=retry[0].kind,
                )
            raise ChannelError(f"sms: {served}; {errors}", retryable=False, kind=failed[0].kind)
        return Sent(message_id=",".join(sids), duplicate=found == len(self._to))
