"""The CLI's remote mode: with ``TOCSIN_URL`` set, every command goes through the gateway's ``/api/v1``.

The credential, first match wins: ``--oidc github`` (the GitHub Actions job's ID token), then
``TOCSIN_TOKEN`` (an API token from ``tocsin token create``), then an OIDC ID token
(``TOCSIN_OIDC_TOKEN``, or the GitHub Actions job's own when ``ACTIONS_ID_TOKEN_REQUEST_URL`` is
set; see :mod:`starters.cli.oidc`). The identity comes from the credential: a ``--by`` given must
name it (the server refuses otherwise). No network path to Temporal is needed.

The gateway's answers map back to the operations' own errors, so every command exits as it does in
direct mode: 401 → :class:`Unauthenticated` (exit 1), 403 → :class:`Refused`, 404 →
:class:`NotFound`, 409 → :class:`Conflict`, 400/413/422 → :class:`BadInput` naming the field (exit
2), 503 or an unreachable gateway → :class:`Unavailable` (exit 1). The credential is never printed.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from operations import BadInput, Conflict, NotFound, OperationError, Refused, Unavailable
from operations.deployments import Control, RollbackOutcome
from operations.errors import Unauthenticated
from operations.flaky import FlakyList, Signalled
from starters.cli.oidc import github_actions_token, oidc_token
from workflows.deployment import DecisionResult, DeployInput, DeploymentState, DeployResult
from workflows.incident import ActionResult
from workflows.models import Message
from workflows.pipeline import BuildEvent
from workflows.policy.health_report import HealthReport
from workflows.silences import SilenceRecord, SilencesState

__all__ = ["Api", "URL_ENV", "TOKEN_ENV", "enabled", "use_oidc", "connect_api", "run_remote", "OIDC_PROVIDERS"]

URL_ENV = "TOCSIN_URL"
TOKEN_ENV = "TOCSIN_TOKEN"
OIDC_PROVIDERS = ("github",)
API = "/api/v1"
TIMEOUT = 60.0
"""Seconds one request may take (the result long-poll waits at most 30)."""

T = TypeVar("T")

_FLAGS = {
    "matchers": "--matcher",
    "labels": "--label",
    "incident_id": "ID",
    "deployment_id": "ID",
    "silence_id": "ID",
    "test": "TEST",
}

_oidc_provider: str | None = None


def use_oidc(provider: str | None) -> None:
    """``--oidc PROVIDER``: authenticate with that provider's ID token (``github``)."""
    global _oidc_provider
    if provider is not None and provider not in OIDC_PROVIDERS:
        raise BadInput("--oidc", f"must be one of {'|'.join(OIDC_PROVIDERS)}, got {provider!r}")
    _oidc_provider = provider


def enabled() -> bool:
    """Whether the CLI is in remote mode (``TOCSIN_URL`` set)."""
    return bool(os.environ.get(URL_ENV, "").strip())


async def _credential() -> str:
    if _oidc_provider == "github":
        return await github_actions_token()
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    found = await oidc_token()
    if found:
        return found
    raise Unauthenticated(
        f"{URL_ENV} is set but there is no credential: set {TOKEN_ENV} (an API token), TOCSIN_OIDC_TOKEN, "
        "or pass --oidc github in GitHub Actions"
    )


def _flag(field: str | None) -> str:
    """The CLI's name for a field the API named (``changes_url`` → ``--changes-url``)."""
    if not field:
        return "request"
    if field.startswith("-") or field.isupper():
        return field
    head = field.split(".")[0]
    return _FLAGS.get(head, "--" + head.replace("_", "-"))


def error_of(response: httpx.Response) -> OperationError:
    """The operation error an error answer stands for."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    reason = str(body.get("error") or f"HTTP {response.status_code}")
    field = body.get("field") if isinstance(body.get("field"), str) else None
    status = response.status_code
    if status == 401:
        return Unauthenticated(f"not authenticated: {reason}")
    if status == 403:
        return Refused(reason)
    if status == 404:
        return NotFound(reason)
    if status == 409:
        return Conflict(reason)
    if status in (400, 413, 415, 422):
        return BadInput(_flag(field), reason.removeprefix(f"{field}: ") if field else reason)
    if status == 503:
        return Unavailable(reason)
    return OperationError(f"the gateway answered HTTP {status}: {reason}")


def _path(*parts: str) -> str:
    """An API path; ids keep their slashes (``deploy/svc/prod/1.2``)."""
    return API + "".join("/" + quote(part.strip(), safe="/:@+") for part in parts)


def _claim(by: str | None, **fields: Any) -> dict[str, Any]:
    body = {k: v for k, v in fields.items() if v is not None}
    if by is not None and by.strip():
        body["by"] = by.strip()
    return body


class Api:
    """The gateway's ``/api/v1``, one method per operation, answering the operations' own models."""

    def __init__(self, http: httpx.AsyncClient):
        self.http = http

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, Any] | None = None
    ) -> httpx.Response:
        """One request; an error answer raises its operation error, an unreachable gateway :class:`Unavailable`."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = await self.http.request(method, path, json=body, params=query)
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach the gateway at {self.http.base_url}: {type(exc).__name__}") from None
        if response.status_code >= 400:
            raise error_of(response)
        return response

    async def build(self, event: BuildEvent) -> str:
        """``POST /builds``: the pipeline workflow's id."""
        response = await self.call("POST", _path("builds"), event.model_dump(mode="json", exclude_none=True))
        return str(response.json()["id"])

    async def flaky(self, repo: str | None) -> FlakyList:
        """``GET /flaky``: flaky and quarantined tests (of one repository)."""
        return FlakyList.model_validate((await self.call("GET", _path("flaky"), params={"repo": repo})).json())

    async def flaky_quarantine(self, by: str | None, repo: str, test: str, until: str | None, reason: str) -> Signalled:
        """``POST /flaky/quarantine``: mute a test in every running pipeline of a repository."""
        body = _claim(by, repo=repo, test=test, until=until, reason=reason or None)
        return Signalled.model_validate((await self.call("POST", _path("flaky", "quarantine"), body)).json())

    async def flaky_release(self, by: str | None, repo: str, test: str) -> Signalled:
        """``POST /flaky/release``: lift a test's quarantine."""
        body = _claim(by, repo=repo, test=test)
        return Signalled.model_validate((await self.call("POST", _path("flaky", "release"), body)).json())

    async def notify(self, receiver: str, message: Message) -> str:
        """``POST /notify``: the notification workflow's id."""
        body = {"receiver": receiver, "message": message.model_dump(mode="json")}
        return str((await self.call("POST", _path("notify"), body)).json()["id"])

    async def alert(
        self, by: str | None, name: str, severity: str, labels: dict[str, str], summary: str | None
    ) -> list[str]:
        """``POST /alerts``: the incidents the alert reached."""
        body = _claim(by, name=name, severity=severity, labels=labels, summary=summary)
        return [str(i) for i in (await self.call("POST", _path("alerts"), body)).json()["incidents"]]

    async def incident(self, action: str, incident: str, by: str | None, note: str, **extra: str) -> ActionResult:
        """``POST /incidents/{id}/{action}`` (ack, resolve, escalate, snooze)."""
        response = await self.call("POST", _path("incidents", incident, action), _claim(by, note=note, **extra))
        return ActionResult.model_validate(response.json())

    async def deploy(self, request: DeployInput) -> tuple[str, bool]:
        """``POST /deployments``: the deployment's id, and whether this request started it."""
        fields = request.model_dump(
            mode="json", include={"service", "env", "version", "commit", "changes_url", "change_size", "emergency"}
        )
        body = _claim(request.by, reason=request.reason, **fields)
        answer = (await self.call("POST", _path("deployments"), body)).json()
        return str(answer["id"]), bool(answer["started"])

    async def deployment_state(self, deployment: str) -> DeploymentState:
        """``GET /deployments/{id}``."""
        return DeploymentState.model_validate((await self.call("GET", _path("deployments", deployment))).json())

    async def deployment_result(self, deployment: str, wait: float) -> DeployResult | None:
        """``GET /deployments/{id}/result``: the result, or None while it runs (after ``wait`` seconds)."""
        response = await self.call("GET", _path("deployments", deployment, "result"), params={"wait": wait})
        return None if response.status_code == 202 else DeployResult.model_validate(response.json())

    async def decide(self, deployment: str, decision: str, by: str | None, **text: str | None) -> DecisionResult:
        """``POST /deployments/{id}/approve|reject``."""
        response = await self.call("POST", _path("deployments", deployment, decision), _claim(by, **text))
        return DecisionResult.model_validate(response.json())

    async def control(self, deployment: str, what: Control, by: str | None, reason: str) -> None:
        """``POST /deployments/{id}/pause|resume|promote|abort``."""
        await self.call("POST", _path("deployments", deployment, what), _claim(by, reason=reason))

    async def rollback(self, service: str, env: str, by: str | None, reason: str) -> RollbackOutcome:
        """``POST /rollbacks``."""
        answer = (
            await self.call("POST", _path("rollbacks"), _claim(by, service=service, env=env, reason=reason))
        ).json()
        return RollbackOutcome(answer.get("workflow_id"), str(answer["action"]), str(answer.get("detail") or ""))

    async def add_silence(self, by: str | None, matchers: list[str], duration: str, comment: str) -> SilenceRecord:
        """``POST /silences``."""
        body = _claim(by, matchers=matchers, duration=duration, comment=comment)
        return SilenceRecord.model_validate((await self.call("POST", _path("silences"), body)).json())

    async def silences(self) -> SilencesState:
        """``GET /silences``."""
        return SilencesState.model_validate((await self.call("GET", _path("silences"))).json())

    async def expire_silence(self, silence: str, by: str | None) -> SilenceRecord:
        """``POST /silences/{id}/expire``."""
        response = await self.call("POST", _path("silences", silence, "expire"), _claim(by))
        return SilenceRecord.model_validate(response.json())

    async def status(self, service: str | None) -> dict[str, Any]:
        """``GET /status``."""
        report: dict[str, Any] = (await self.call("GET", _path("status"), params={"service": service})).json()
        return report

    async def report(self, repo: str, period: str) -> HealthReport:
        """``GET /report``: a repository's pipeline health report."""
        response = await self.call("GET", _path("report"), params={"repo": repo, "period": period})
        return HealthReport.model_validate(response.json())

    async def audit(
        self,
        since: datetime | None,
        service: str | None,
        env: str | None,
        *,
        until: datetime | None = None,
        actor: str | None = None,
        action: str | None = None,
    ) -> list[str]:
        """``GET /audit``: the chained JSON lines."""
        params = {"since": since.isoformat() if since else None, "service": service, "env": env}
        params.update(until=until.isoformat() if until else None, actor=actor, action=action)
        return [str(line) for line in (await self.call("GET", _path("audit"), params=params)).json()["lines"]]

    async def metrics(self, *, service: str | None, env: str | None, window: str, last_n: int) -> dict[str, Any]:
        """``GET /metrics``: the DORA keys, build success rate, MTTA/MTTR (``tocsin metrics --json``)."""
        params = {"service": service, "env": env, "window": window, "last": last_n}
        report: dict[str, Any] = (await self.call("GET", _path("metrics"), params=params)).json()
        return report

    async def audit_verify(self) -> dict[str, Any]:
        """``GET /audit/verify``: the live journal's verdict."""
        verdict: dict[str, Any] = (await self.call("GET", _path("audit", "verify"))).json()
        return verdict


@asynccontextmanager
async def connect_api() -> AsyncIterator[Api]:
    """An :class:`Api` on ``TOCSIN_URL`` with the credential (see the module doc)."""
    url = os.environ.get(URL_ENV, "").strip().rstrip("/").removesuffix(API)
    if not url.startswith(("http://", "https://")):
        raise BadInput(URL_ENV, f"not an http(s) URL: {url!r}")
    headers = {"Authorization": f"Bearer {await _credential()}", "X-Tocsin-Door": "cli"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=TIMEOUT) as http:
        yield Api(http)


async def run_remote(call: Callable[[Api], Awaitable[T]]) -> T:
    """Run one remote call on a fresh :class:`Api`."""
    async with connect_api() as api:
        return await call(api)
