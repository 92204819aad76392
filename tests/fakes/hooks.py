"""A local fake of a deployer's hooks, a service's health endpoint and its metrics.

One HTTP server on 127.0.0.1 (standard library only, background thread):

- ``POST /deploy``, ``POST /rollback`` — record the JSON body; answer
  ``deploy_status`` / ``rollback_status`` (200 by default), or fail the next N
  calls with :meth:`FakeHooks.fail_next`;
- ``GET /health`` — answer ``health_status`` (200 by default);
- ``GET /metrics`` — Prometheus text exposition of
  ``http_requests_total{code="200"|"500"}`` counters the test controls
  (:meth:`add_requests`), for a real Prometheus to scrape;
- ``GET /api/v1/query`` — a fake Prometheus instant-query API answering from
  ``query_values`` (``name → value``, ``None`` for an empty result, or an
  ``Exception`` instance for an error), matched by substring of the query.

Usage::

    with FakeHooks() as hooks:
        env = {"hooks": {"deploy": {"url": hooks.url + "/deploy"}, "health": [hooks.url + "/health"]}}
        ...
        assert [c.body["weight"] for c in hooks.calls_to("/deploy")] == [10, 50, 100]
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeHooks", "HookCall"]


@dataclass
class HookCall:
    """One request the fake received."""

    method: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeHooks:
    """Deploy/rollback hooks, health endpoint, metrics and a fake Prometheus query API."""

    def __init__(self) -> None:
        self.calls: list[HookCall] = []
        self.deploy_status = 200
        self.rollback_status = 200
        self.health_status = 200
        self.query_values: dict[str, Any] = {}
        self.counters: dict[str, float] = {"200": 0.0, "500": 0.0}
        self._fail: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ control

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, path: str, times: int = 1, status: int = 503) -> None:
        """Answer the next ``times`` calls to ``path`` with ``status``."""
        with self._lock:
            self._fail.setdefault(path, []).extend([status] * times)

    def add_requests(self, code: str, count: float) -> None:
        """Raise the ``http_requests_total{code=...}`` counter."""
        with self._lock:
            self.counters[code] = self.counters.get(code, 0.0) + count

    def calls_to(self, path: str) -> list[HookCall]:
        """Recorded calls to one path, in order."""
        with self._lock:
            return [c for c in self.calls if c.path == path]

    # ------------------------------------------------------------ server

    def __enter__(self) -> FakeHooks:
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-hooks", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    """Answers one request for the :class:`FakeHooks` its server belongs to."""

    protocol_version = "HTTP/1.1"
    server: _Server

    @property
    def fake(self) -> FakeHooks:
        return self.server.fake

    def log_message(self, *args: Any) -> None:  # quiet
        return

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = (
            body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
        )
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _injected(self, path: str) -> int | None:
        with self.fake._lock:
            queue = self.fake._fail.get(path)
            return queue.pop(0) if queue else None

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        path = urlsplit(self.path).path
        with self.fake._lock:
            self.fake.calls.append(HookCall("POST", path, body, dict(self.headers)))
        status = self._injected(path)
        if status is None:
            status = {"/deploy": self.fake.deploy_status, "/rollback": self.fake.rollback_status}.get(path, 404)
        self._send(status, {"ok": 200 <= status < 300})

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        if path == "/metrics":
            with self.fake._lock:
                lines = ["# HELP http_requests_total Requests served.", "# TYPE http_requests_total counter"]
                lines += [
                    f'http_requests_total{{code="{code}"}} {value}'
                    for code, value in sorted(self.fake.counters.items())
                ]
            self._send(200, "\n".join(lines) + "\n", "text/plain; version=0.0.4")
            return
        with self.fake._lock:
            self.fake.calls.append(HookCall("GET", path, parse_qs(parts.query), dict(self.headers)))
        status = self._injected(path)
        if path == "/health":
            code = status if status is not None else self.fake.health_status
            self._send(code, {"status": "ok" if code < 300 else "down"})
        elif path == "/api/v1/query":
            query = parse_qs(parts.query).get("query", [""])[0]
            self._query(query, status)
        else:
            self._send(404, {"error": "not found"})

    def _query(self, query: str, status: int | None) -> None:
        if status is not None:
            self._send(status, {"status": "error", "errorType": "server", "error": "injected"})
            return
        with self.fake._lock:
            matches = [v for k, v in self.fake.query_values.items() if k in query]
        if not matches:
            self._send(200, {"status": "success", "data": {"resultType": "vector", "result": []}})
            return
        value = matches[0]
        if isinstance(value, Exception):
            self._send(400, {"status": "error", "errorType": "bad_data", "error": str(value)})
        elif value is None:
            self._send(200, {"status": "success", "data": {"resultType": "vector", "result": []}})
        else:
            self._send(
                200,
                {
                    "status": "success",
                    "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, str(value)]}]},
                },
            )


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that knows its fake."""

    daemon_threads = True

    def __init__(self, fake: FakeHooks):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake
