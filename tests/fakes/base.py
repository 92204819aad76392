"""The generic part of Tocsin's local API fakes: an aiohttp server, faults, records, waiters.

Each fake (Slack, Discord, Teams, PagerDuty, Twilio, a webhook receiver) is a
:class:`FakeServer` subclass that says which *route* a request is for
(:meth:`FakeServer.route`), how to read its body (:meth:`FakeServer.parse`) and
how the real API answers it (:meth:`FakeServer.handle`). Everything else lives
here: an :mod:`aiohttp.web` server on ``127.0.0.1`` running in its own event loop
in a background thread (so a fake works the same from synchronous tests, from
other threads and from async tests, whose loop it never blocks), recording of
every request, fault injection, and waiting for accepted items from sync or
async code. It never sleeps unless a delay is injected, and works from any
process that can reach the URL.

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

All state is guarded by one lock; every public method is thread-safe. The request, answer,
record and fault types live in :mod:`tests.fakes.wire` and are re-exported here.
"""

from __future__ import annotations

import abc
import asyncio
import json
import threading
import time
from collections import deque
from http import HTTPStatus
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web

from .wire import JSON, Fault, Recorded, Request, Response, fmt_seconds, retry_after_header

__all__ = ["FakeServer", "Recorded", "Request", "Response", "Fault", "JSON", "fmt_seconds", "retry_after_header"]

MAX_HEADER = 64 * 1024
"""Longest request line or header field accepted."""
MAX_BODY = 8 * 1024 * 1024
"""Largest request body accepted (larger ones get aiohttp's 413)."""
SHUTDOWN_GRACE = 0.05
"""Seconds :meth:`FakeServer.stop` lets in-flight (delayed) requests finish before it cuts them off."""


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
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None], int]] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
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

    def start(self) -> Self:
        """Start serving in a background thread; returns once the socket listens.

        Raises:
            RuntimeError: when the server could not listen within 10 seconds.
        """
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
        """Stop serving and close open connections (in-flight requests are cut off). Safe to call twice."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:  # closed meanwhile
                pass
        thread.join(10)
        self._thread = None
        self._loop = None
        self.port = 0

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        """The server thread: listen, report the port to :meth:`start`, serve until :meth:`stop`."""
        loop = asyncio.new_event_loop()
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._serve)
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE, max_line_size=MAX_HEADER, max_field_size=MAX_HEADER
        )
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", self._want_port, backlog=1024)
            loop.run_until_complete(site.start())
            self.port = runner.addresses[0][1]
        except BaseException as exc:  # any failure to listen is reported by start()
            self._start_error = exc
            self._started.set()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        self._loop = loop
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

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

    def reset_state(self) -> None:  # noqa: B027 - an optional hook, deliberately not abstract
        """Subclass hook: forget API state (lock held)."""

    # ------------------------------------------------------------------ faults

    def add_fault(self, fault: Fault, n: int = 1) -> None:
        """Queue ``n`` copies of a fault."""
        if n < 1:
            return
        with self._cond:
            for _ in range(n):
                self._faults.append(
                    Fault(**{**fault.__dict__, "headers": dict(fault.headers), "extra": dict(fault.extra)})
                )

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        body: Any = None,
        content_type: str | None = None,
        route: str | None = None,
    ) -> None:
        """The next ``n`` requests answer HTTP ``status`` with the API's error body (or ``body``)."""
        self.add_fault(Fault("status", route=route, status=status, body=body, content_type=content_type), n)

    def rate_limit_next(self, n: int = 1, retry_after: float | None = 1, *, route: str | None = None) -> None:
        """The next ``n`` requests are throttled the way the API does it (with its retry hint)."""
        self.add_fault(Fault("ratelimit", route=route, retry_after=retry_after), n)

    def respond_next(
        self,
        n: int = 1,
        status: int = 200,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
        route: str | None = None,
    ) -> None:
        """The next ``n`` requests get this exact answer (nothing takes effect)."""
        self.add_fault(
            Fault(
                "respond", route=route, status=status, body=body, content_type=content_type, headers=dict(headers or {})
            ),
            n,
        )

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
                raise TimeoutError(
                    f"{type(self).__name__}: {len(self._accepted)} of {count} {self.noun}(s) after {timeout}s"
                )
            return self._items()

    async def await_for(self, count: int, timeout: float = 10) -> list[Any]:
        """Like :meth:`wait_for`, for async code: never blocks the event loop."""
        loop = asyncio.get_running_loop()
        with self._cond:
            if len(self._accepted) >= count:
                return self._items()
            fut: asyncio.Future[None] = loop.create_future()
            waiter = (loop, fut, count)
            self._async_waiters.append(waiter)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
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
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "error"
        return Response(status, {"error": phrase})

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

    async def _serve(self, web_request: web.Request) -> web.StreamResponse:
        """The aiohttp handler for every path: dispatch, then answer (or drop the connection)."""
        raw = await web_request.read()
        headers: dict[str, str] = {}
        for name, value in web_request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        response = await self._dispatch(web_request.method.upper(), web_request.raw_path, headers, raw)
        if response is _DROP:
            if web_request.transport is not None:
                web_request.transport.abort()
            raise asyncio.CancelledError  # nothing to answer: the connection is gone
        return _web_response(response)

    async def _dispatch(self, verb: str, target: str, headers: dict[str, str], raw: bytes) -> Any:
        now = time.perf_counter()
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True)) if parts.query else {}
        request = Request(verb=verb, target=target, path=parts.path, query=query, headers=headers, raw=raw, time=now)
        route = self.route(request)
        record = Recorded(
            method=route or parts.path,
            headers=headers,
            body={},
            time=now,
            verb=verb,
            path=parts.path,
            query=query,
            raw=raw,
        )
        try:
            request.body = self.parse(request)
        except (ValueError, UnicodeDecodeError) as exc:
            request.parse_error = str(exc) or type(exc).__name__
        else:
            record.body = request.body if request.body is not None else {}
        if route is None:
            return self._record(record, self.not_found(request))
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
            return self._record(record, self.fault_response(fault, request))
        with self._cond:
            response = self.handle(request)
            if fault is not None:  # after_accept: it took effect, the answer is lost
                if self.accepted(request, response):
                    response = self.error_response(fault.status, request)
                else:  # rejected requests do not use up the fault
                    self._faults.appendleft(fault)
        return self._record(record, response)

    def _record(self, record: Recorded, response: Response) -> Response:
        """Note the answer on the record and keep it; returns ``response``."""
        record.status, record.response = response.status, response.payload
        with self._cond:
            self._requests.append(record)
        return response


def _web_response(response: Response) -> web.Response:
    """An aiohttp response for a fake's :class:`Response` (dicts and lists as compact JSON)."""
    payload = response.payload
    if payload is None or response.status == 204:
        data = b""
    elif isinstance(payload, bytes):
        data = payload
    elif isinstance(payload, str):
        data = payload.encode("utf-8")
    else:
        data = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    headers = {} if response.status == 204 else {"Content-Type": response.content_type}
    return web.Response(status=response.status, body=data, headers={**headers, **response.headers})


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
