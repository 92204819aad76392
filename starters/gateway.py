"""The HTTP gateway: webhooks in, Temporal calls out; ``/healthz`` and ``/metrics``.

It answers in milliseconds: it validates, translates and hands the work to a
workflow. It connects to Temporal lazily, so it starts (and reports unhealthy)
while Temporal is down.
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
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.service import RPCError

from operations.config import ConfigStore
from starters.incidents import ActionRefused, AMWebhook, UnknownIncident, dispatch_alerts, incident_action
from workers.settings import Settings
from workers.temporal import connect
from workflows.incident.models import HumanAction

__all__ = ["create_app", "serve"]

log = logging.getLogger("tocsin.gateway")

HTTP_REQUESTS = Counter("tocsin_gateway_requests_total", "Gateway requests", ["route", "status"])


ALERTS_RECEIVED = Counter("tocsin_alerts_received_total", "Alerts received on the Alertmanager webhook", ["status"])


def _error(status: int, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": reason, **extra}, status_code=status)


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


async def _json_body(request: Request) -> tuple[bytes, Any] | JSONResponse:
    raw = await request.body()
    try:
        return raw, json.loads(raw)
    except ValueError:
        return _error(400, "body is not JSON")


def create_app(settings: Settings, client: Client | None = None, store: ConfigStore | None = None) -> FastAPI:
    """Build the gateway app.

    Args:
        settings: process settings.
        client: an existing client (tests, ``tocsin dev``); otherwise one is
            connected lazily at start-up.
        store: the config (for routing alerts into groups); default: ``TOCSIN_CONFIG``.
    """
    config_store = store or ConfigStore()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.client = client or await connect(settings, lazy=True)
        yield

    app = FastAPI(title="Tocsin gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings

    @app.middleware("http")
    async def count(request: Request, call_next):  # type: ignore[no-untyped-def]
        response = await call_next(request)
        route = request.scope.get("route")
        HTTP_REQUESTS.labels(getattr(route, "path", "unmatched"), str(response.status_code)).inc()
        return response

    @app.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        """200 when Temporal answers a health check within two seconds, else 503."""
        temporal: Client = request.app.state.client
        try:
            ok = await asyncio.wait_for(temporal.service_client.check_health(), timeout=2.0)
        except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
            return JSONResponse({"status": "unavailable", "temporal": settings.address,
                                 "reason": str(exc).splitlines()[0][:200] or type(exc).__name__}, status_code=503)
        if not ok:
            return JSONResponse({"status": "unavailable", "temporal": settings.address,
                                 "reason": "health check failed"}, status_code=503)
        return JSONResponse({"status": "ok", "temporal": settings.address, "namespace": settings.namespace})

    @app.get("/metrics")
    async def metrics() -> Response:
        """Prometheus exposition of this process's metrics."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/webhooks/alertmanager")
    async def alertmanager(request: Request) -> JSONResponse:
        """Alertmanager webhook v4: each alert group → its incident workflow (signal-with-start)."""
        if not _authorized(request, settings.gateway_token):
            return JSONResponse({"error": "missing or wrong credentials (bearer or basic auth)"}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer realm="tocsin"'})
        parsed = await _json_body(request)
        if isinstance(parsed, JSONResponse):
            return parsed
        try:
            payload = AMWebhook.model_validate(parsed[1])
        except ValidationError as exc:
            details = [{"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()[:20]]
            return _error(422, "not an Alertmanager webhook (version 4)", details=details)
        alerts = payload.to_alerts()
        for alert in alerts:
            ALERTS_RECEIVED.labels(alert.status).inc()
        try:
            ids = await dispatch_alerts(request.app.state.client, config_store.get(), alerts,
                                        settings.task_queue, source=f"alertmanager:{payload.receiver or 'webhook'}")
        except RPCError as exc:
            log.warning("Temporal refused alerts: %s", exc.message)
            return _error(503, f"Temporal unavailable: {exc.message}")
        except RuntimeError as exc:  # lazy client that cannot connect
            return _error(503, f"Temporal unavailable: {str(exc).splitlines()[0][:200]}")
        return JSONResponse({"status": "accepted", "alerts": len(alerts), "incidents": ids}, status_code=202)

    @app.post("/webhooks/pagerduty")
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
        update = {"incident.acknowledged": "acknowledge", "incident.resolved": "resolve"}.get(event_type)
        key = str(data.get("incident_key") or "")
        if update is None or not key.startswith("incident/"):
            return JSONResponse({"status": "ignored", "event_type": event_type}, status_code=202)
        agent = (event.get("agent") or {}).get("summary") or "pagerduty"
        action = HumanAction(by=f"pagerduty:{agent}", note=f"PagerDuty {event_type}", via="pagerduty")
        try:
            result = await incident_action(request.app.state.client, key, update, action)
        except UnknownIncident as exc:
            return _error(404, str(exc))
        except ActionRefused as exc:
            return JSONResponse({"status": "refused", "reason": str(exc)}, status_code=200)
        except RPCError as exc:
            return _error(503, f"Temporal unavailable: {exc.message}")
        return JSONResponse({"status": result.status, "incident": key}, status_code=200)

    return app


def server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for the app (not yet started)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    return uvicorn.Server(config)


async def serve(settings: Settings, host: str, port: int) -> None:
    """Run the gateway until SIGINT/SIGTERM."""
    log.info("gateway listening on http://%s:%d", host, port)
    await server(create_app(settings), host, port).serve()
