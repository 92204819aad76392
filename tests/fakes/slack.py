"""A local fake of the Slack Web API, for unit tests, integration tests and benchmarks.

It is a :class:`~tests.fakes.base.FakeServer` (an aiohttp server on 127.0.0.1
in a background thread), so it is fast, works from sync and async tests and from
any process that can reach the URL, and never sleeps unless a delay is injected.

Methods (``GET`` or ``POST /api/<method>``, like Slack): ``auth.test``,
``chat.postMessage``, ``chat.update``, ``conversations.history`` (newest first,
``oldest``/``latest``/``inclusive``, ``limit`` and ``cursor`` pagination with
``has_more`` and ``response_metadata.next_cursor``), ``conversations.list``.
Arguments are read from the query string and from a JSON or form-encoded body,
merged. Message ``ts`` values are wall-clock times (microseconds, strictly
increasing), as Slack's are, so ``oldest`` can be a real time.
Requests are validated the way Slack does (token, channel, text/blocks,
Block Kit limits, metadata) and answered with Slack's error codes.

Usage::

    with FakeSlack() as slack:
        settings = {"token": slack.token, "channel": "#builds", "api_url": slack.url}
        ...
        slack.wait_for_messages(1)

Fault injection (each injected fault is consumed by one API call, in order;
``method=`` restricts a fault to one API method)::

    slack.fail_next(2, status=503)      # HTTP 503 with a body
    slack.rate_limit_next(retry_after=3)
    slack.error_next(error="channel_not_found")
    slack.delay_next(seconds=0.5)
    slack.fail_after_post()             # message stored, answer 500 (lost response)

All state is guarded by one lock; every public method is thread-safe.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from .base import FakeServer, Fault, Recorded, Request, Response, fmt_seconds

__all__ = ["FakeSlack", "Recorded", "channel_id_for", "validate_blocks", "BOT_ID", "TEAM_ID", "USER_ID"]

BOT_ID = "B0FAKEBOT"
USER_ID = "U0FAKEBOT"
TEAM_ID = "T0FAKE"

_ID_RE = re.compile(r"^[CGD][A-Z0-9]{8,}$")


def channel_id_for(name: str) -> str:
    """The stable id the fake gives a channel name (``#builds`` or ``builds``); ids map to themselves."""
    if _ID_RE.match(name):
        return name
    bare = name[1:] if name.startswith("#") else name
    return "C" + hashlib.sha1(bare.encode("utf-8")).hexdigest()[:8].upper()


def _plain_text_len(obj: Any) -> int | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return None
    return len(obj["text"])


def validate_blocks(blocks: Any) -> str | None:
    """Check Block Kit the way Slack does (the parts Tocsin uses). ``None`` when valid, else why not."""
    if not isinstance(blocks, list):
        return "blocks must be an array"
    if len(blocks) > 50:
        return f"no more than 50 blocks allowed (got {len(blocks)})"
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str) or not block["type"]:
            return f"{where}: a block must be an object with a type"
        kind = block["type"]
        if kind == "header":
            text = block.get("text")
            n = _plain_text_len(text)
            if n is None or text.get("type") != "plain_text":
                return f"{where}: header needs a plain_text text object"
            if n == 0 or n > 150:
                return f"{where}.text: must be 1-150 characters (got {n})"
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                return f"{where}: section needs text or fields"
            if "text" in block:
                n = _plain_text_len(block["text"])
                if n is None or n == 0 or n > 3000:
                    return f"{where}.text: must be a text object of 1-3000 characters"
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or not fields:
                    return f"{where}.fields: must be a non-empty array"
                if len(fields) > 10:
                    return f"{where}.fields: no more than 10 items allowed (got {len(fields)})"
                for j, fld in enumerate(fields):
                    n = _plain_text_len(fld)
                    if n is None or n == 0 or n > 2000:
                        return f"{where}.fields[{j}]: must be a text object of 1-2000 characters"
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements or len(elements) > 10:
                return f"{where}.elements: must be an array of 1-10 items"
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements or len(elements) > 25:
                return f"{where}.elements: must be an array of 1-25 items"
            seen: set[str] = set()
            for j, el in enumerate(elements):
                if not isinstance(el, dict) or not isinstance(el.get("type"), str):
                    return f"{where}.elements[{j}]: an element must be an object with a type"
                if el["type"] == "button":
                    n = _plain_text_len(el.get("text"))
                    if n is None or n == 0 or n > 75:
                        return f"{where}.elements[{j}].text: must be 1-75 characters"
                    if "url" in el and (not isinstance(el["url"], str) or len(el["url"]) > 3000):
                        return f"{where}.elements[{j}].url: must be a string of at most 3000 characters"
                    if "value" in el and (not isinstance(el["value"], str) or len(el["value"]) > 2000):
                        return f"{where}.elements[{j}].value: must be a string of at most 2000 characters"
                action_id = el.get("action_id")
                if action_id is not None:
                    if not isinstance(action_id, str) or not action_id or len(action_id) > 255:
                        return f"{where}.elements[{j}].action_id: must be 1-255 characters"
                    if action_id in seen:
                        return f"{where}.elements[{j}].action_id: duplicate action_id '{action_id}'"
                    seen.add(action_id)
    return None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


class FakeSlack(FakeServer):
    """A fake Slack Web API on ``127.0.0.1`` in a background thread. See the module docstring."""

    noun = "message"

    def __init__(self, token: str = "xoxb-fake-token", port: int = 0, *, unknown_channels: Iterable[str] = ("#nope",)):
        super().__init__(port)
        self.token = token
        self.unknown_channels = set(unknown_channels)
        """Channel names or ids answered with ``channel_not_found``."""
        self._messages: list[dict[str, Any]] = self._accepted
        self._by_channel: dict[str, list[dict[str, Any]]] = {}
        self._last_micros = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL for slack-sdk (``base_url``) or the ``api_url`` setting."""
        return f"{self.base_url}/api/"

    # ------------------------------------------------------------------ state and faults

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted ``chat.postMessage`` calls, oldest first (a snapshot; edits by ``chat.update`` show)."""
        with self._cond:
            return [dict(m) for m in self._messages]

    def calls(self, method: str) -> list[Recorded]:
        """The recorded requests for one API method."""
        return super().calls(method)

    def reset_state(self) -> None:
        self._by_channel.clear()

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        body: Any = None,
        content_type: str | None = None,
        method: str | None = None,
    ) -> None:
        """The next ``n`` API calls answer HTTP ``status``.

        The body defaults to ``{"ok": false, "error": "fatal_error"}`` as JSON; pass ``body`` (a dict
        for JSON, or a string/bytes) and ``content_type`` to imitate a proxy page or a broken body.
        """
        super().fail_next(n, status, body=body, content_type=content_type, route=method)

    def rate_limit_next(self, n: int = 1, retry_after: int = 1, *, method: str | None = None) -> None:
        """The next ``n`` API calls answer 429 with ``Retry-After`` and ``{"ok": false, "error": "ratelimited"}``."""
        super().rate_limit_next(n, retry_after, route=method)

    def error_next(self, n: int = 1, error: str = "channel_not_found", *, method: str | None = None) -> None:
        """The next ``n`` API calls answer HTTP 200 ``{"ok": false, "error": error}``."""
        self.respond_next(n, 200, {"ok": False, "error": error}, route=method)

    def delay_next(self, n: int = 1, seconds: float = 1.0, *, method: str | None = None) -> None:
        """The next ``n`` API calls wait ``seconds`` (without blocking other requests), then answer normally."""
        super().delay_next(n, seconds, route=method)

    def fail_after_post(self, n: int = 1) -> None:
        """The next ``n`` valid ``chat.postMessage`` calls store the message but answer 500 (a lost response)."""
        self.fail_after_accept(n, route="chat.postMessage", status=500)

    # ------------------------------------------------------------------ waiting

    def wait_for_messages(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Block until at least ``count`` messages were accepted; return them all.

        Raises:
            TimeoutError: when fewer arrived within ``timeout`` seconds.
        """
        return self.wait_for(count, timeout)

    async def await_messages(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Like :meth:`wait_for_messages`, for async code: never blocks the event loop."""
        return await self.await_for(count, timeout)

    # ------------------------------------------------------------------ HTTP (FakeServer hooks)

    def route(self, request: Request) -> str | None:
        path = request.path
        return (path[len("/api/") :] or None) if path.startswith("/api/") else None

    def not_found(self, request: Request) -> Response:
        return Response(404, {"ok": False, "error": "not_found"})

    def parse(self, request: Request) -> dict[str, Any]:
        """Arguments from the query string, then a JSON or form-encoded body."""
        args: dict[str, Any] = dict(request.query)
        raw = request.raw
        if raw:
            if request.content_type == "application/json":
                data = json.loads(raw.decode("utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("JSON body must be an object")
                args.update(data)
            else:  # application/x-www-form-urlencoded, Slack's classic form
                form: dict[str, Any] = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
                for key in ("blocks", "attachments", "metadata"):
                    value = form.get(key)
                    if isinstance(value, str) and value[:1] in ("[", "{"):
                        try:
                            form[key] = json.loads(value)
                        except ValueError:
                            pass  # left as a string: reported as invalid_*_format
                args.update(form)
        return args

    def accepted(self, request: Request, response: Response) -> bool:
        return response.status == 200 and isinstance(response.payload, dict) and bool(response.payload.get("ok"))

    def error_response(self, status: int, request: Request) -> Response:
        return Response(status, {"ok": False, "error": "fatal_error"})

    def rate_limit_response(self, fault: Fault, request: Request) -> Response:
        retry_after = 1 if fault.retry_after is None else fault.retry_after
        return Response(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": fmt_seconds(retry_after)})

    def handle(self, request: Request) -> Response:
        if request.parse_error is not None:
            return Response(
                200,
                {
                    "ok": False,
                    "error": "invalid_json"
                    if "json" in request.headers.get("content-type", "")
                    else "invalid_form_data",
                },
            )
        return self._handle(request.route, request.headers, request.body, request.time)

    # ------------------------------------------------------------------ API methods (lock held)

    def _auth_error(self, headers: dict[str, str], args: dict[str, Any]) -> str | None:
        auth = headers.get("authorization", "")
        token: str | None = None
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                return "invalid_auth"
            token = value.strip()
        elif args.get("token"):
            token = str(args["token"])
        if token is None:
            return "not_authed"
        return None if token == self.token else "invalid_auth"

    def _resolve_channel(self, value: Any, *, need_id: bool = False) -> str | None:
        if not isinstance(value, str) or not value.strip():
            return None
        value = value.strip()
        if value in self.unknown_channels:
            return None
        if need_id and not _ID_RE.match(value):
            return None
        cid = channel_id_for(value)
        return None if cid in self.unknown_channels else cid

    def _next_ts(self) -> str:
        micros = max(int(time.time() * 1_000_000), self._last_micros + 1)
        self._last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _handle(self, method: str, headers: dict[str, str], args: dict[str, Any], now: float) -> Response:
        error = self._auth_error(headers, args)
        if error:
            return Response(200, {"ok": False, "error": error})
        handler = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.history": self._history,
            "conversations.list": self._list,
        }.get(method)
        if handler is None:
            return Response(200, {"ok": False, "error": "unknown_method", "req_method": method})
        return handler(args, now)

    def _auth_test(self, args: dict[str, Any], now: float) -> Response:
        return Response(
            200,
            {
                "ok": True,
                "url": "https://fake.slack.com/",
                "team": "Fake",
                "user": "tocsin",
                "team_id": TEAM_ID,
                "user_id": USER_ID,
                "bot_id": BOT_ID,
            },
        )

    @staticmethod
    def _invalid(error: str, detail: str) -> Response:
        return Response(
            200,
            {"ok": False, "error": error, "errors": [detail], "response_metadata": {"messages": [f"[ERROR] {detail}"]}},
        )

    def _check_content(self, args: dict[str, Any], *, require: bool = True) -> Response | None:
        text, blocks = args.get("text"), args.get("blocks")
        if blocks is not None:
            if isinstance(blocks, str):
                if blocks.strip() in ("", "[]"):
                    blocks = None
                else:
                    return self._invalid("invalid_blocks_format", "blocks must be a JSON array")
            elif blocks == []:
                blocks = None
        if require and not text and blocks is None:
            return Response(200, {"ok": False, "error": "no_text"})
        if text is not None and not isinstance(text, str):
            return self._invalid("invalid_arguments", "text must be a string")
        if isinstance(text, str) and len(text) > 40_000:
            return Response(200, {"ok": False, "error": "msg_too_long"})
        if blocks is not None:
            why = validate_blocks(blocks)
            if why:
                return self._invalid("invalid_blocks", why)
        metadata = args.get("metadata")
        if metadata is not None:
            if not isinstance(metadata, dict):
                return self._invalid("invalid_metadata_format", "metadata must be a JSON object")
            if (
                not isinstance(metadata.get("event_type"), str)
                or not metadata["event_type"]
                or not isinstance(metadata.get("event_payload"), dict)
            ):
                return self._invalid(
                    "invalid_metadata_format", "metadata needs event_type (string) and event_payload (object)"
                )
        return None

    def _post_message(self, args: dict[str, Any], now: float) -> Response:
        channel_name = args.get("channel")
        cid = self._resolve_channel(channel_name)
        if cid is None:
            return Response(200, {"ok": False, "error": "channel_not_found"})
        bad = self._check_content(args)
        if bad is not None:
            return bad
        blocks = args.get("blocks")
        ts = self._next_ts()
        message = {
            "channel": cid,
            "channel_name": channel_name,
            "text": args.get("text") or "",
            "blocks": blocks if isinstance(blocks, list) and blocks else None,
            "metadata": args.get("metadata"),
            "ts": ts,
            "thread_ts": args.get("thread_ts"),
            "received": now,
        }
        self._messages.append(message)
        self._by_channel.setdefault(cid, []).append(message)
        self._notify()
        return Response(200, {"ok": True, "channel": cid, "ts": ts, "message": self._public(message, True)})

    @staticmethod
    def _public(message: dict[str, Any], with_metadata: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "message",
            "subtype": "bot_message",
            "bot_id": BOT_ID,
            "user": USER_ID,
            "ts": message["ts"],
            "text": message["text"],
        }
        if message.get("blocks"):
            out["blocks"] = message["blocks"]
        if message.get("thread_ts"):
            out["thread_ts"] = message["thread_ts"]
        if message.get("edited"):
            out["edited"] = {"user": USER_ID, "ts": message["edited"]}
        if with_metadata and message.get("metadata"):
            out["metadata"] = {
                "event_type": message["metadata"]["event_type"],
                "event_payload": message["metadata"]["event_payload"],
            }
        return out

    def _update(self, args: dict[str, Any], now: float) -> Response:
        cid = self._resolve_channel(args.get("channel"))
        if cid is None:
            return Response(200, {"ok": False, "error": "channel_not_found"})
        ts = args.get("ts")
        target = next((m for m in self._by_channel.get(cid, []) if m["ts"] == ts), None)
        if target is None:
            return Response(200, {"ok": False, "error": "message_not_found"})
        bad = self._check_content(args, require=False)
        if bad is not None:
            return bad
        if "text" in args:
            target["text"] = args.get("text") or ""
        if "blocks" in args:
            blocks = args.get("blocks")
            target["blocks"] = blocks if isinstance(blocks, list) and blocks else None
        if args.get("metadata") is not None:
            target["metadata"] = args["metadata"]
        target["edited"] = self._next_ts()
        target["updated"] = now
        self._notify()
        return Response(
            200, {"ok": True, "channel": cid, "ts": ts, "text": target["text"], "message": self._public(target, True)}
        )

    @staticmethod
    def _cursor(ts: str) -> str:
        """An opaque cursor, as Slack's (``next_ts:<ts>`` in base64)."""
        return base64.b64encode(f"next_ts:{ts}".encode()).decode()

    @staticmethod
    def _cursor_ts(cursor: str) -> float | None:
        try:
            kind, _, ts = base64.b64decode(cursor.encode(), validate=True).decode().partition(":")
            return float(ts) if kind == "next_ts" else None
        except ValueError:
            return None

    def _history(self, args: dict[str, Any], now: float) -> Response:
        cid = self._resolve_channel(args.get("channel"), need_id=True)
        if cid is None:
            return Response(200, {"ok": False, "error": "channel_not_found"})
        try:
            limit = int(args.get("limit") or 100)
            oldest = float(args.get("oldest") or 0)
            latest = float(args["latest"]) if args.get("latest") else float("inf")
        except (TypeError, ValueError):
            return self._invalid("invalid_arguments", "limit, oldest and latest must be numbers")
        limit = max(1, min(limit, 999))
        inclusive = _truthy(args.get("inclusive"))
        start = float("inf")
        if args.get("cursor"):
            found = self._cursor_ts(str(args["cursor"]))
            if found is None:
                return Response(200, {"ok": False, "error": "invalid_cursor"})
            start = found
        with_metadata = _truthy(args.get("include_all_metadata"))

        def wanted(ts: float) -> bool:
            above = ts >= oldest if inclusive else ts > oldest
            below = ts <= latest if inclusive else ts < latest
            return above and below and ts <= start

        stored = [m for m in reversed(self._by_channel.get(cid, [])) if wanted(float(m["ts"]))]
        page = [self._public(m, with_metadata) for m in stored[:limit]]
        has_more = len(stored) > limit
        return Response(
            200,
            {
                "ok": True,
                "messages": page,
                "has_more": has_more,
                "pin_count": 0,
                "response_metadata": {"next_cursor": self._cursor(stored[limit]["ts"]) if has_more else ""},
            },
        )

    def _list(self, args: dict[str, Any], now: float) -> Response:
        """Channels that hold messages (the fake's channels exist once used), one page."""
        names: dict[str, str] = {}
        for message in self._messages:
            name = str(message.get("channel_name") or "")
            if name.startswith("#"):
                names[message["channel"]] = name[1:]
        channels = [
            {"id": cid, "name": name, "is_channel": True, "is_archived": False} for cid, name in sorted(names.items())
        ]
        return Response(200, {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}})
