"""The HTTP gateway: webhooks in, operations out; the HTTP API ``/api/v1`` (:mod:`starters.api`); ``/healthz`` and ``/metrics``.

Slack's slash commands and buttons come in on ``/webhooks/slack/commands`` and
``/webhooks/slack/interactions`` (:mod:`starters.slack.routes`), verified by Slack's signature
(``SLACK_SIGNING_SECRET``) rather than by the gateway token.

It answers in milliseconds: it validates, translates and hands the work to an
operation. It connects to Temporal lazily, so it starts (and reports
unhealthy) while Temporal is down. Each route is a small function; errors of
:mod:`operations.errors` become JSON 4xx/503 answers in one place.

It fails closed: without ``TOCSIN_GATEWAY_TOKEN`` every webhook is refused
(401) unless the insecure setting (``tocsin gateway --insecure-no-auth``) is
on, which is logged at start and on every webhook it lets in. Bad input is
refused at the door with a 4xx and ``{"error": ..., "field": ...}``: bodies
over ``TOCSIN_GATEWAY_MAX_BODY`` (413, from Content-Length or while reading a
chunked body), a wrong Content-Type (415), bodies that are not UTF-8 JSON or
are nested too deeply (400), strings that are not valid Unicode (a lone
surrogate such as ``\\ud800``, 422) and payloads of the wrong shape (422).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.client import Client
from temporalio.service import RPCError

from operations import Actor, BadInput, Context, NotFound, OperationError, Refused, Unavailable
from operations.alerts import dispatch_alerts
from operations.config import ConfigStore
from operations.incidents import acknowledge, resolve
from operations.metrics_collector import journal_metrics
from starters.alertmanager import AMWebhook
from starters.api import PREFIX as API_PREFIX
from starters.api import install as install_api
from starters.dashboard import install as install_dashboard
from starters.journaling import journaling
from starters.slack.routes import install as install_slack
from workers.settings import Settings
from workers.temporal import connect
from workflows.incident import Alert

__all__ = ["create_app", "serve", "server", "pagerduty_signature_ok", "startup_problem", "Rejected", "BodyLimit"]

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


class Rejected(Exception):
    """Input refused at the door: answered with ``status`` and ``{"error": reason, "field": field}``."""

    def __init__(
        self, status: int, reason: str, field: str | None = None, headers: dict[str, str] | None = None, **extra: Any
    ):
        super().__init__(reason)
        self.status, self.reason, self.field, self.headers, self.extra = status, reason, field, headers, extra

    def response(self) -> JSONResponse:
        """The JSON answer."""
        body: dict[str, Any] = {"error": self.reason, "field": self.field}
        return JSONResponse({**body, **self.extra}, status_code=self.status, headers=self.headers)


async def _rejected(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Rejected)
    return exc.response()


def startup_problem(settings: Settings) -> str | None:
    """Why the gateway must not start with these settings (one line), or None."""
    if not settings.gateway_token and not settings.gateway_insecure_no_auth:
        return (
            "TOCSIN_GATEWAY_TOKEN is not set: the gateway will not take unauthenticated webhooks; "
            "set it (e.g. TOCSIN_GATEWAY_TOKEN=$(openssl rand -hex 24)), or pass --insecure-no-auth "
            "to run without authentication (never where others can reach it)"
        )
    try:
        settings.gateway_max_body_bytes()
    except ValueError as exc:
        return str(exc)
    return None


def _token_matches(header: str, token: str) -> bool:
    """Bearer ``<token>``, or Basic with the token as password (Alertmanager's ``basic_auth``)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return secrets.compare_digest(value.strip().encode(), token.encode())
    if scheme.lower() == "basic":
        try:
            _, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return secrets.compare_digest(password.encode(), token.encode())
    return False


def _check_auth(request: Request) -> None:
    """Let the request in, or raise :class:`Rejected` (401); fails closed when no token is configured."""
    settings: Settings = request.app.state.settings
    if settings.gateway_token:
        if _token_matches(request.headers.get("authorization", ""), settings.gateway_token):
            return
        reason = "missing or wrong credentials (bearer or basic auth)"
    elif settings.gateway_insecure_no_auth:
        who = request.client.host if request.client else "unknown"
        log.warning(
            "INSECURE: letting in an unauthenticated webhook from %s (TOCSIN_GATEWAY_TOKEN is unset, --insecure-no-auth)",
            who,
        )
        return
    else:
        reason = "the gateway has no TOCSIN_GATEWAY_TOKEN configured, so it accepts no webhook"
    raise Rejected(401, reason, headers={"WWW-Authenticate": 'Bearer realm="tocsin"'})


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _field(path: str, part: object) -> str:
    return f"{path}.{part}" if path else str(part)


def _invalid_unicode(data: Any) -> str | None:
    """The field of the first key or string that is not valid Unicode (a lone surrogate), or None."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                return path or "(body)"
        elif isinstance(value, dict):
            for key in value:
                if not _encodable(key):
                    return path or "(body)"
            stack.extend((_field(path, key), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((_field(path, i), item) for i, item in reversed(list(enumerate(value))))
    return None


def _parse_json(raw: bytes) -> Any:
    """A request body as JSON, or :class:`Rejected` (400: not UTF-8 JSON, too deep; 422: lone surrogates)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(400, f"body is not UTF-8 (invalid byte at offset {exc.start})") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise Rejected(400, "body is JSON nested too deeply") from None
    except json.JSONDecodeError:
        raise Rejected(400, "body is not JSON") from None
    except ValueError:  # an integer too long to convert (over sys.get_int_max_str_digits() digits)
        raise Rejected(400, "body holds a number too long to read") from None
    if _SURROGATE_ESCAPE.search(text):
        bad = _invalid_unicode(data)
        if bad is not None:
            raise Rejected(422, "not valid Unicode: a lone surrogate (such as \\ud800) in a key or string", field=bad)
    return data


def _check_content_type(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise Rejected(415, f"Content-Type must be application/json, not {media}", field="Content-Type")


async def _json_body(request: Request) -> Any:
    """The request's JSON body; :class:`Rejected` on a wrong Content-Type or a body that is not JSON."""
    _check_content_type(request)
    return _parse_json(await request.body())


def _invalid(what: str, exc: ValidationError) -> Rejected:
    """A 422 naming the first invalid field, with up to 20 of them in ``details``."""
    details = [{"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()[:20]]
    first = details[0] if details else {"field": "", "reason": "invalid"}
    reason = f"{what}: {first['field']}: {first['reason']}" if first["field"] else f"{what}: {first['reason']}"
    return Rejected(422, reason, field=first["field"] or None, details=details)


class BodyLimit:
    """ASGI middleware: request bodies above ``limit`` bytes get 413, by Content-Length or while read."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _too_large(self) -> Rejected:
        return Rejected(
            413, f"request body is larger than the gateway's limit of {self.limit} bytes (TOCSIN_GATEWAY_MAX_BODY)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._too_large().response()(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise self._too_large()
            return message

        await self.app(scope, limited, send)


def pagerduty_signature_ok(secret: str, body: bytes, header: str) -> bool:
    """PagerDuty v3: ``X-PagerDuty-Signature`` is comma-separated ``v1=<hex HMAC-SHA256>``; any match passes."""
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    for part in header.split(","):
        version, _, digest = part.strip().partition("=")
        if version == "v1" and secrets.compare_digest(digest.encode(), expected.encode()):
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


def _webhook(data: Any) -> tuple[AMWebhook, list[Alert]]:
    """The Alertmanager payload and its alerts, or :class:`Rejected` (422) naming the field."""
    if not isinstance(data, dict):
        raise Rejected(422, "the body must be a JSON object: an Alertmanager webhook (version 4)")
    try:
        payload = AMWebhook.model_validate(data)
        return payload, payload.to_alerts()
    except ValidationError as exc:
        raise _invalid("not an Alertmanager webhook (version 4)", exc) from None


async def alertmanager(request: Request) -> JSONResponse:
    """Alertmanager webhook v4: each alert group → its incident workflow (signal-with-start)."""
    _check_auth(request)
    payload, alerts = _webhook(await _json_body(request))
    for alert in alerts:
        ALERTS_RECEIVED.labels(alert.status).inc()
    try:
        ids = await dispatch_alerts(_context(request), alerts, source=f"alertmanager:{payload.receiver or 'webhook'}")
    except (OperationError, RPCError) as exc:
        log.warning("Temporal refused alerts: %s", exc)
        return error_response(exc)
    except RuntimeError as exc:  # lazy client that cannot connect
        return _error(503, f"Temporal unavailable: {str(exc).splitlines()[0][:200]}")
    body: dict[str, Any] = {"status": "accepted", "alerts": len(alerts), "incidents": list(ids)}
    if ids.rejected:
        # Each group's fate is its own: the others were paged; say which were refused and why.
        body["status"] = "partial"
        body["rejected"] = [{"incident": wid, "reason": why} for wid, why in ids.rejected.items()]
    return JSONResponse(body, status_code=202)


_PD_UPDATES: dict[str, Callable[..., Awaitable[Any]]] = {
    "incident.acknowledged": acknowledge,
    "incident.resolved": resolve,
}


_PD_SHAPE = "not a PagerDuty v3 webhook (expected {event: {event_type, data}})"


def _pd_event(data: Any) -> tuple[str, str, str]:
    """(event type, incident key, agent) of a PagerDuty v3 webhook, or :class:`Rejected` (400)."""
    event = data.get("event") if isinstance(data, dict) else None
    if not isinstance(event, dict) or not isinstance(event.get("event_type"), str):
        raise Rejected(400, _PD_SHAPE, field="event")
    body, agent = event.get("data") or {}, event.get("agent") or {}
    if not isinstance(body, dict):
        raise Rejected(400, f"{_PD_SHAPE}: event.data must be an object", field="event.data")
    if not isinstance(agent, dict):
        raise Rejected(400, f"{_PD_SHAPE}: event.agent must be an object", field="event.agent")
    key = body.get("incident_key")
    summary = agent.get("summary")
    return (
        event["event_type"],
        key if isinstance(key, str) else "",
        summary if isinstance(summary, str) and summary else "pagerduty",
    )


async def pagerduty(request: Request) -> JSONResponse:
    """PagerDuty v3 webhooks: acknowledge/resolve mirrored into the incident (dedup_key = incident id)."""
    secret = os.environ.get("PAGERDUTY_WEBHOOK_SECRET", "")
    raw = await request.body()
    signature = request.headers.get("x-pagerduty-signature", "")
    if not secret:
        return _error(403, "PAGERDUTY_WEBHOOK_SECRET is not configured on the gateway")
    if not signature or not pagerduty_signature_ok(secret, raw, signature):
        return _error(403, "bad or missing X-PagerDuty-Signature")
    event_type, key, agent = _pd_event(_parse_json(raw))
    operation = _PD_UPDATES.get(event_type)
    if operation is None or not key.startswith("incident/"):
        return JSONResponse({"status": "ignored", "event_type": event_type}, status_code=202)
    actor = Actor(name=f"pagerduty:{agent}", verified=True, method="pagerduty", via="pagerduty")
    try:
        result = await operation(_context(request), actor, key, f"PagerDuty {event_type}")
    except Refused as exc:
        return JSONResponse({"status": "refused", "reason": str(exc)}, status_code=200)
    except (OperationError, RPCError) as exc:
        return error_response(exc)
    return JSONResponse({"status": result.status, "incident": key}, status_code=200)


class CountRequests:
    """ASGI middleware: ``tocsin_gateway_requests_total`` by route template and status.

    Plain ASGI (not ``BaseHTTPMiddleware``, whose task group and body streams cost a quarter of the
    gateway's CPU per webhook in ``bench/ingest.py``). A request that raised before it answered
    counts as a 500, which is what the server error middleware outside it sends.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            HTTP_REQUESTS.labels(getattr(scope.get("route"), "path", "unmatched"), str(status)).inc()


def _announce_auth(settings: Settings) -> None:
    """Say loudly at start when the gateway runs without authentication, or refuses every webhook."""
    if settings.gateway_token:
        return
    if settings.gateway_insecure_no_auth:
        log.warning(
            "INSECURE: the gateway starts WITHOUT authentication (TOCSIN_GATEWAY_TOKEN is unset and "
            "--insecure-no-auth was given): anyone who reaches it can raise and resolve incidents and "
            "trigger rollbacks. Set TOCSIN_GATEWAY_TOKEN for anything but a throwaway test."
        )
    else:
        log.error("no TOCSIN_GATEWAY_TOKEN: every webhook on /webhooks/alertmanager is refused with 401")


def _version() -> str:
    try:
        return version("tocsin")
    except PackageNotFoundError:
        return "0"


def create_app(settings: Settings, client: Client | None = None, store: ConfigStore | None = None) -> FastAPI:
    """Build the gateway app.

    Args:
        settings: process settings; without ``gateway_token`` webhooks are refused (401) unless
            ``gateway_insecure_no_auth`` is set; ``gateway_max_body`` bounds every request body.
        client: an existing client (tests, ``tocsin dev``); otherwise one is
            connected lazily at start-up.
        store: the config (for routing alerts into groups); default: ``TOCSIN_CONFIG``.

    Raises:
        ValueError: ``gateway_max_body`` is not a size.
    """
    limit = settings.gateway_max_body_bytes()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _announce_auth(settings)
        app.state.client = client or await connect(settings, lazy=True)
        async with journaling(app, settings) as journal, journal_metrics(journal):
            yield

    app = FastAPI(
        title="Tocsin gateway",
        description="The HTTP API behind every remote-mode `tocsin` command (`TOCSIN_URL`), and the webhooks.",
        version=_version(),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.state.settings = settings
    app.state.store = store or ConfigStore()
    app.add_exception_handler(Rejected, _rejected)
    app.add_middleware(BodyLimit, limit=limit)
    app.add_middleware(CountRequests)  # added last: outermost, so it also counts 413s from BodyLimit
    app.add_api_route("/healthz", healthz, methods=["GET"], include_in_schema=False)
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
    app.add_api_route("/webhooks/alertmanager", alertmanager, methods=["POST"], include_in_schema=False)
    app.add_api_route("/webhooks/pagerduty", pagerduty, methods=["POST"], include_in_schema=False)
    install_slack(app)  # /webhooks/slack/commands and /webhooks/slack/interactions (signed by Slack)
    install_api(app)  # /api/v1: the routes behind the remote-mode CLI, and JSON error answers everywhere
    install_dashboard(app)  # / (web dashboard), /api/v1/dashboard, /badge/<repo>/<branch>.svg: public, read-only
    return app


def server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for the app (not yet started)."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    return uvicorn.Server(config)


async def serve(settings: Settings, host: str, port: int) -> None:
    """Run the gateway until SIGINT/SIGTERM."""
    log.info("gateway listening on http://%s:%d", host, port)
    await server(create_app(settings), host, port).serve()
