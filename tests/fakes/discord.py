"""A local fake of Discord's webhook API (execute, edit and get a webhook message).

Routes (with or without an API version, ``/api/v10/webhooks/...`` or ``/api/webhooks/...``)::

    POST  /api/webhooks/{id}/{token}[?wait=true]       "execute"  204, or 200 + message with wait=true
    PATCH /api/webhooks/{id}/{token}/messages/{mid}    "edit"     200 + message
    GET   /api/webhooks/{id}/{token}/messages/{mid}    "get"      200 + message

Validated like Discord: the webhook id and token (404 ``Unknown Webhook`` /
401 ``Invalid Webhook Token``), a JSON body, content or embeds present
(``Cannot send an empty message``), content ≤ 2000, ≤ 10 embeds, embed limits
(title 256, description 4096, 25 fields, field name 256 / value 1024 and both
non-empty, footer 2048, 6000 characters in all), colour 0..0xFFFFFF, http(s)
URLs. Invalid bodies get Discord's 400 ``Invalid Form Body`` (code 50035) with
its nested ``errors`` object.

Usage::

    with FakeDiscord() as discord:
        settings = {"webhook_url": discord.webhook_url}
        ...
        discord.messages        # what the channel shows, edits applied

Faults (see :mod:`tests.fakes.base`): ``rate_limit_next(retry_after=0.5)``
answers 429 with ``{"message": "You are being rate limited.", "retry_after":
0.5, "global": false}`` and ``Retry-After: 1``; ``fail_next``, ``delay_next``,
``drop_next``, ``fail_after_accept`` as for every fake.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .base import FakeServer, Fault, Request, Response

__all__ = ["FakeDiscord", "validate_message"]

_PATH = re.compile(
    r"^/api(?:/v(?P<version>\d+))?/webhooks/(?P<id>\d+)/(?P<token>[^/]+)"
    r"(?:/messages/(?P<mid>[^/]+))?/?$"
)


def _err(errors: dict[str, Any], path: list[str], code: str, message: str) -> None:
    node = errors
    for key in path:
        node = node.setdefault(key, {})
    node.setdefault("_errors", []).append({"code": code, "message": message})


def _max_len(errors: dict[str, Any], path: list[str], value: Any, limit: int) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        _err(errors, path, "STRING_TYPE_CONVERT", "Could not interpret value as string.")
    elif len(value) > limit:
        _err(errors, path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _url(errors: dict[str, Any], path: list[str], value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not re.match(r"^https?://[^\s/]+", value):
        _err(errors, path, "URL_TYPE_INVALID_URL", "Not a well formed URL.")


def validate_message(body: Any, *, editing: bool = False) -> tuple[int, dict[str, Any]] | None:
    """Check an execute/edit body as Discord does. ``None`` when valid, else (code, error body)."""
    if not isinstance(body, dict):
        return 50109, {"message": "The request body contains invalid JSON.", "code": 50109}
    errors: dict[str, Any] = {}
    content = body.get("content")
    _max_len(errors, ["content"], content, 2000)
    embeds = body.get("embeds")
    if embeds is not None:
        if not isinstance(embeds, list):
            _err(errors, ["embeds"], "LIST_TYPE_CONVERT", "Must be an array.")
            embeds = []
        elif len(embeds) > 10:
            _err(errors, ["embeds"], "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        total = 0
        for i, embed in enumerate(embeds):
            where = ["embeds", str(i)]
            if not isinstance(embed, dict):
                _err(errors, where, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
                continue
            _max_len(errors, [*where, "title"], embed.get("title"), 256)
            _max_len(errors, [*where, "description"], embed.get("description"), 4096)
            _url(errors, [*where, "url"], embed.get("url"))
            color = embed.get("color")
            if color is not None and (
                not isinstance(color, int) or isinstance(color, bool) or not 0 <= color <= 0xFFFFFF
            ):
                _err(
                    errors, [*where, "color"], "NUMBER_TYPE_MAX", "int value should be less than or equal to 16777215."
                )
            footer = embed.get("footer")
            if footer is not None:
                if not isinstance(footer, dict) or not isinstance(footer.get("text"), str) or not footer["text"]:
                    _err(errors, [*where, "footer", "text"], "BASE_TYPE_REQUIRED", "This field is required")
                else:
                    _max_len(errors, [*where, "footer", "text"], footer["text"], 2048)
                    total += len(footer["text"])
            fields = embed.get("fields") or []
            if not isinstance(fields, list):
                _err(errors, [*where, "fields"], "LIST_TYPE_CONVERT", "Must be an array.")
                fields = []
            if len(fields) > 25:
                _err(errors, [*where, "fields"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
            for j, fld in enumerate(fields):
                fwhere = [*where, "fields", str(j)]
                if not isinstance(fld, dict):
                    _err(errors, fwhere, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
                    continue
                for key, limit in (("name", 256), ("value", 1024)):
                    value = fld.get(key)
                    if not isinstance(value, str) or not value.strip():
                        _err(errors, [*fwhere, key], "BASE_TYPE_REQUIRED", "This field is required")
                    else:
                        _max_len(errors, [*fwhere, key], value, limit)
                        total += len(value)
            for key in ("title", "description"):
                if isinstance(embed.get(key), str):
                    total += len(embed[key])
        if total > 6000:
            _err(errors, ["embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
    mentions = body.get("allowed_mentions")
    if mentions is not None and (not isinstance(mentions, dict) or not isinstance(mentions.get("parse", []), list)):
        _err(errors, ["allowed_mentions"], "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
    if errors:
        return 50035, {"message": "Invalid Form Body", "code": 50035, "errors": errors}
    if not editing and not content and not embeds:
        return 50006, {"message": "Cannot send an empty message", "code": 50006}
    return None


class FakeDiscord(FakeServer):
    """A fake Discord webhook on ``127.0.0.1``. See the module docstring.

    Attributes:
        webhook_id: the webhook's snowflake id.
        token: the webhook token.
        channel_id: the channel messages land in.
    """

    noun = "message"

    def __init__(
        self,
        webhook_id: str = "112233445566778899",
        token: str = "fake-webhook-token_AbC",
        port: int = 0,
        *,
        channel_id: str = "998877665544332211",
    ):
        super().__init__(port)
        self.webhook_id = webhook_id
        self.token = token
        self.channel_id = channel_id
        self._by_id: dict[str, dict[str, Any]] = {}
        self._seq = 0

    @property
    def webhook_url(self) -> str:
        """The webhook URL as Discord shows it (unversioned), for the ``webhook_url`` setting."""
        return f"{self.base_url}/api/webhooks/{self.webhook_id}/{self.token}"

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Messages posted, oldest first, edits applied: ``id``, ``content``, ``embeds``, ``allowed_mentions``,
        ``edited`` (count), ``received`` (perf_counter)."""
        with self._cond:
            return self._items()

    def _snapshot(self, item: Any) -> Any:
        return {**item, "embeds": [dict(e) for e in item.get("embeds") or []]}

    def reset_state(self) -> None:
        self._by_id.clear()

    # ------------------------------------------------------------------ FakeServer hooks

    def route(self, request: Request) -> str | None:
        match = _PATH.match(request.path)
        if match is None:
            return None
        request.params = {k: v for k, v in match.groupdict().items() if v is not None}
        if match["mid"] is None:
            return "execute" if request.verb == "POST" else "method_not_allowed"
        return {"PATCH": "edit", "GET": "get"}.get(request.verb, "method_not_allowed")

    def not_found(self, request: Request) -> Response:
        return Response(404, {"message": "404: Not Found", "code": 0})

    def error_response(self, status: int, request: Request) -> Response:
        return Response(status, {"message": f"{status}: Internal Server Error", "code": 0})

    def rate_limit_response(self, fault: Fault, request: Request) -> Response:
        retry_after = 1.0 if fault.retry_after is None else float(fault.retry_after)
        return Response(
            429,
            {"message": "You are being rate limited.", "retry_after": retry_after, "global": False},
            {
                "Retry-After": str(max(1, math.ceil(retry_after))),
                "X-RateLimit-Scope": "shared",
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
            },
        )

    def handle(self, request: Request) -> Response:
        if request.route == "method_not_allowed":
            return Response(405, {"message": "405: Method Not Allowed", "code": 0})
        if request.params.get("id") != self.webhook_id:
            return Response(404, {"message": "Unknown Webhook", "code": 10015})
        if request.params.get("token") != self.token:
            return Response(401, {"message": "Invalid Webhook Token", "code": 50027})
        if request.route == "get":
            return self._get(request)
        if request.content_type != "application/json" and request.raw:
            return Response(400, {"message": "Cannot send an empty message", "code": 50006})
        if request.parse_error is not None:
            return Response(400, {"message": "The request body contains invalid JSON.", "code": 50109})
        bad = validate_message(request.body if request.body is not None else {}, editing=request.route == "edit")
        if bad is not None:
            return Response(400, bad[1])
        if request.route == "edit":
            return self._edit(request)
        return self._execute(request)

    # ------------------------------------------------------------------ API (lock held)

    def _public(self, message: dict[str, Any]) -> dict[str, Any]:
        out = {
            "id": message["id"],
            "type": 0,
            "channel_id": self.channel_id,
            "webhook_id": self.webhook_id,
            "content": message["content"],
            "embeds": [{"type": "rich", **e} for e in message["embeds"]],
            "attachments": [],
            "mentions": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "flags": 0,
            "timestamp": "2024-01-01T00:00:00.000000+00:00",
            "author": {"id": self.webhook_id, "username": "Tocsin", "bot": True, "discriminator": "0000"},
            "edited_timestamp": "2024-01-01T00:00:01.000000+00:00" if message["edited"] else None,
        }
        return out

    def _execute(self, request: Request) -> Response:
        body = request.body
        self._seq += 1
        message_id = str(1_200_000_000_000_000_000 + self._seq)
        message = {
            "id": message_id,
            "content": body.get("content") or "",
            "embeds": [dict(e) for e in body.get("embeds") or []],
            "allowed_mentions": body.get("allowed_mentions"),
            "edited": 0,
            "received": request.time,
        }
        self._by_id[message_id] = message
        self._accept(message)
        if request.query.get("wait", "").lower() == "true":
            return Response(200, self._public(message))
        return Response(204)

    def _edit(self, request: Request) -> Response:
        message = self._by_id.get(request.params["mid"])
        if message is None:
            return Response(404, {"message": "Unknown Message", "code": 10008})
        body = request.body
        content = (body.get("content") or "") if "content" in body else message["content"]
        embeds = [dict(e) for e in body.get("embeds") or []] if "embeds" in body else message["embeds"]
        if not content and not embeds:
            return Response(400, {"message": "Cannot send an empty message", "code": 50006})
        message["content"], message["embeds"] = content, embeds
        if "allowed_mentions" in body:
            message["allowed_mentions"] = body.get("allowed_mentions")
        message["edited"] += 1
        self._notify()
        return Response(200, self._public(message))

    def _get(self, request: Request) -> Response:
        message = self._by_id.get(request.params["mid"])
        if message is None:
            return Response(404, {"message": "Unknown Message", "code": 10008})
        return Response(200, self._public(message))
