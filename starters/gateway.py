"""The HTTP gateway: webhooks in, operations out; ``/healthz`` and ``/metrics``.

It answers in milliseconds: it validates, translates and hands the work to an
operation. It connects to Temporal lazily, so it starts (and reports
unhealthy) while Temporal is down. Each route is a small function; errors of
:mod:`operations.errors` become JSON 4xx/503 answers in one place.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.service import RPCError

from operations import Actor, BadInput, Context, NotFound, OperationError, Refused, Unavailable
from operations.alerts import dispatch_alerts
from operations.config import ConfigStore
from operations.incidents import acknowledge, resolve
from starters.alertmanager import AMWebhook
from workers.settings import Settings
from workers.temporal import connect

__all__ = ["create_app", "serve", "server", "pagerduty_signature_ok"]

log = logging.getLogger("tocsin.gateway")

HTTP_REQUESTS = Counter("tocsin_gateway_requests_total", "Gateway requests", ["route", "status"])
ALERTS_RECEIVED = Counter("tocsin_alerts_received_total", "Alerts received on the Alertmanager webhook", ["status"])


def _error(status: int, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": reason, **extra}, status_code=status)


def error_response(exc: OperationError | RPCError) -> JSONResponse:
    """The one mapping of operation errors to HTTP answers."""
    if isinstance(exc, BadInput):
        return _error(422, exc.message, field=exc.field)
    if isinstance(exc, NotFound):
        return _error(404, str(exc))
    if isinstance(exc, Refused):
        return _error(409, str(exc))
    if isinstance(exc, Unavailable):
        return _error(503, str(exc))
    if isinstance(exc, RPCError):
        return _error(503, f"Temporal unavailable: {exc.message}")
    return _error(409, str(exc))


def _authorized(request: Request, token: str | None) -> bool:
    """Bearer ``<token>``, or Basic with the token as password (Alertmanager's ``basic_auth``)."""
    if not token:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return secrets.compare_digest(value.strip(), token)
    if scheme.lower() == "basic":
        try:
            _, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return secrets.compare_digest(password, token)
    return False


def pagerduty_signature_ok(secret: str, body: bytes, header: str) -> bool:
    """PagerDuty v3: ``X-PagerDuty-Signature`` is comma-separated ``v1=<hex HMAC-SHA256>``; any match passes."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    for part in header.split(","):
        version, _, digest = part.strip().partition("=")
        if version == "v1" and secrets.compare_digest(digest, expected):
            return True
    return False


def _context(request: Request) -> Context:
    state = request.app.state
    return Context(state.client, state.store.get(), state.settings.task_queue)


async def healthz(request: Request) -> JSONResponse:
    """200 when Temporal answers a health check within two seconds, else 503."""
    settings: Settings = request.app.state.settings
    temporal: Client = request.app.state.client
    try:
        ok = await asyncio.wait_for(temporal.service_client.check_health(), timeout=2.0)
    except Exception as exc:
        return JSONResponse(
            {
                "status": "unavailable",
                "temporal": settings.address,
                "reason": str(exc).splitlines()[0][:200] or type(exc).__name__,
            },
            status_code=503,
        )
    if not ok:
        return JSONResponse(
            {"status": "unavailable", "temporal": settings.address, "reason": "health check failed"}, status_code=503
        )
    return JSONResponse({"status": "ok", "temporal": settings.address, "namespace": settings.namespace})


async def metrics() -> Response:
    """Prometheus exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def alertmanager(request: Request) -> JSONResponse:
    """Alertmanager webhook v4: each alert group → its incident workflow (signal-with-start)."""
    if not _authorized(request, request.app.state.settings.gateway_token):
        return JSONResponse(
            {"error": "missing or wrong credentials (bearer or basic auth)"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="tocsin"'},
        )
    try:
        payload = AMWebhook.model_validate(json.loads(await request.body()))
    except ValueError as exc:
        if not isinstance(exc, ValidationError):
            return _error(400, "body is not JSON")
        details = [{"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()[:20]]
        return _error(422, "not an Alertmanager webhook (version 4)", details=details)
    alerts = payload.to_alerts()
    for alert in alerts:
        ALERTS_RECEIVED.labels(alert.status).inc()
    try:
        ids = await dispatch_alerts(_context(request), alerts, source=f"alertmanager:{payload.receiver or 'webhook'}")
    except (OperationError, RPCError) as exc:
        log.warning("Temporal refused alerts: %s", exc)
        return error_response(exc)
    except RuntimeError as exc:  # lazy client that cannot connect
        return _error(503, f"Temporal unavailable: {str(exc).splitlines()[0][:200]}")
    return JSONResponse({"status": "accepted", "alerts": len(alerts), "incidents": ids}, status_code=202)


_PD_UPDATES: dict[str, Callable[..., Awaitable[Any]]] = {
    "incident.acknowledged": acknowledge,
    "incident.resolved": resolve,
}


async def pagerduty(request: Request) -> JSONResponse:
    """PagerDuty v3 webhooks: acknowledge/resolve mirrored into the incident (dedup_key = incident id)."""
    secret = os.environ.get("PAGERDUTY_WEBHOOK_SECRET", "")
    raw = await request.body()
    signature = request.headers.get("x-pagerduty-signature", "")
    if not secret:
        return _error(403, "PAGERDUTY_WEBHOOK_SECRET is not configured on the gateway")
    if not signature or not pagerduty_signature_ok(secret, raw, signature):
        return _error(403, "bad or missing X-PagerDuty-Signature")
    try:
        event = json.loads(raw)["event"]
        event_type = str(event["event_type"])
        data = event.get("data") or {}
    except (ValueError, KeyError, TypeError):
        return _error(400, "not a PagerDuty v3 webhook (expected {event: {event_type, data}})")
    operation = _PD_UPDATES.get(event_type)
    key = str(data.get("incident_key") or "")
    if operation is None or not key.startswith("incident/"):
        return JSONResponse({"status": "ignored", "event_type": event_type}, status_code=202)
    agent = (event.get("agent") or {}).get("summary") or "pagerduty"
    actor = Actor(name=f"pagerduty:{agent}", verified=True, method="pagerduty", via="pagerduty")
    try:
        result = await operation(_context(request), actor, key, f"PagerDuty {event_type}")
    except Refused as exc:
        return JSONResponse({"status": "refused", "reason": str(exc)}, status_code=200)
    except (OperationError, RPCError) as exc:
        return error_response(exc)
    return JSONResponse({"status": result.status, "incident": key}, status_code=200)


async def _count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    route = request.scope.get("route")
    HTTP_REQUESTS.labels(getattr(route, "path", "unmatched"), str(response.status_code)).inc()
    return response


def create_app(settings: Settings, client: Client | None = None, store: ConfigStore | None = None) -> FastAPI:
    """Build the gateway app.

    Args:
        settings: process settings.
        client: an existing client (tests, ``tocsin dev``); otherwise one is
            connected lazily at start-up.
        store: the config (for routing alerts into groups); default: ``TOCSIN_CONFIG``.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.client = client or await connect(settings, lazy=True)
        yield

    app = FastAPI(title="Tocsin gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.store = store or ConfigStore()
    app.middleware("http")(_count)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/metrics", metrics, methods=["GET"])
    app.add_api_route("/webhooks/alertmanager", alertmanager, methods=["POST"])
    app.add_api_route("/webhooks/pagerduty", pagerduty, methods=["POST"])
    return app


def server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for the app (not yet started)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    return uvicorn.Server(config)


async def serve(settings: Settings, host: str, port: int) -> None:
    """Run the gateway until SIGINT/SIGTERM."""
    log.info("gateway listening on http://%s:%d", host, port)
    await server(create_app(settings), host, port).serve()
