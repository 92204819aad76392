"""The generic part of Tocsin's local API fakes: an HTTP/1.1 server, faults, records, waiters.

Each fake (Slack, Discord, Teams, PagerDuty, Twilio, a webhook receiver) is a
:class:`FakeServer` subclass that says which *route* a request is for
(:meth:`FakeServer.route`), how to read its body (:meth:`FakeServer.parse`) and
how the real API answers it (:meth:`FakeServer.handle`). Everything else lives
here: a minimal asyncio server on ``127.0.0.1`` in a background thread
(keep-alive, ``Content-Length`` and chunked bodies), recording of every request,
fault injection, and waiting for accepted items from sync or async code. It
depends on the standard library only, never sleeps unless a delay is injected,
and works from any process that can reach the URL.

Fault injection (each fault is consumed by one request, in order; ``route=``
restricts a fault to one route)::

    fake.fail_next(2, status=503)            # the API's own 5xx body, or pass body=/content_type=
    fake.rate_limit_next(retry_after=3)      # the API's own 429 (and retry hint)
    fake.respond_next(status=400, body={...})  # any canned answer
    fake.delay_next(seconds=0.5)             # answer late (a client timeout), without blocking others
    fake.drop_next()                         # close the connection without answering (transport error)
    fake.fail_after_accept()                 # the request takes effect, the answer is a 5xx (lost response)

Reading what happened::

    fake.requests           # every request: Recorded(route, verb, path, query, headers, body, raw, status, response)
    fake.calls("execute")   # the requests for one route
    fake.wait_for(1)        # block until one item was accepted (await fake.await_for(1) from async code)

All state is guarded by one lock; every public method is thread-safe.
"""

from __future__ import annotations

import abc
import asyncio
import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["FakeServer", "Recorded", "Request", "Response", "Fault", "JSON", "REASONS", "fmt_seconds",
           "retry_after_header"]

JSON = "application/json; charset=utf-8"
REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
    410: "Gone", 413: "Payload Too Large", 415: "Unsupported Media Type", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}
MAX_HEADER = 64 * 1024
MAX_BODY = 8 * 1024 * 1024


def fmt_seconds(value: float) -> str:
    """``Retry-After`` text: whole seconds as ``3``, fractions as ``0.5``."""
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass
class Recorded:
    """One request as a fake saw it."""

    method: str
    """The route name (the API method for Slack, e.g. ``chat.postMessage``); the path when unknown."""
    headers: dict[str, str]
    """Request headers, keys lower-cased."""
    body: Any
    """The parsed body (what the fake's ``parse`` returned; ``{}`` when it could not be parsed)."""
    time: float
    """``time.perf_counter()`` when the request was read."""
    status: int = 0
    """The HTTP status answered (0: the connection was dropped)."""
    response: Any = None
    """The answer (a dict for JSON answers, else text)."""
    verb: str = "POST"
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""
    """The body bytes exactly as received (signatures are computed over these)."""

    @property
    def route(self) -> str:
        """Alias of :attr:`method` for fakes whose routes are not API methods."""
        return self.method


@dataclass
class Request:
    """What :meth:`FakeServer.handle` is given."""

    verb: str
    target: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    time: float
    route: str = ""
    params: dict[str, str] = field(default_factory=dict)
    """Values the fake's ``route`` picked out of the path (ids, tokens)."""
    body: Any = None
    """What ``parse`` returned."""
    parse_error: str | None = None
    """Why ``parse`` failed, if it did (``body`` is then None)."""

    @property
    def content_type(self) -> str:
        """The media type, lower-cased, without parameters."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


@dataclass
class Response:
    """An answer: ``payload`` is a dict/list (sent as JSON), text or bytes."""

    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON


@dataclass
class Fault:
    """One injected fault (see the module docstring)."""

    kind: str  # "status" | "ratelimit" | "respond" | "delay" | "drop" | "after_accept"
    route: str | None = None
    status: int = 500
    retry_after: float | None = 1
    seconds: float = 0.0
    body: Any = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


_DROP = object()


class FakeServer(abc.ABC):
    """Base class of the local API fakes. See the module docstring.

    Subclasses implement :meth:`route`, :meth:`handle` (called with the lock held) and,
    where the API has its own shapes, :meth:`parse`, :meth:`error_response`,
    :meth:`rate_limit_response`, :meth:`not_found` and :meth:`accepted`.
    """

    noun = "item"
    """What :meth:`wait_for` counts, for error messages."""

    def __init__(self, port: int = 0):
        self._want_port = port
        self.port: int = 0
        self._cond = threading.Condition()
        self._requests: list[Recorded] = []
        self._accepted: list[Any] = []
        self._faults: deque[Fault] = deque()
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future, int]] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._transports: set[asyncio.Transport] = set()
        self._started = threading.Event()
        self._start_error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (raises when not started)."""
        if not self.port:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The URL a client is configured with (subclasses add their API's path)."""
        return self.base_url

    def start(self) -> "FakeServer":
        """Start serving in a background thread; returns once the socket listens."""
        if self._thread is not None:
            return self
        self._started.clear()
        self._start_error = None
        name = type(self).__name__
        self._thread = threading.Thread(target=self._run, name=f"fake-{name.lower()}", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError(f"{name} did not start within 10s")
        if self._start_error is not None:
            self._thread.join(1)
            self._thread = None
            raise RuntimeError(f"{name} failed to start: {self._start_error!r}") from self._start_error
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

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", self._want_port, limit=MAX_HEADER, backlog=1024))
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

    # ------------------------------------------------------------------ records

    @property
    def requests(self) -> list[Recorded]:
        """Every request so far (a snapshot)."""
        with self._cond:
            return list(self._requests)

    def calls(self, route: str) -> list[Recorded]:
        """The recorded requests for one route."""
        with self._cond:
            return [r for r in self._requests if r.method == route]

    def reset(self) -> None:
        """Forget requests, accepted items and pending faults (ids keep increasing)."""
        with self._cond:
            self._requests.clear()
            self._accepted.clear()
            self._faults.clear()
            self.reset_state()

    def reset_state(self) -> None:
        """Subclass hook: forget API state (lock held)."""

    # ------------------------------------------------------------------ faults

    def add_fault(self, fault: Fault, n: int = 1) -> None:
        """Queue ``n`` copies of a fault."""
        if n < 1:
            return
        with self._cond:
            for _ in range(n):
                self._faults.append(Fault(**{**fault.__dict__, "headers": dict(fault.headers),
                                             "extra": dict(fault.extra)}))

    def fail_next(self, n: int = 1, status: int = 500, *, body: Any = None, content_type: str | None = None,
                  route: str | None = None) -> None:
        """The next ``n`` requests answer HTTP ``status`` with the API's error body (or ``body``)."""
        self.add_fault(Fault("status", route=route, status=status, body=body, content_type=content_type), n)

    def rate_limit_next(self, n: int = 1, retry_after: float | None = 1, *, route: str | None = None) -> None:
        """The next ``n`` requests are throttled the way the API does it (with its retry hint)."""
        self.add_fault(Fault("ratelimit", route=route, retry_after=retry_after), n)

    def respond_next(self, n: int = 1, status: int = 200, body: Any = None, *, headers: dict[str, str] | None = None,
                     content_type: str | None = None, route: str | None = None) -> None:
        """The next ``n`` requests get this exact answer (nothing takes effect)."""
        self.add_fault(Fault("respond", route=route, status=status, body=body, content_type=content_type,
                             headers=dict(headers or {})), n)

    def delay_next(self, n: int = 1, seconds: float = 1.0, *, route: str | None = None) -> None:
        """The next ``n`` requests wait ``seconds`` (without blocking other requests), then answer normally."""
        self.add_fault(Fault("delay", route=route, seconds=seconds), n)

    def drop_next(self, n: int = 1, *, route: str | None = None) -> None:
        """The next ``n`` requests are read, then the connection is closed without an answer."""
        self.add_fault(Fault("drop", route=route), n)

    def fail_after_accept(self, n: int = 1, *, route: str | None = None, status: int = 500) -> None:
        """The next ``n`` requests that succeed take effect but answer ``status`` (a lost response).

        Requests the API rejects do not use the fault up.
        """
        self.add_fault(Fault("after_accept", route=route, status=status), n)

    def _take_fault(self, route: str) -> Fault | None:
        # caller holds the lock
        for i, fault in enumerate(self._faults):
            if fault.route is None or fault.route == route:
                del self._faults[i]
                return fault
        return None

    # ------------------------------------------------------------------ accepted items and waiting

    def _accept(self, item: Any) -> None:
        """Record an accepted item and wake waiters (lock held)."""
        self._accepted.append(item)
        self._notify()

    def _snapshot(self, item: Any) -> Any:
        return dict(item) if isinstance(item, dict) else item

    def _items(self) -> list[Any]:
        # caller holds the lock
        return [self._snapshot(item) for item in self._accepted]

    def wait_for(self, count: int, timeout: float = 10) -> list[Any]:
        """Block until at least ``count`` items were accepted; return them all.

        Raises:
            TimeoutError: when fewer arrived within ``timeout`` seconds.
        """
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._accepted) >= count, timeout):
                raise TimeoutError(f"{type(self).__name__}: {len(self._accepted)} of {count} {self.noun}(s) "
                                   f"after {timeout}s")
            return self._items()

    async def await_for(self, count: int, timeout: float = 10) -> list[Any]:
        """Like :meth:`wait_for`, for async code: never blocks the event loop."""
        loop = asyncio.get_running_loop()
        with self._cond:
            if len(self._accepted) >= count:
                return self._items()
            fut: asyncio.Future = loop.create_future()
            waiter = (loop, fut, count)
            self._async_waiters.append(waiter)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            with self._cond:
                have = len(self._accepted)
            raise TimeoutError(f"{type(self).__name__}: {have} of {count} {self.noun}(s) after {timeout}s") from None
        finally:
            with self._cond:
                if waiter in self._async_waiters:
                    self._async_waiters.remove(waiter)
        with self._cond:
            return self._items()

    def _notify(self) -> None:
        # caller holds the lock
        self._cond.notify_all()
        if not self._async_waiters:
            return
        have = len(self._accepted)
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

    # ------------------------------------------------------------------ what subclasses implement

    def route(self, request: Request) -> str | None:
        """The route name for a request (fill ``request.params`` as needed); None answers :meth:`not_found`."""
        return request.path

    def parse(self, request: Request) -> Any:
        """The body as the API reads it. Raise ``ValueError`` for a body it cannot read.

        The default reads JSON when the content type says so, form bodies as a dict, else the raw text.
        """
        if not request.raw:
            return None
        if request.content_type == "application/json":
            return json.loads(request.raw.decode("utf-8"))
        if request.content_type == "application/x-www-form-urlencoded":
            return dict(parse_qsl(request.raw.decode("utf-8"), keep_blank_values=True))
        return request.raw.decode("utf-8")

    @abc.abstractmethod
    def handle(self, request: Request) -> Response:
        """Answer a request like the real API (lock held)."""

    def accepted(self, request: Request, response: Response) -> bool:
        """Whether a response means the request took effect (for :meth:`fail_after_accept`)."""
        return 200 <= response.status < 300

    def not_found(self, request: Request) -> Response:
        """The answer for a path the API does not have."""
        return Response(404, {"error": "not_found"})

    def error_response(self, status: int, request: Request) -> Response:
        """The API's own answer for a server error ``status``."""
        return Response(status, {"error": REASONS.get(status, "error")})

    def rate_limit_response(self, fault: Fault, request: Request) -> Response:
        """The API's own 429 (override to use its body and retry hint)."""
        headers = {} if fault.retry_after is None else {"Retry-After": fmt_seconds(fault.retry_after)}
        return Response(429, {"error": "rate_limited"}, headers)

    def fault_response(self, fault: Fault, request: Request) -> Response:
        """The answer for an injected ``status``/``ratelimit``/``respond`` fault."""
        if fault.kind == "ratelimit":
            return self.rate_limit_response(fault, request)
        if fault.kind == "respond":
            body = fault.body
            ctype = fault.content_type or (JSON if isinstance(body, (dict, list)) else "text/plain; charset=utf-8")
            return Response(fault.status, body if body is not None else "", dict(fault.headers), ctype)
        if fault.body is None and fault.content_type is None:
            return self.error_response(fault.status, request)
        body = fault.body if fault.body is not None else ""
        ctype = fault.content_type or (JSON if isinstance(body, (dict, list)) else "text/html; charset=utf-8")
        return Response(fault.status, body, content_type=ctype)

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
                    await self._write(writer, Response(431, {"error": "headers_too_large"}), False)
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    verb, target, version = lines[0].split(" ", 2)
                except ValueError:
                    await self._write(writer, Response(400, {"error": "bad_request"}), False)
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
                    await self._write(writer, Response(400, {"error": str(exc)}), False)
                    return
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                response = await self._dispatch(verb.upper(), target, headers, body)
                if response is _DROP:
                    return
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
                if total > MAX_BODY:
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
        if n < 0 or n > MAX_BODY:
            raise ValueError("request_too_large")
        return await reader.readexactly(n) if n else b""

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, response: Response, keep_alive: bool) -> None:
        payload = response.payload
        if payload is None:
            data = b""
        elif isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode("utf-8")
        else:
            data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        reason = REASONS.get(response.status, "Status")
        head = [f"HTTP/1.1 {response.status} {reason}"]
        if response.status != 204:
            head.append(f"Content-Type: {response.content_type}")
            head.append(f"Content-Length: {len(data)}")
        else:
            data = b""
        head.append(f"Connection: {'keep-alive' if keep_alive else 'close'}")
        head.extend(f"{k}: {v}" for k, v in response.headers.items())
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        await writer.drain()

    async def _dispatch(self, verb: str, target: str, headers: dict[str, str], raw: bytes) -> Any:
        now = time.perf_counter()
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True)) if parts.query else {}
        request = Request(verb=verb, target=target, path=parts.path, query=query, headers=headers, raw=raw, time=now)
        route = self.route(request)
        record = Recorded(method=route or parts.path, headers=headers, body={}, time=now, verb=verb,
                          path=parts.path, query=query, raw=raw)
        try:
            request.body = self.parse(request)
        except (ValueError, UnicodeDecodeError) as exc:
            request.parse_error = str(exc) or type(exc).__name__
        else:
            record.body = request.body if request.body is not None else {}
        if route is None:
            response = self.not_found(request)
            record.status, record.response = response.status, response.payload
            with self._cond:
                self._requests.append(record)
            return response
        request.route = route

        with self._cond:
            fault = self._take_fault(route)
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "drop":
            with self._cond:
                self._requests.append(record)
            return _DROP

        if fault is not None and fault.kind != "after_accept":
            response = self.fault_response(fault, request)
        else:
            with self._cond:
                response = self.handle(request)
                if fault is not None:  # after_accept: it took effect, the answer is lost
                    if self.accepted(request, response):
                        response = self.error_response(fault.status, request)
                    else:  # rejected requests do not use up the fault
                        self._faults.appendleft(fault)
        record.status, record.response = response.status, response.payload
        with self._cond:
            self._requests.append(record)
        return response


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def retry_after_header(seconds: float | None) -> dict[str, str]:
    """A ``Retry-After`` header in whole seconds (rounded up), or none."""
    return {} if seconds is None else {"Retry-After": str(max(0, math.ceil(seconds)))}

