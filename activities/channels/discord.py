"""The ``discord`` channel: one embed posted through a Discord webhook.

Settings:
    ``webhook_url``: the webhook's URL (``https://discord.com/api/webhooks/{id}/{token}``);
    ``timeout``: seconds per request (default 10); ``rate_per_second``/``burst`` override the pace.

The message becomes one embed (colour by severity, fields, links as the embed
``url`` and as markdown) within Discord's limits: title ≤ 256, description
≤ 4096, ≤ 25 fields (name ≤ 256, value ≤ 1024), all text ≤ 6000 characters.
``allowed_mentions`` is empty, so ``@everyone`` in a build log pings nobody.

Posts use ``?wait=true`` so Discord answers with the created message; its id
is the ``message_id``, and a later send with ``ctx.update_of`` edits that
message in place (``PATCH .../messages/{id}``; an edit is idempotent). The
webhook URL is called through the versioned API (``/api/v10/``), whose 429
body carries ``retry_after`` in seconds.

Failures: 429 → retryable after the body's ``retry_after`` (or the
``Retry-After`` header); 5xx, timeouts and connection errors → retryable;
401/403 (bad token), 404 (webhook deleted, message gone), 400 (invalid
body, with Discord's error detail) → not retryable.

At-least-once corner: Discord's execute-webhook call has no idempotency key
(no ``nonce`` for webhooks) and a webhook cannot list its channel's history, so
a post whose response is lost (timeout after Discord stored it) is posted again
on the retry. Edits (``update_of``) are not affected.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from activities.channels.base import (
    Channel,
    ChannelError,
    SendContext,
    Sent,
    json_object,
    parse_retry_after,
    raise_for_http,
)
from activities.channels.render import SEVERITY_COLOR, trim
from workflows.models import Message

__all__ = ["DiscordChannel", "discord_payload", "LIMITS"]

LIMITS = {
    "title": 256,
    "description": 4096,
    "fields": 25,
    "field_name": 256,
    "field_value": 1024,
    "footer": 2048,
    "total": 6000,
    "content": 2000,
}
"""Discord's embed limits (characters; ``fields`` is a count)."""

_WEBHOOK_PATH = re.compile(r"^(?P<prefix>.*?)/api(?:/v\d+)?/webhooks/(?P<id>\d+)/(?P<token>[A-Za-z0-9_.-]+)/?$")
_API_VERSION = "v10"


def _link_text(text: str) -> str:
    """Markdown link text: brackets would end the link early."""
    return (text.strip() or "link").replace("[", "(").replace("]", ")")


def discord_payload(message: Message) -> dict[str, Any]:
    """The execute-webhook JSON body for ``message``: one embed, no mentions.

    Args:
        message: the channel-neutral message.

    Returns:
        A dict with ``embeds`` (one embed within Discord's limits) and ``allowed_mentions``.
    """
    links = [(link.text, link.url) for link in message.links]
    links += [(action.text or action.action_id, action.url) for action in message.actions if action.url]
    link_line = ""
    for text, url in links:  # whole links only, at most half the description
        item = f"[{_link_text(text)}]({url})"
        joined = f"{link_line} · {item}" if link_line else item
        if len(joined) > LIMITS["description"] // 2:
            break
        link_line = joined
    footer = message.severity + (f" · {message.source}" if message.source else "")

    embed: dict[str, Any] = {
        "title": trim(message.title.strip() or "(no title)", LIMITS["title"]),
        "color": SEVERITY_COLOR.get(message.severity, SEVERITY_COLOR["info"]),
        "footer": {"text": trim(footer, LIMITS["footer"])},
    }
    web = [url for _, url in links if url.startswith(("http://", "https://"))]
    if web:
        embed["url"] = web[0]
    fields: list[dict[str, Any]] = [
        {
            "name": trim(f.title.strip() or "-", LIMITS["field_name"]),
            "value": trim(f.value.strip() or "-", LIMITS["field_value"]),
            "inline": bool(f.short),
        }
        for f in message.fields[: LIMITS["fields"]]
    ]

    def total(description: str) -> int:
        return (
            len(embed["title"])
            + len(description)
            + len(embed["footer"]["text"])
            + sum(len(f["name"]) + len(f["value"]) for f in fields)
        )

    text = message.text.strip()

    def describe(budget: int) -> str:
        """Text (shortened to fit ``budget``) then the links line."""
        if not text:
            return trim(link_line, budget) if link_line else ""
        room = budget - (len(link_line) + 2 if link_line else 0)
        return "\n\n".join(part for part in (trim(text, max(room, 1)), link_line) if part)

    description = describe(LIMITS["description"])
    # Over the 6000-character budget: drop fields from the end, then shorten the text (links stay).
    while fields and total(description) > LIMITS["total"]:
        fields.pop()
    if total(description) > LIMITS["total"]:
        description = trim(describe(LIMITS["total"] - total("")), LIMITS["total"] - total(""))
    if description:
        embed["description"] = description
    if fields:
        embed["fields"] = fields
    return {"embeds": [embed], "allowed_mentions": {"parse": []}}


class DiscordChannel(Channel):
    """Posts (and edits) embeds through one Discord webhook."""

    type = "discord"
    required = ("webhook_url",)
    rate_per_second = 2.5  # Discord webhooks: about 5 requests per 2 seconds
    burst = 5

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        url = str(self.settings["webhook_url"]).strip()
        parts = urlsplit(url)
        match = _WEBHOOK_PATH.match(parts.path)
        if parts.scheme not in ("http", "https") or not parts.netloc or match is None:
            raise ChannelError(
                f"channel '{self.name}' (discord): webhook_url is not a Discord webhook URL "
                "(https://discord.com/api/webhooks/<id>/<token>)",
                retryable=False,
                kind="ChannelMisconfigured",
            )
        self._webhook_id = match["id"]
        self._base = (
            f"{parts.scheme}://{parts.netloc}{match['prefix']}/api/{_API_VERSION}/webhooks/"
            f"{match['id']}/{match['token']}"
        )
        self._pace_key = f"discord:{parts.netloc}/{match['id']}/{match['token']}"
        self._timeout = float(self.settings.get("timeout", 10))

    def pace_key(self) -> str:
        """Discord limits each webhook: instances sharing a webhook share a bucket."""
        return self._pace_key

    def _what(self, call: str) -> str:
        # Never the URL: it holds the webhook token, and this text lands in workflow history.
        return f"discord {call} (channel '{self.name}', webhook {self._webhook_id})"

    async def _request(self, verb: str, url: str, call: str, **kwargs: Any) -> httpx.Response:
        return await self.request(verb, url, self._what(call), timeout=self._timeout, **kwargs)

    def _check(self, response: httpx.Response, call: str) -> dict[str, Any]:
        """The JSON answer of a 2xx; raises a classified :class:`ChannelError` otherwise."""
        what = self._what(call)
        body = json_object(response)
        if response.status_code == 429:
            retry_after = body.get("retry_after")
            if not isinstance(retry_after, (int, float)) or isinstance(retry_after, bool) or retry_after < 0:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
            scope = " (global)" if body.get("global") else ""
            raise ChannelError(
                f"{what}: rate limited{scope} (429)",
                retryable=True,
                retry_after=None if retry_after is None else float(retry_after),
                kind="RateLimited",
            )
        if 400 <= response.status_code < 500 and response.status_code not in (408,) and body.get("message"):
            detail = f"{body.get('message')} (code {body.get('code')})"
            if body.get("errors"):
                detail += f": {_first_error(body['errors'])}"
            kind = "BadCredentials" if response.status_code in (401, 403) else "DiscordPermanent"
            raise ChannelError(f"{what}: rejected ({response.status_code}): {detail}", retryable=False, kind=kind)
        raise_for_http(response, what)
        return body

    async def send(self, message: Message, idempotency_key: str, attempt: int, ctx: SendContext | None = None) -> Sent:
        """Post ``message`` as an embed, or edit ``ctx.update_of`` in place.

        Returns:
            ``Sent`` with the Discord message id.

        Raises:
            ChannelError: classified as described in the module docstring.
        """
        ctx = ctx or SendContext(attempt=attempt)
        payload = discord_payload(message)
        if ctx.update_of:
            response = await self._request("PATCH", f"{self._base}/messages/{ctx.update_of}", "edit", json=payload)
            data = self._check(response, "edit")
            return Sent(message_id=str(data.get("id") or ctx.update_of))
        response = await self._request("POST", self._base, "execute", params={"wait": "true"}, json=payload)
        data = self._check(response, "execute")
        message_id = data.get("id")
        return Sent(message_id=str(message_id) if message_id else None)


def _first_error(errors: Any, path: str = "") -> str:
    """The first leaf of Discord's nested ``errors`` object, as ``path: message``."""
    if isinstance(errors, dict):
        leaf = errors.get("_errors")
        if isinstance(leaf, list) and leaf and isinstance(leaf[0], dict):
            return f"{path or 'body'}: {leaf[0].get('message', leaf[0])}"
        for key, value in errors.items():
            found = _first_error(value, f"{path}.{key}" if path else str(key))
            if found:
                return found
    return ""
