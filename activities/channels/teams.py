"""The ``teams`` channel: an Adaptive Card posted to a Microsoft Teams webhook.

Settings:
    ``webhook_url``: a Workflows "Post to a channel when a webhook request is received"
    trigger URL, or a legacy Office 365 connector ("Incoming Webhook") URL;
    ``timeout``: seconds per request (default 10); ``rate_per_second``/``burst`` override the pace.

Body: ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": card}]}``
where the card (Adaptive Card 1.4) holds a bold title TextBlock (``attention``
colour for error/critical, ``warning`` for warning, ``good`` for success), the
text (wrapped), a FactSet of the fields, a subtle severity/source line and an
``Action.OpenUrl`` per link. The whole body is kept under Teams' ~28 KB limit.
A Teams mention needs an ``msteams.entities`` entry besides ``<at>…</at>`` in the text, and no
card carries one: ``<at>All</at>`` from an alert or a build log mentions nobody.

Answers: Workflows triggers answer 202 (success); legacy connectors answer 200
with body ``1``. Legacy connectors report throttling *in the body of a 200*
(``Microsoft Teams endpoint returned HTTP error 429 ...``): such a body is
classified by the status it names (429 and 5xx retryable, other 4xx not).
Real 429s honour ``Retry-After``; 5xx, timeouts and connection errors retry;
401/403/404/400 do not.

At-least-once corner: Teams webhooks return no message id and accept no
idempotency key, so a post whose response is lost is posted again on the
retry; edits in place (``update_of``) are not possible (a new card is posted).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from activities.channels.base import Channel, ChannelError, SendContext, Sent, parse_retry_after, raise_for_http
from activities.channels.render import trim
from workflows.models import Message

__all__ = ["TeamsChannel", "teams_card", "teams_payload", "MAX_BYTES"]

MAX_BYTES = 27_000
"""Teams rejects messages over about 28 KB; stay below with room for the envelope."""
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
_TITLE_COLOR = {"error": "attention", "critical": "attention", "warning": "warning", "success": "good"}
_BODY_ERROR = re.compile(r"HTTP error (\d{3})", re.IGNORECASE)


def teams_card(
    message: Message, *, text_limit: int = 8000, max_facts: int = 30, fact_limit: int = 1000
) -> dict[str, Any]:
    """The Adaptive Card (1.4) for ``message``.

    Args:
        message: the channel-neutral message.
        text_limit: characters of message text kept.
        max_facts: fields kept (as FactSet facts).
        fact_limit: characters kept per fact value.

    Returns:
        The card object (the ``content`` of the attachment).
    """
    title: dict[str, Any] = {
        "type": "TextBlock",
        "text": trim(message.title.strip() or "(no title)", 500),
        "weight": "bolder",
        "size": "medium",
        "wrap": True,
    }
    if message.severity in _TITLE_COLOR:
        title["color"] = _TITLE_COLOR[message.severity]
    body: list[dict[str, Any]] = [title]
    if message.text.strip():
        body.append({"type": "TextBlock", "text": trim(message.text.strip(), text_limit), "wrap": True})
    facts = [
        {"title": trim(f.title.strip() or "-", 200), "value": trim(f.value.strip() or "-", fact_limit)}
        for f in message.fields[:max_facts]
    ]
    if facts:
        body.append({"type": "FactSet", "facts": facts})
    context = message.severity + (f" · {message.source}" if message.source else "")
    body.append(
        {"type": "TextBlock", "text": context, "isSubtle": True, "size": "small", "wrap": True, "spacing": "small"}
    )
    actions = [
        {"type": "Action.OpenUrl", "title": trim(link.text.strip() or "Open", 100), "url": link.url}
        for link in message.links
    ]
    actions += [
        {"type": "Action.OpenUrl", "title": trim(action.text.strip() or action.action_id, 100), "url": action.url}
        for action in message.actions
        if action.url
    ]
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
        "msteams": {"width": "Full"},
    }
    if actions:
        card["actions"] = actions[:10]
    return card


def teams_payload(message: Message) -> dict[str, Any]:
    """The webhook body for ``message``, shrunk until it fits :data:`MAX_BYTES`.

    Returns:
        ``{"type": "message", "attachments": [<the Adaptive Card attachment>]}``.
    """
    text_limit, max_facts, fact_limit = 8000, 30, 1000
    while True:
        card = teams_card(message, text_limit=text_limit, max_facts=max_facts, fact_limit=fact_limit)
        payload = {
            "type": "message",
            "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
        }
        size = len(json.dumps(payload, ensure_ascii=False).encode("utf-8"))
        if size <= MAX_BYTES or (text_limit <= 200 and max_facts == 0):
            return payload
        if max_facts > 10 or fact_limit > 200:
            max_facts, fact_limit = min(max_facts, 10), min(fact_limit, 200)
        elif text_limit > 200:
            text_limit = max(200, text_limit // 2)
        else:
            max_facts = 0


class TeamsChannel(Channel):
    """Posts Adaptive Cards to one Teams channel through a webhook."""

    type = "teams"
    required = ("webhook_url",)
    rate_per_second = 4.0  # Teams connectors: 4 requests per second per webhook
    burst = 4

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._url = str(self.settings["webhook_url"]).strip()
        parts = urlsplit(self._url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ChannelError(
                f"channel '{self.name}' (teams): webhook_url must be an http(s) URL",
                retryable=False,
                kind="ChannelMisconfigured",
            )
        self._host = parts.netloc
        self._timeout = float(self.settings.get("timeout", 10))

    def pace_key(self) -> str:
        """Teams limits each webhook: instances sharing a URL share a bucket."""
        return f"teams:{self._url}"

    def _what(self) -> str:
        # Never the URL: its query string (sig=...) is the credential, and this text lands in history.
        return f"teams post (channel '{self.name}', {self._host})"

    async def send(self, message: Message, idempotency_key: str, attempt: int, ctx: SendContext | None = None) -> Sent:
        """Post ``message`` as an Adaptive Card.

        Returns:
            ``Sent`` without a message id (Teams webhooks return none).

        Raises:
            ChannelError: classified as described in the module docstring.
        """
        what = self._what()
        response = await self.request("POST", self._url, what, json=teams_payload(message), timeout=self._timeout)
        raise_for_http(response, what)
        self._check_body(response, what)
        return Sent()

    @staticmethod
    def _check_body(response: httpx.Response, what: str) -> None:
        """Legacy connectors answer 200 and put the real outcome in the body."""
        text = response.text.strip()
        if not text or text == "1":
            return
        match = _BODY_ERROR.search(text)
        if match is None:
            return  # some other acknowledgement (Workflows may echo a body): delivered
        status = int(match.group(1))
        snippet = text[:300]
        if status == 429:
            raise ChannelError(
                f"{what}: throttled (Teams reported 429 in a {response.status_code} body): {snippet}",
                retryable=True,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                kind="RateLimited",
            )
        if status >= 500 or status == 408:
            raise ChannelError(f"{what}: Teams reported {status}: {snippet}", retryable=True)
        raise ChannelError(
            f"{what}: Teams reported {status}: {snippet}",
            retryable=False,
            kind="BadCredentials" if status in (401, 403) else "ChannelPermanent",
        )
