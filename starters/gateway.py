"""The HTTP gateway: webhooks in, Temporal calls out; ``/healthz`` and ``/metrics``.

It answers in milliseconds: it validates, translates and hands the work to a
workflow. It connects to Temporal lazily, so it starts (and reports unhealthy)
while Temporal is down.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from temporalio.client import Client

from workers.settings import Settings
from workers.temporal import connect

__all__ = ["create_app", "serve"]

log = logging.getLogger("tocsin.gateway")

HTTP_REQUESTS = Counter("tocsin_gateway_requests_total", "Gateway requests", ["route", "status"])


def create_app(settings: Settings, client: Client | None = None) -> FastAPI:
    """Build the gateway app.

    Args:
        settings: process settings.
        client: an existing client (tests, ``tocsin dev``); otherwise one is
            connected lazily at start-up.
    """

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

    return app


def server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for the app (not yet started)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    return uvicorn.Server(config)


async def serve(settings: Settings, host: str, port: int) -> None:
    """Run the gateway until SIGINT/SIGTERM."""
    log.info("gateway listening on http://%s:%d", host, port)
    await server(create_app(settings), host, port).serve()
