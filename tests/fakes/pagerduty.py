"""A local fake of the PagerDuty Events API v2 (``POST /v2/enqueue``), with alert state.

Validated like PagerDuty: ``Content-Type: application/json``; ``routing_key``
(32 characters, one of the fake's keys); ``event_action`` (trigger,
acknowledge, resolve); ``dedup_key`` ≤ 255 characters (required to acknowledge
or resolve); for a trigger ``payload.summary`` (≤ 1024), ``payload.source``,
``payload.severity`` (critical, error, warning, info), ``custom_details`` an
object, ``links``/``images`` arrays with ``href``/``src``; body ≤ 512 KB.
Answers: 202 ``{"status": "success", "message": "Event processed",
"dedup_key": ...}``; 400 ``{"status": "invalid event", "message": "Event
object is invalid", "errors": [...]}``; 429 ``{"status": "throttle event",
...}`` without ``Retry-After`` (``rate_limit_next``), 5xx via ``fail_next``.

Alert semantics as documented by PagerDuty: a trigger opens an alert for its
``(routing_key, dedup_key)`` or, when one is open, adds a trigger to it; an
acknowledge/resolve acts on the open alert or is dropped (still 202); after a
resolve, a trigger with the same key opens a new alert.

Usage::

    with FakePagerDuty() as pd:
        settings = {"routing_key": pd.routing_key, "api_url": pd.url}
        ...
        pd.alerts                # [{"dedup_key", "status", "summary", "severity", "triggers", "log", ...}]
        pd.alert("dedup-key")    # the latest alert with that key
        pd.events                # accepted events, oldest first
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from .base import FakeServer, Fault, Request, Response

__all__ = ["FakePagerDuty", "validate_event"]

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
MAX_BYTES = 512 * 1024


def validate_event(event: Any) -> list[str]:
    """PagerDuty's complaints about an event (empty when valid). Routing keys are checked by the fake."""
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors: list[str] = []
    key = event.get("routing_key")
    if not isinstance(key, str) or not key:
        errors.append("'routing_key' is missing or blank")
    elif len(key) != 32:
        errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is invalid (must be one of: trigger acknowledge resolve)")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append("'dedup_key' is required for acknowledge and resolve events")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object")
        else:
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary.strip():
                errors.append("'payload.summary' is missing or blank")
            elif len(summary) > 1024:
                errors.append("'payload.summary' is too long (max 1024 characters)")
            source = payload.get("source")
            if not isinstance(source, str) or not source.strip():
                errors.append("'payload.source' is missing or blank")
            if payload.get("severity") not in SEVERITIES:
                errors.append("'payload.severity' is invalid (must be one of: critical error warning info)")
            for name in ("component", "group", "class"):
                if name in payload and not isinstance(payload[name], str):
                    errors.append(f"'payload.{name}' must be a string")
            if "custom_details" in payload and not isinstance(payload["custom_details"], (dict, str)):
                errors.append("'payload.custom_details' must be an object")
        for name, required in (("links", "href"), ("images", "src")):
            items = event.get(name)
            if items is None:
                continue
            if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get(required), str) for i in items
            ):
                errors.append(f"'{name}' must be an array of objects with '{required}'")
    return errors


class FakePagerDuty(FakeServer):
    """A fake Events API v2 endpoint with PagerDuty's alert lifecycle. See the module docstring.

    Attributes:
        routing_keys: the integration keys the fake accepts; ``routing_key`` is the first.
    """

    noun = "event"

    def __init__(self, port: int = 0, *, routing_keys: Iterable[str] = ("R0UT1NGKEY0123456789abcdefABCDEF",)):
        super().__init__(port)
        self.routing_keys = list(routing_keys)
        self._alerts: list[dict[str, Any]] = []
        self._open: dict[tuple[str, str], dict[str, Any]] = {}
        self._seq = 0

    @property
    def routing_key(self) -> str:
        """The first accepted integration key."""
        return self.routing_keys[0]

    @property
    def url(self) -> str:
        """The enqueue URL, for the ``api_url`` setting."""
        return f"{self.base_url}/v2/enqueue"

    @property
    def events(self) -> list[dict[str, Any]]:
        """Accepted events (as sent), oldest first."""
        with self._cond:
            return [copy.deepcopy(e) for e in self._accepted]

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """Every alert opened, oldest first: ``number``, ``dedup_key``, ``routing_key``, ``status``
        (triggered/acknowledged/resolved), ``summary``, ``severity``, ``source``, ``triggers`` (count), ``log``."""
        with self._cond:
            return [copy.deepcopy(a) for a in self._alerts]

    def alert(self, dedup_key: str) -> dict[str, Any] | None:
        """The latest alert with ``dedup_key``."""
        with self._cond:
            found = [a for a in self._alerts if a["dedup_key"] == dedup_key]
            return copy.deepcopy(found[-1]) if found else None

    def reset_state(self) -> None:
        self._alerts.clear()
        self._open.clear()

    # ------------------------------------------------------------------ FakeServer hooks

    def route(self, request: Request) -> str | None:
        return "enqueue" if request.path.rstrip("/") == "/v2/enqueue" else None

    def not_found(self, request: Request) -> Response:
        return Response(404, {"status": "not found", "message": "Not Found"})

    def parse(self, request: Request) -> Any:
        return json.loads(request.raw.decode("utf-8")) if request.raw else None

    def error_response(self, status: int, request: Request) -> Response:
        return Response(status, {"status": "error", "message": "Internal Server Error"})

    def rate_limit_response(self, fault: Fault, request: Request) -> Response:
        return Response(
            429,
            {
                "status": "throttle event",
                "message": "Requests for this service are arriving too quickly. Please retry later.",
            },
        )

    @staticmethod
    def _invalid(errors: list[str]) -> Response:
        return Response(400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors})

    def handle(self, request: Request) -> Response:
        if request.verb != "POST":
            return Response(405, {"status": "error", "message": "Method Not Allowed"})
        if len(request.raw) > MAX_BYTES:
            return Response(413, {"status": "error", "message": "Request Entity Too Large"})
        if request.content_type != "application/json":
            return self._invalid(["Content-Type must be application/json"])
        if request.parse_error is not None:
            return Response(
                400,
                {"status": "invalid event", "message": "Event object is invalid", "errors": ["Could not parse JSON"]},
            )
        event = request.body
        errors = validate_event(event)
        if not errors and event["routing_key"] not in self.routing_keys:
            errors = ["Invalid routing key"]
        if errors:
            return self._invalid(errors)
        self._seq += 1
        dedup = event.get("dedup_key") or f"generated-{self._seq:08d}"
        self._apply(event, dedup)
        self._accept(copy.deepcopy(event))
        return Response(202, {"status": "success", "message": "Event processed", "dedup_key": dedup})

    def _apply(self, event: dict[str, Any], dedup: str) -> None:
        key = (event["routing_key"], dedup)
        alert = self._open.get(key)
        action = event["event_action"]
        if action == "trigger":
            payload = event["payload"]
            if alert is None:
                alert = {
                    "number": len(self._alerts) + 1,
                    "dedup_key": dedup,
                    "routing_key": event["routing_key"],
                    "status": "triggered",
                    "summary": payload["summary"],
                    "severity": payload["severity"],
                    "source": payload["source"],
                    "triggers": 0,
                    "log": [],
                }
                self._alerts.append(alert)
                self._open[key] = alert
            alert["triggers"] += 1
            alert["log"].append("trigger")
            return
        if alert is None:
            return  # nothing open with that key: PagerDuty drops the event
        alert["log"].append(action)
        if action == "acknowledge":
            alert["status"] = "acknowledged"
        else:
            alert["status"] = "resolved"
            del self._open[key]
