"""What the HTTP API ``/api/v1`` shares: authentication, the error answers, running an operation.

The routes are in :mod:`starters.api`.

``Authorization: Bearer <API token or OIDC ID token>`` is resolved to a verified
:class:`~workflows.identity.Actor` (``via="api"``, or ``"cli"`` when the request carries
``X-Tocsin-Door: cli``); the body's optional ``by`` must name that identity. The API only
authenticates: each operation authorizes its actor itself (roles, four eyes), whatever the door.

Answers are the operations' own result models as JSON. Errors are always
``{"error": reason, "field": name-or-null}``: 400 (body not JSON), 401 (no or a wrong credential,
with ``WWW-Authenticate: Bearer``), 403 (refused), 404, 409, 413 (body too large, from the
gateway), 422 (a field is wrong, named), 503 (Temporal unavailable). The schema is at
``/api/v1/openapi.json``. Ids with slashes (``incident/ab12``, ``deploy/svc/prod/1.2``) go in the
path as they are. Credentials are never logged nor echoed.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from operations import Actor, BadInput, Conflict, Context, NotFound, OperationError, Refused, Unavailable
from operations.auth import check_claim, token_actor
from operations.errors import Unauthenticated
from operations.oidc import JwksCache, OidcVerifier, looks_like_jwt
from workflows.identity import Door

__all__ = [
    "PREFIX",
    "DOOR_HEADER",
    "ApiError",
    "authenticate",
    "check_json",
    "context",
    "call",
    "claimed",
    "error_of",
    "handlers",
    "parse_time",
    "wait_for",
]

PREFIX = "/api/v1"
DOOR_HEADER = "X-Tocsin-Door"
"""``cli`` when the request comes from the ``tocsin`` CLI in remote mode (recorded as the door)."""

T = TypeVar("T")

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tocsin"'}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_bearer = HTTPBearer(auto_error=False, description="An API token (tocsin token create) or an OIDC ID token.")


class ApiError(Exception):
    """An error answer: ``status`` and ``{"error": reason, "field": field}``."""

    def __init__(self, status: int, reason: str, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status, self.reason, self.field, self.headers = status, reason, field, headers

    def response(self) -> JSONResponse:
        """The JSON answer."""
        return JSONResponse({"error": self.reason, "field": self.field}, status_code=self.status, headers=self.headers)


def error_of(exc: OperationError | RPCError) -> ApiError:
    """The one mapping of an operation's errors to API answers."""
    if isinstance(exc, BadInput):
        return ApiError(422, exc.message, exc.field)
    if isinstance(exc, Unauthenticated):
        return ApiError(401, str(exc), headers=_CHALLENGE)
    if isinstance(exc, NotFound):
        return ApiError(404, str(exc))
    if isinstance(exc, Refused):
        return ApiError(403, str(exc))
    if isinstance(exc, Conflict):
        return ApiError(409, str(exc))
    if isinstance(exc, Unavailable):
        return ApiError(503, str(exc))
    if isinstance(exc, RPCError):
        if exc.status == RPCStatusCode.NOT_FOUND:
            return ApiError(404, exc.message)
        if exc.status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION):
            return ApiError(409, f"Temporal refused the request: {exc.message}")
        return ApiError(503, f"Temporal unavailable: {exc.message}")
    return ApiError(409, str(exc))


# ---------------------------------------------------------------------------------------- handlers


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


def _field(loc: Sequence[Any]) -> str | None:
    """A pydantic location as the field's name: ``body.service`` → ``service``."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or None


async def _invalid(_request: Request, exc: Exception) -> Response:
    """400 for a body that is not JSON; 422 naming the first wrong field otherwise."""
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return ApiError(400, "body is not JSON").response()
    if not errors:
        return ApiError(422, "invalid request").response()
    first = errors[0]
    field = _field(first.get("loc", ()))
    reason = f"{field}: {first.get('msg', 'invalid')}" if field else str(first.get("msg", "invalid"))
    if field is None and first.get("type") == "missing":
        reason = "a JSON body is required"
    return ApiError(422, reason, field).response()


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Unknown routes, wrong methods, unreadable bodies: JSON like every other error."""
    assert isinstance(exc, HTTPException)
    reason = exc.detail if isinstance(exc.detail, str) else "request refused"
    return ApiError(exc.status_code, reason, headers=dict(exc.headers or {}) or None).response()


# ---------------------------------------------------------------------------------------- auth


def _door(request: Request) -> Door:
    return "cli" if request.headers.get(DOOR_HEADER, "").strip().lower() == "cli" else "api"


def _verifier(request: Request, config: Any) -> OidcVerifier:
    """The OIDC verifier of the current config (rebuilt when the config changes; one JWKS cache)."""
    state = request.app.state
    if getattr(state, "oidc_config", None) is not config:
        if getattr(state, "jwks", None) is None:
            state.jwks = JwksCache()
        state.oidc, state.oidc_config = OidcVerifier(config, jwks=state.jwks), config
    verifier: OidcVerifier = state.oidc
    return verifier


async def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Actor:
    """The verified actor of ``Authorization: Bearer``; 401 with ``WWW-Authenticate`` otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials.strip():
        raise ApiError(
            401, "missing credentials: send Authorization: Bearer <API token or OIDC ID token>", headers=_CHALLENGE
        )
    token = credentials.credentials.strip()
    config = request.app.state.store.get()
    via = _door(request)
    try:
        if looks_like_jwt(token):
            verifier = _verifier(request, config)
            if not verifier.configured:
                raise Unauthenticated("OIDC not configured: the config has no oidc entries")
            return await verifier.verify(token, via)
        return token_actor(config, token, via)
    except Unauthenticated as exc:
        raise error_of(exc) from None


async def check_json(request: Request) -> None:
    """Bodies with a lone surrogate (``\\ud800``) are refused (422) before they reach Temporal."""
    raw = await request.body()
    if not raw or not _SURROGATE_ESCAPE.search(raw.decode("utf-8", "replace")):
        return
    try:
        json.dumps(json.loads(raw), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(422, "not valid Unicode: a lone surrogate (such as \\ud800) in a key or string") from None
    except (ValueError, RecursionError):
        return  # not JSON: answered 400 by the body's validation


def context(request: Request) -> Context:
    """The operations' context: the gateway's Temporal client, the current config, the task queue."""
    state = request.app.state
    return Context(state.client, state.store.get(), state.settings.task_queue)


def claimed(actor: Actor, by: str | None) -> Actor:
    """The actor, once a given ``by`` is checked to name it (403 otherwise)."""
    try:
        check_claim(actor, by)
    except Refused as exc:
        raise error_of(exc) from None
    return actor


async def call(request: Request, op: Callable[[Context], Awaitable[T]]) -> T:
    """Run one operation, its errors answered by :func:`error_of`."""
    try:
        return await op(context(request))
    except (OperationError, RPCError) as exc:
        raise error_of(exc) from None
    except WorkflowFailureError as exc:
        raise ApiError(409, f"the workflow failed: {exc.cause or exc}") from None
    except RuntimeError as exc:  # a lazy client that cannot connect
        raise ApiError(503, f"Temporal unavailable: {str(exc).splitlines()[0][:200]}") from None


def parse_time(field: str, text: str | None) -> datetime | None:
    """An ISO-8601 query parameter, or 422 naming it."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(422, f"{field}: not an ISO-8601 time: {text!r}", field) from None


async def wait_for(awaitable: Awaitable[T], seconds: float) -> T | None:
    """The awaitable's result, or None after ``seconds``."""
    try:
        return await asyncio.wait_for(awaitable, timeout=seconds)
    except TimeoutError:
        return None


def handlers() -> dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]]:
    """The exception handlers that make every error ``{"error", "field"}`` JSON."""
    return {ApiError: _api_error, RequestValidationError: _invalid, HTTPException: _http_error}
