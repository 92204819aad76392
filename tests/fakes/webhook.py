"""A local webhook receiver that checks Tocsin's signed deliveries the way a real receiver should.

Route: ``POST /hooks/tocsin`` ("deliver"). For each request it:

1. requires ``Content-Type: application/json`` and the three headers
   (``X-Tocsin-Timestamp``, ``X-Tocsin-Signature``, ``X-Tocsin-Idempotency-Key``) → else 400;
2. rejects a timestamp more than ``tolerance`` seconds from now → 401;
3. recomputes ``sha256=HMAC-SHA256(secret, f"{timestamp}.{raw body}")`` and compares in constant time → 401;
4. requires a JSON object with the documented fields, ``version`` "1", the body's
   ``idempotency_key`` equal to the header → else 400;
5. dedupes on the idempotency header: a repeat answers 200 ``{"ok": true, "duplicate": true}``
   and is not stored again; a first delivery answers 200 ``{"ok": true, "duplicate": false}``.

Usage::

    with FakeWebhookReceiver(secret="s3cret") as hook:
        settings = {"url": hook.url, "secret": hook.secret}
        ...
        hook.deliveries      # accepted first deliveries: {"key", "body", "headers", "received"}

Faults as for every fake (:mod:`tests.fakes.base`); ``rate_limit_next`` answers
429 with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from .base import FakeServer, Request, Response

__all__ = ["FakeWebhookReceiver", "verify_signature", "REQUIRED_FIELDS"]

REQUIRED_FIELDS = (
    "version",
    "idempotency_key",
    "title",
    "text",
    "severity",
    "fields",
    "links",
    "labels",
    "source",
    "action",
    "sent_at",
)


def verify_signature(
    secret: bytes, timestamp: str, raw_body: bytes, signature: str, *, tolerance: float = 300, now: float | None = None
) -> str | None:
    """A receiver's check of one delivery. ``None`` when authentic, else why not."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return "timestamp is not an integer"
    now = time.time() if now is None else now
    if abs(now - stamp) > tolerance:
        return f"timestamp outside the {tolerance:g}s tolerance"
    expected = "sha256=" + hmac.new(secret, timestamp.encode("ascii") + b"." + raw_body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
        return "signature mismatch"
    return None


class FakeWebhookReceiver(FakeServer):
    """A strict, deduplicating receiver of Tocsin webhooks. See the module docstring.

    Attributes:
        secret: the shared signing secret.
        tolerance: seconds a timestamp may differ from the receiver's clock.
    """

    noun = "delivery"

    def __init__(self, secret: str = "whsec-fake-secret", port: int = 0, *, tolerance: float = 300):
        super().__init__(port)
        self.secret = secret
        self.tolerance = tolerance
        self._seen: dict[str, dict[str, Any]] = {}

    @property
    def url(self) -> str:
        """The receiver's endpoint, for the ``url`` setting."""
        return f"{self.base_url}/hooks/tocsin"

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        """First deliveries per idempotency key, oldest first: ``key``, ``body``, ``headers``, ``raw``, ``received``."""
        with self._cond:
            return self._items()

    def reset_state(self) -> None:
        self._seen.clear()

    def route(self, request: Request) -> str | None:
        return "deliver" if request.path.rstrip("/") == "/hooks/tocsin" else None

    def not_found(self, request: Request) -> Response:
        return Response(404, {"ok": False, "error": "no such hook"})

    def error_response(self, status: int, request: Request) -> Response:
        return Response(status, {"ok": False, "error": "receiver failed"})

    def parse(self, request: Request) -> Any:
        return json.loads(request.raw.decode("utf-8")) if request.raw else None

    def handle(self, request: Request) -> Response:
        if request.verb != "POST":
            return Response(405, {"ok": False, "error": "POST only"})
        if request.content_type != "application/json":
            return Response(415, {"ok": False, "error": "Content-Type must be application/json"})
        h = request.headers
        missing = [
            name for name in ("x-tocsin-timestamp", "x-tocsin-signature", "x-tocsin-idempotency-key") if not h.get(name)
        ]
        if missing:
            return Response(400, {"ok": False, "error": f"missing header(s): {', '.join(missing)}"})
        why = verify_signature(
            self.secret.encode("utf-8"),
            h["x-tocsin-timestamp"],
            request.raw,
            h["x-tocsin-signature"],
            tolerance=self.tolerance,
        )
        if why:
            return Response(401, {"ok": False, "error": why})
        body = request.body
        if request.parse_error is not None or not isinstance(body, dict):
            return Response(400, {"ok": False, "error": "body must be a JSON object"})
        absent = [name for name in REQUIRED_FIELDS if name not in body]
        if absent:
            return Response(400, {"ok": False, "error": f"missing field(s): {', '.join(absent)}"})
        if body["version"] != "1":
            return Response(400, {"ok": False, "error": f"unsupported version {body['version']!r}"})
        key = h["x-tocsin-idempotency-key"]
        if body["idempotency_key"] != key:
            return Response(400, {"ok": False, "error": "idempotency_key differs from its header"})
        if key in self._seen:
            return Response(200, {"ok": True, "duplicate": True})
        delivery = {"key": key, "body": body, "headers": dict(h), "raw": request.raw, "received": request.time}
        self._seen[key] = delivery
        self._accept(delivery)
        return Response(200, {"ok": True, "duplicate": False})
