"""What passes between a fake API and its server: requests, answers, records and injected faults.

:mod:`tests.fakes.base` re-exports everything here; fakes import it from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["JSON", "Fault", "Recorded", "Request", "Response", "fmt_seconds", "retry_after_header"]

JSON = "application/json; charset=utf-8"


def fmt_seconds(value: float) -> str:
    """``Retry-After`` text: whole seconds as ``3``, fractions as ``0.5``."""
    return str(int(value)) if float(value).is_integer() else str(value)


def retry_after_header(seconds: float | None) -> dict[str, str]:
    """A ``Retry-After`` header in whole seconds (rounded up), or none."""
    return {} if seconds is None else {"Retry-After": str(max(0, math.ceil(seconds)))}


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
