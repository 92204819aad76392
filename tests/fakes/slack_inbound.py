"""The Slack side of inbound ChatOps, for tests: a fake Slack Web API that also opens modals
(``views.open``) and receives ``response_url`` replies, and a signer of Slack requests.

:class:`FakeSlackInbound` is a :class:`~tests.fakes.slack.FakeSlack` (same token checks, messages,
faults) with:

* ``views.open`` — needs the bot token, a ``trigger_id`` and a ``view`` of type ``modal`` with a
  title; opened views are kept in :attr:`FakeSlackInbound.views`;
* ``POST /responses/<name>`` — a ``response_url`` receiver (:meth:`FakeSlackInbound.response_url`
  makes one); each JSON reply is kept in :attr:`FakeSlackInbound.responses` (``name``, ``body``,
  ``received``); wait with :meth:`FakeSlackInbound.await_responses`.

:func:`signed` builds the headers Slack sends for a body and a signing secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

from .base import Request, Response
from .slack import FakeSlack

__all__ = ["FakeSlackInbound", "signed", "form_body", "interaction_body"]


def signed(secret: str, body: bytes, timestamp: int | None = None, retry: int | None = None) -> dict[str, str]:
    """The headers of a Slack request: ``X-Slack-Request-Timestamp``, ``X-Slack-Signature`` (and a retry number)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    if retry is not None:
        headers["X-Slack-Retry-Num"] = str(retry)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return headers


def form_body(**fields: str) -> bytes:
    """A slash command's form body."""
    return urlencode(fields).encode()


def interaction_body(payload: dict[str, Any]) -> bytes:
    """An interaction's form body (``payload=<JSON>``)."""
    return urlencode({"payload": json.dumps(payload)}).encode()


class FakeSlackInbound(FakeSlack):
    """:class:`FakeSlack` plus ``views.open`` and ``response_url`` receivers. See the module docstring."""

    def __init__(self, token: str = "xoxb-fake-token", port: int = 0) -> None:
        super().__init__(token, port)
        self._responses: list[dict[str, Any]] = []
        self._views: list[dict[str, Any]] = []

    def response_url(self, name: str) -> str:
        """A ``response_url`` whose replies are kept under ``name``."""
        return f"{self.base_url}/responses/{name}"

    @property
    def responses(self) -> list[dict[str, Any]]:
        """Every reply posted to a ``response_url``, oldest first."""
        with self._cond:
            return [dict(r) for r in self._responses]

    def responses_to(self, name: str) -> list[dict[str, Any]]:
        """The reply bodies posted to one ``response_url``."""
        return [r["body"] for r in self.responses if r["name"] == name]

    @property
    def views(self) -> list[dict[str, Any]]:
        """Every view opened (``trigger_id``, ``view``)."""
        with self._cond:
            return [dict(v) for v in self._views]

    async def await_responses(self, name: str, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        """Wait until ``count`` replies were posted to ``name``'s ``response_url``; the reply bodies."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.responses_to(name)
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(got)} of {count} replies to response_url {name!r} after {timeout}s: {got}")
            await asyncio.sleep(0.05)

    def reset_state(self) -> None:
        super().reset_state()
        self._responses.clear()
        self._views.clear()

    def route(self, request: Request) -> str | None:
        if request.path.startswith("/responses/"):
            request.params["name"] = request.path[len("/responses/") :]
            return "response_url"
        return super().route(request)

    def handle(self, request: Request) -> Response:
        if request.route == "response_url":
            return self._respond(request)
        if request.route == "views.open":
            return self._views_open(request)
        return super().handle(request)

    def _respond(self, request: Request) -> Response:
        if request.verb != "POST" or request.content_type != "application/json" or not isinstance(request.body, dict):
            return Response(400, "invalid_payload", content_type="text/plain")
        body = request.body
        if not body.get("text") and not body.get("blocks"):
            return Response(400, "no_text", content_type="text/plain")
        self._responses.append({"name": request.params["name"], "body": body, "received": request.time})
        return Response(200, "ok", content_type="text/plain")

    def _views_open(self, request: Request) -> Response:
        args = request.body if isinstance(request.body, dict) else {}
        error = self._auth_error(request.headers, args)
        if error:
            return Response(200, {"ok": False, "error": error})
        view = args.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        if not args.get("trigger_id"):
            return Response(200, {"ok": False, "error": "invalid_arguments"})
        if not isinstance(view, dict) or view.get("type") != "modal" or not view.get("title"):
            return Response(200, {"ok": False, "error": "invalid_arguments"})
        self._views.append({"trigger_id": args["trigger_id"], "view": view})
        return Response(200, {"ok": True, "view": {"id": f"V{len(self._views):08d}", **view}})
