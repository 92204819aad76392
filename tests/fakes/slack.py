"""A local fake of the Slack Web API, for unit tests, integration tests and benchmarks.

It speaks just enough HTTP/1.1 (keep-alive, ``Content-Length`` and chunked
bodies) on 127.0.0.1 from a minimal asyncio server running in a background
thread, so it is fast, works from any process that can reach the URL, and never
sleeps unless a delay is injected. It depends on the standard library only.

Methods (``GET`` or ``POST /api/<method>``, like Slack): ``auth.test``,
``chat.postMessage``, ``chat.update``, ``conversations.history``. Arguments
are read from the query string and from a JSON or form-encoded body, merged.
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

import asyncio
import hashlib
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlsplit

__all__ = ["FakeSlack", "Recorded", "channel_id_for", "validate_blocks", "BOT_ID", "TEAM_ID", "USER_ID"]

BOT_ID = "B0FAKEBOT"
USER_ID = "U0FAKEBOT"
TEAM_ID = "T0FAKE"

_ID_RE = re.compile(r"^[CGD][A-Z0-9]{8,}$")
_JSON = "application/json; charset=utf-8"
_REASONS = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 408: "Request Timeout", 413: "Payload Too Large",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}
_MAX_HEADER = 64 * 1024
_MAX_BODY = 8 * 1024 * 1024


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


@dataclass
class Recorded:
    """One API request as the fake saw it."""

    method: str
    """The API method, e.g. ``chat.postMessage``."""
    headers: dict[str, str]
    """Request headers, keys lower-cased."""
    body: dict[str, Any]
    """Arguments: query string, then JSON or form body (form values that hold JSON are parsed)."""
    time: float
    """``time.perf_counter()`` when the request was read."""
    status: int = 0
    """The HTTP status answered."""
    response: Any = None
    """The answer (a dict for JSON answers)."""
    verb: str = "POST"


@dataclass
class _Fault:
    kind: str  # "status" | "ratelimit" | "error" | "delay" | "after_post"
    method: str | None = None
    status: int = 500
    retry_after: int = 1
    error: str = ""
    seconds: float = 0.0
    body: Any = None
    content_type: str | None = None


@dataclass
class _Response:
    status: int
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = _JSON


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


class FakeSlack:
    """A fake Slack Web API on ``127.0.0.1`` in a background thread. See the module docstring."""

    def __init__(self, token: str = "xoxb-fake-token", port: int = 0, *,
                 unknown_channels: Iterable[str] = ("#nope",)):
        self.token = token
        self._want_port = port
        self.unknown_channels = set(unknown_channels)
        """Channel names or ids answered with ``channel_not_found``."""
        self.port: int = 0
        self._cond = threading.Condition()
        self._requests: list[Recorded] = []
        self._messages: list[dict[str, Any]] = []
        self._by_channel: dict[str, list[dict[str, Any]]] = {}
        self._faults: deque[_Fault] = deque()
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future, int]] = []
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._transports: set[asyncio.Transport] = set()
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Base URL for slack-sdk (``base_url``) or the ``api_url`` setting."""
        if not self.port:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self.port}/api/"

    def start(self) -> "FakeSlack":
        """Start serving in a background thread; returns once the socket listens."""
        if self._thread is not None:
            return self
        self._started.clear()
        self._start_error = None
        self._thread = threading.Thread(target=self._run, name="fake-slack", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("FakeSlack did not start within 10s")
        if self._start_error is not None:
            self._thread.join(1)
            self._thread = None
            raise RuntimeError(f"FakeSlack failed to start: {self._start_error!r}") from self._start_error
        return self

    def stop(self) -> None:
        """Stop serving and close open connections. Safe to call twice."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._shutdown)
            except RuntimeError:
                pass
        thread.join(10)
        self._thread = None
        self._loop = None
        self.port = 0

    def __enter__(self) -> "FakeSlack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", self._want_port, limit=_MAX_HEADER, backlog=1024))
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._start_error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for transport in list(self._transports):
                transport.abort()
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

    def _shutdown(self) -> None:
        assert self._loop is not None
        if self._server is not None:
            self._server.close()
        for transport in list(self._transports):
            transport.abort()
        self._loop.stop()

    # ------------------------------------------------------------------ state and faults

    @property
    def requests(self) -> list[Recorded]:
        """Every API request so far (a snapshot)."""
        with self._cond:
            return list(self._requests)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted ``chat.postMessage`` calls, oldest first (a snapshot; edits by ``chat.update`` show)."""
        with self._cond:
            return [dict(m) for m in self._messages]

    def calls(self, method: str) -> list[Recorded]:
        """The recorded requests for one API method."""
        with self._cond:
            return [r for r in self._requests if r.method == method]

    def reset(self) -> None:
        """Forget requests, messages and pending faults (ts keep increasing)."""
        with self._cond:
            self._requests.clear()
            self._messages.clear()
            self._by_channel.clear()
            self._faults.clear()

    def _add_faults(self, n: int, fault: _Fault) -> None:
        if n < 1:
            return
        with self._cond:
            for _ in range(n):
                self._faults.append(_Fault(**fault.__dict__))

    def fail_next(self, n: int = 1, status: int = 500, *, body: Any = None, content_type: str | None = None,
                  method: str | None = None) -> None:
        """The next ``n`` API calls answer HTTP ``status``.

        The body defaults to ``{"ok": false, "error": "fatal_error"}`` as JSON; pass ``body`` (a dict
        for JSON, or a string/bytes) and ``content_type`` to imitate a proxy page or a broken body.
        """
        self._add_faults(n, _Fault("status", method=method, status=status, body=body, content_type=content_type))

    def rate_limit_next(self, n: int = 1, retry_after: int = 1, *, method: str | None = None) -> None:
        """The next ``n`` API calls answer 429 with ``Retry-After`` and ``{"ok": false, "error": "ratelimited"}``."""
        self._add_faults(n, _Fault("ratelimit", method=method, retry_after=retry_after))

    def error_next(self, n: int = 1, error: str = "channel_not_found", *, method: str | None = None) -> None:
        """The next ``n`` API calls answer HTTP 200 ``{"ok": false, "error": error}``."""
        self._add_faults(n, _Fault("error", method=method, error=error))

    def delay_next(self, n: int = 1, seconds: float = 1.0, *, method: str | None = None) -> None:
        """The next ``n`` API calls wait ``seconds`` (without blocking other requests), then answer normally."""
        self._add_faults(n, _Fault("delay", method=method, seconds=seconds))

    def fail_after_post(self, n: int = 1) -> None:
        """The next ``n`` valid ``chat.postMessage`` calls store the message but answer 500 (a lost response)."""
        self._add_faults(n, _Fault("after_post", method="chat.postMessage", status=500))

    def _take_fault(self, method: str) -> _Fault | None:
        # caller holds the lock
        for i, fault in enumerate(self._faults):
            if fault.method is None or fault.method == method:
                del self._faults[i]
                return fault
        return None

    # ------------------------------------------------------------------ waiting

    def wait_for_messages(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Block until at least ``count`` messages were accepted; return them all.

        Raises:
            TimeoutError: when fewer arrived within ``timeout`` seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"FakeSlack: {len(self._messages)} of {count} message(s) after {timeout}s")
            return [dict(m) for m in self._messages]

    async def await_messages(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Like :meth:`wait_for_messages`, for async code: never blocks the event loop."""
        loop = asyncio.get_running_loop()
        with self._cond:
            if len(self._messages) >= count:
                return [dict(m) for m in self._messages]
            fut: asyncio.Future = loop.create_future()
            waiter = (loop, fut, count)
            self._async_waiters.append(waiter)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            with self._cond:
                have = len(self._messages)
            raise TimeoutError(f"FakeSlack: {have} of {count} message(s) after {timeout}s") from None
        finally:
            with self._cond:
                if waiter in self._async_waiters:
                    self._async_waiters.remove(waiter)
        with self._cond:
            return [dict(m) for m in self._messages]

    def _notify(self) -> None:
        # caller holds the lock
        self._cond.notify_all()
        if not self._async_waiters:
            return
        have = len(self._messages)
        keep = []
        for loop, fut, count in self._async_waiters:
            if have >= count:
                try:
                    loop.call_soon_threadsafe(_resolve, fut)
                except RuntimeError:  # that loop is closed
                    pass
            else:
                keep.append((loop, fut, count))
        self._async_waiters[:] = keep

    # ------------------------------------------------------------------ HTTP

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = writer.transport
        self._transports.add(transport)  # type: ignore[arg-type]
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    await self._write(writer, _Response(431, {"ok": False, "error": "headers_too_large"}), False)
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    verb, target, version = lines[0].split(" ", 2)
                except ValueError:
                    await self._write(writer, _Response(400, {"ok": False, "error": "bad_request"}), False)
                    return
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if not line:
                        continue
                    name, _, value = line.partition(":")
                    key = name.strip().lower()
                    value = value.strip()
                    headers[key] = f"{headers[key]}, {value}" if key in headers else value
                connection = headers.get("connection", "").lower()
                keep_alive = ("close" not in connection) if version == "HTTP/1.1" else ("keep-alive" in connection)
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                try:
                    body = await self._read_body(reader, headers)
                except ValueError as exc:
                    await self._write(writer, _Response(400, {"ok": False, "error": str(exc)}), False)
                    return
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                response = await self._dispatch(verb.upper(), target, headers, body)
                await self._write(writer, response, keep_alive)
                if not keep_alive:
                    return
        except asyncio.CancelledError:
            return  # shutting down; returning (not re-raising) keeps asyncio.streams quiet on 3.11
        except Exception:  # noqa: BLE001 - a broken connection must not kill the server
            return
        finally:
            self._transports.discard(transport)  # type: ignore[arg-type]
            try:
                writer.close()
            except Exception:  # noqa: BLE001
                pass

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            total = 0
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                        pass
                    return b"".join(parts)
                total += size
                if total > _MAX_BODY:
                    raise ValueError("request_too_large")
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
        length = headers.get("content-length")
        if not length:
            return b""
        try:
            n = int(length)
        except ValueError:
            raise ValueError("bad_content_length") from None
        if n < 0 or n > _MAX_BODY:
            raise ValueError("request_too_large")
        return await reader.readexactly(n) if n else b""

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, response: _Response, keep_alive: bool) -> None:
        payload = response.payload
        if isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode("utf-8")
        else:
            data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        reason = _REASONS.get(response.status, "Status")
        head = [
            f"HTTP/1.1 {response.status} {reason}",
            f"Content-Type: {response.content_type}",
            f"Content-Length: {len(data)}",
            f"Connection: {'keep-alive' if keep_alive else 'close'}",
        ]
        head.extend(f"{k}: {v}" for k, v in response.headers.items())
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        await writer.drain()

    @staticmethod
    def _parse_args(target: str, headers: dict[str, str], raw: bytes) -> dict[str, Any]:
        query = urlsplit(target).query
        args: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        if raw:
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype == "application/json":
                data = json.loads(raw.decode("utf-8"))
                if not isinstance(data, dict):
                    raise ValueError("JSON body must be an object")
                args.update(data)
            else:  # application/x-www-form-urlencoded, Slack's classic form
                form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
                for key in ("blocks", "attachments", "metadata"):
                    value = form.get(key)
                    if isinstance(value, str) and value[:1] in ("[", "{"):
                        try:
                            form[key] = json.loads(value)
                        except ValueError:
                            pass  # left as a string: reported as invalid_*_format
                args.update(form)
        return args

    async def _dispatch(self, verb: str, target: str, headers: dict[str, str], raw: bytes) -> _Response:
        now = time.perf_counter()
        path = urlsplit(target).path
        method = path[len("/api/"):] if path.startswith("/api/") else ""
        try:
            args = self._parse_args(target, headers, raw)
        except (ValueError, UnicodeDecodeError):
            args = None
        record = Recorded(method=method or path, headers=headers, body=args if args is not None else {},
                          time=now, verb=verb)
        if not method:
            record.status, record.response = 404, {"ok": False, "error": "not_found"}
            with self._cond:
                self._requests.append(record)
            return _Response(404, record.response)

        with self._cond:
            fault = self._take_fault(method)
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            fault = None

        if fault is not None and fault.kind != "after_post":
            response = self._fault_response(fault)
        elif args is None:
            response = _Response(200, {"ok": False, "error": "invalid_json" if "json" in headers.get(
                "content-type", "") else "invalid_form_data"})
        else:
            with self._cond:
                response = self._handle(method, headers, args, now)
                if fault is not None:  # after_post: the message landed, the answer is lost
                    if response.status == 200 and isinstance(response.payload, dict) and response.payload.get("ok"):
                        response = _Response(500, {"ok": False, "error": "fatal_error"})
                    else:  # rejected posts do not use up the fault
                        self._faults.appendleft(fault)
        record.status, record.response = response.status, response.payload
        with self._cond:
            self._requests.append(record)
        return response

    @staticmethod
    def _fault_response(fault: _Fault) -> _Response:
        if fault.kind == "ratelimit":
            return _Response(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(fault.retry_after)})
        if fault.kind == "error":
            return _Response(200, {"ok": False, "error": fault.error})
        body = fault.body if fault.body is not None else {"ok": False, "error": "fatal_error"}
        ctype = fault.content_type or (_JSON if isinstance(body, dict) else "text/html; charset=utf-8")
        return _Response(fault.status, body, content_type=ctype)

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
        self._seq += 1
        micros = 1_700_000_000_000_000 + self._seq * 100
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _handle(self, method: str, headers: dict[str, str], args: dict[str, Any], now: float) -> _Response:
        error = self._auth_error(headers, args)
        if error:
            return _Response(200, {"ok": False, "error": error})
        handler = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.history": self._history,
            "conversations.list": self._list,
        }.get(method)
        if handler is None:
            return _Response(200, {"ok": False, "error": "unknown_method", "req_method": method})
        return handler(args, now)

    def _auth_test(self, args: dict[str, Any], now: float) -> _Response:
        return _Response(200, {"ok": True, "url": "https://fake.slack.com/", "team": "Fake", "user": "tocsin",
                               "team_id": TEAM_ID, "user_id": USER_ID, "bot_id": BOT_ID})

    @staticmethod
    def _invalid(error: str, detail: str) -> _Response:
        return _Response(200, {"ok": False, "error": error, "errors": [detail],
                               "response_metadata": {"messages": [f"[ERROR] {detail}"]}})

    def _check_content(self, args: dict[str, Any], *, require: bool = True) -> _Response | None:
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
            return _Response(200, {"ok": False, "error": "no_text"})
        if text is not None and not isinstance(text, str):
            return self._invalid("invalid_arguments", "text must be a string")
        if isinstance(text, str) and len(text) > 40_000:
            return _Response(200, {"ok": False, "error": "msg_too_long"})
        if blocks is not None:
            why = validate_blocks(blocks)
            if why:
                return self._invalid("invalid_blocks", why)
        metadata = args.get("metadata")
        if metadata is not None:
            if not isinstance(metadata, dict):
                return self._invalid("invalid_metadata_format", "metadata must be a JSON object")
            if not isinstance(metadata.get("event_type"), str) or not metadata["event_type"] \
                    or not isinstance(metadata.get("event_payload"), dict):
                return self._invalid("invalid_metadata_format",
                                     "metadata needs event_type (string) and event_payload (object)")
        return None

    def _post_message(self, args: dict[str, Any], now: float) -> _Response:
        channel_name = args.get("channel")
        cid = self._resolve_channel(channel_name)
        if cid is None:
            return _Response(200, {"ok": False, "error": "channel_not_found"})
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
        return _Response(200, {"ok": True, "channel": cid, "ts": ts, "message": self._public(message, True)})

    @staticmethod
    def _public(message: dict[str, Any], with_metadata: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "subtype": "bot_message", "bot_id": BOT_ID, "user": USER_ID,
                               "ts": message["ts"], "text": message["text"]}
        if message.get("blocks"):
            out["blocks"] = message["blocks"]
        if message.get("thread_ts"):
            out["thread_ts"] = message["thread_ts"]
        if message.get("edited"):
            out["edited"] = {"user": USER_ID, "ts": message["edited"]}
        if with_metadata and message.get("metadata"):
            out["metadata"] = {"event_type": message["metadata"]["event_type"],
                               "event_payload": message["metadata"]["event_payload"]}
        return out

    def _update(self, args: dict[str, Any], now: float) -> _Response:
        cid = self._resolve_channel(args.get("channel"))
        if cid is None:
            return _Response(200, {"ok": False, "error": "channel_not_found"})
        ts = args.get("ts")
        target = next((m for m in self._by_channel.get(cid, []) if m["ts"] == ts), None)
        if target is None:
            return _Response(200, {"ok": False, "error": "message_not_found"})
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
        return _Response(200, {"ok": True, "channel": cid, "ts": ts, "text": target["text"],
                               "message": self._public(target, True)})

    def _history(self, args: dict[str, Any], now: float) -> _Response:
        cid = self._resolve_channel(args.get("channel"), need_id=True)
        if cid is None:
            return _Response(200, {"ok": False, "error": "channel_not_found"})
        try:
            limit = int(args.get("limit") or 100)
        except (TypeError, ValueError):
            return self._invalid("invalid_limit", "limit must be an integer")
        limit = max(1, min(limit, 999))
        with_metadata = _truthy(args.get("include_all_metadata"))
        stored = self._by_channel.get(cid, [])
        newest_first = [self._public(m, with_metadata) for m in reversed(stored)]
        page = newest_first[:limit]
        has_more = len(newest_first) > limit
        return _Response(200, {"ok": True, "messages": page, "has_more": has_more, "pin_count": 0,
                               "response_metadata": {"next_cursor": ""}})


    def _list(self, args: dict[str, Any], now: float) -> _Response:
        """Channels that hold messages (the fake's channels exist once used), one page."""
        names: dict[str, str] = {}
        for message in self._messages:
            name = str(message.get("channel_name") or "")
            if name.startswith("#"):
                names[message["channel"]] = name[1:]
        channels = [{"id": cid, "name": name, "is_channel": True, "is_archived": False}
                    for cid, name in sorted(names.items())]
        return _Response(200, {"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}})


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
