"""Deployment activities: hooks, health checks, Prometheus queries, visibility look-ups.

Built once per worker (:class:`DeploymentActivities`) with the Temporal client
(for visibility and the per service/environment lock) and one long-lived
``httpx.AsyncClient``. Failures are classified where the status code is known:
5xx, 408, 429 (``Retry-After`` honoured through ``next_retry_delay``),
timeouts and connection errors are retryable; other 4xx are
``ApplicationError(non_retryable=True)``.

The request/result models are contracts of the deployment workflows
(``workflows.deployment.models``): activities import them from there, never
the reverse. Visibility look-ups are written with ``workflows.search.query``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, timedelta
from typing import Any

import httpx
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from operations.config import resolve_env
from workflows import search
from workflows.deployment.models import (
    LOCK_SIGNAL_ACQUIRE,
    LOCK_WORKFLOW,
    ContextRequest,
    DeployContext,
    HealthCheck,
    HealthResult,
    HookCall,
    HookResult,
    LockInput,
    LockRequest,
    MetricQuery,
    MetricsRequest,
    MetricsResult,
    RunningRequest,
)
from workflows.pipeline import QUERY_STATE as PIPELINE_QUERY_STATE
from workflows.policy.canary import MetricReading

__all__ = ["DeploymentActivities"]

log = logging.getLogger("tocsin")

ROLLBACK_WINDOW = timedelta(days=7)
RETRYABLE_STATUS = {408, 425, 429}


# ---------------------------------------------------------------- classification


def _http_failure(what: str, response: httpx.Response) -> ApplicationError:
    code = response.status_code
    text = response.text[:200].strip()
    message = f"{what}: HTTP {code}{': ' + text if text else ''}"
    if code >= 500 or code in RETRYABLE_STATUS:
        delay = None
        if code == 429:
            try:
                delay = timedelta(seconds=float(response.headers.get("Retry-After", "")))
            except ValueError:
                delay = None
        return ApplicationError(message, type="HookRetryable", next_retry_delay=delay)
    return ApplicationError(message, type="HookRejected", non_retryable=True)


def _resolve(what: str, value: Any) -> Any:
    try:
        return resolve_env(value)
    except KeyError as exc:
        raise ApplicationError(
            f"{what}: environment variable {exc.args[0]} is not set", type="MissingSecret", non_retryable=True
        ) from None


def _transport_failure(what: str, exc: Exception) -> ApplicationError:
    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection error"
    return ApplicationError(f"{what}: {kind}: {exc or type(exc).__name__}", type="HookUnreachable")


# ---------------------------------------------------------------- activities


class DeploymentActivities:
    """Activities of ``DeploymentWorkflow`` and ``DeployLockWorkflow``."""

    def __init__(self, client: Client, http: httpx.AsyncClient | None = None):
        self._client = client
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(30.0))
        self._owns_http = http is None

    async def aclose(self) -> None:
        """Close the HTTP client (when this object created it)."""
        if self._owns_http:
            await self._http.aclose()

    def functions(self) -> list[Any]:
        """The activity callables to register."""
        return [
            self.call_hook,
            self.health_check,
            self.query_metrics,
            self.deployment_context,
            self.request_lock,
            self.workflow_running,
        ]

    # ------------------------------------------------------------ hooks

    @activity.defn(name="deploy_call_hook")
    async def call_hook(self, call: HookCall) -> HookResult:
        """POST JSON to a deploy or rollback hook.

        Raises:
            ApplicationError: retryable for 5xx/408/429, timeouts and connection
                errors; non-retryable for other 4xx.
        """
        url = _resolve(f"hook {call.url}", call.url)
        headers = dict(_resolve(f"hook {call.url} headers", call.headers))
        if call.idempotency_key:
            headers["Idempotency-Key"] = call.idempotency_key
        try:
            response = await self._http.post(url, json=call.payload, headers=headers, timeout=call.timeout_seconds)
        except httpx.HTTPError as exc:
            raise _transport_failure(f"hook {call.url}", exc) from None
        if not response.is_success:
            raise _http_failure(f"hook {call.url}", response)
        return HookResult(status=response.status_code, body=response.text[:500])

    @activity.defn(name="deploy_health_check")
    async def health_check(self, check: HealthCheck) -> HealthResult:
        """One GET of a health URL. Anything but 2xx is retryable: the
        workflow's schedule-to-close timeout is the health deadline."""
        try:
            response = await self._http.get(_resolve(f"health {check.url}", check.url), timeout=check.timeout_seconds)
        except httpx.HTTPError as exc:
            raise _transport_failure(f"health {check.url}", exc) from None
        if not response.is_success:
            raise ApplicationError(f"health {check.url}: HTTP {response.status_code}", type="Unhealthy")
        return HealthResult(url=check.url, status=response.status_code)

    # ------------------------------------------------------------ Prometheus

    async def _instant(self, base: str, query: MetricQuery, timeout: float) -> MetricReading:
        try:
            url = str(resolve_env(base)).rstrip("/") + "/api/v1/query"
        except KeyError as exc:
            return MetricReading(name=query.name, error=f"environment variable {exc.args[0]} is not set")
        try:
            response = await self._http.get(url, params={"query": query.query}, timeout=timeout)
        except httpx.HTTPError as exc:
            return MetricReading(name=query.name, error=f"Prometheus unreachable: {type(exc).__name__}")
        try:
            body = response.json()
        except ValueError:
            return MetricReading(name=query.name, error=f"Prometheus HTTP {response.status_code}: not JSON")
        if response.status_code != 200 or body.get("status") != "success":
            return MetricReading(
                name=query.name,
                error=f"query error: {body.get('errorType', response.status_code)}: {body.get('error', '')}".strip(),
            )
        data = body.get("data") or {}
        kind, result = data.get("resultType"), data.get("result") or []
        try:
            if kind == "scalar":
                value = float(result[1])
            elif kind == "vector":
                if not result:
                    return MetricReading(name=query.name, error="empty result")
                if len(result) > 1:
                    return MetricReading(
                        name=query.name, error=f"{len(result)} series returned; aggregate the query to one"
                    )
                value = float(result[0]["value"][1])
            else:
                return MetricReading(name=query.name, error=f"unsupported result type {kind!r}")
        except (TypeError, ValueError, KeyError, IndexError):
            return MetricReading(name=query.name, error="malformed result")
        if math.isnan(value):
            return MetricReading(name=query.name, error="NaN")
        return MetricReading(name=query.name, value=value)

    @activity.defn(name="deploy_query_metrics")
    async def query_metrics(self, request: MetricsRequest) -> MetricsResult:
        """Run every instant query; a failed or empty query becomes an inconclusive reading."""
        readings = await asyncio.gather(
            *(self._instant(request.prometheus_url, q, request.timeout_seconds) for q in request.queries)
        )
        return MetricsResult(readings=list(readings))

    # ------------------------------------------------------------ visibility

    async def _list(self, query: str, limit: int = 200) -> list[Any]:
        out = []
        async for execution in self._client.list_workflows(query, limit=limit):
            out.append(execution)
        return out

    async def _pipelines(self, request: ContextRequest, ctx: DeployContext) -> None:
        service = request.service
        executions = await self._list(search.query("pipeline", running=True))
        mine = []
        for ex in executions:
            repo = ex.typed_search_attributes.get(search.SERVICE) or ""
            if repo == service or repo.endswith("/" + service):
                mine.append(ex)
        verdicts: list[tuple[str, bool]] = []
        failures = 0
        for ex in mine:
            try:
                state = await self._client.get_workflow_handle(ex.id).query(
                    PIPELINE_QUERY_STATE, rpc_timeout=timedelta(seconds=5)
                )
            except Exception as exc:
                log.info("pipeline %s did not answer its state query: %s", ex.id, exc)
                if (ex.typed_search_attributes.get(search.STATUS) or "") == "failing":
                    failures += 1
                continue
            tracks = state.get("tracks", {}) if isinstance(state, dict) else {}
            for name, track in tracks.items():
                failures += int(track.get("consecutive_failures") or 0)
                last_commit = track.get("last_commit") or ""
                if (
                    request.commit
                    and last_commit
                    and (last_commit.startswith(request.commit) or request.commit.startswith(last_commit))
                ):
                    status = track.get("last_status")
                    if status in ("success", "failure"):
                        verdicts.append((f"{ex.id} ({name}): {status}", status == "success"))
        ctx.recent_pipeline_failures = failures
        if request.commit is None:
            ctx.pipeline_detail = "no commit given"
        elif verdicts:
            ctx.pipeline_green = all(ok for _, ok in verdicts)
            ctx.pipeline_detail = "; ".join(text for text, _ in verdicts)

    @activity.defn(name="deploy_context")
    async def deployment_context(self, request: ContextRequest) -> DeployContext:
        """Open critical incidents, CI state, recent rollbacks and the last deploy, from visibility.

        Raises:
            ApplicationError: retryable when Temporal's visibility fails.
        """
        ctx = DeployContext()
        service, env = request.service, request.env
        try:
            incidents = await self._list(
                search.query(
                    "incident",
                    service=service,
                    severity="critical",
                    status=search.ALERTING_INCIDENT_STATUSES,
                    running=True,
                )
            )
            ctx.open_critical_incidents = sorted(ex.id for ex in incidents)
            await self._pipelines(request, ctx)
            # Strictly after the whole second, as always; query(started_since=…) would be ">=" to the millisecond.
            since = (request.now - ROLLBACK_WINDOW).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            rollbacks = await self._list(
                search.query("deployment", service=service, status="rolled_back") + f" AND StartTime > '{since}'"
            )
            ctx.recent_rollbacks = sum(1 for ex in rollbacks if ex.id != request.workflow_id)
            deployed = await self._list(search.query("deployment", service=service, env=env, status="deployed"))
            times = [ex.close_time or ex.start_time for ex in deployed if ex.id != request.workflow_id]
            ctx.last_deploy_at = max(times) if times else None
        except RPCError as exc:
            non_retryable = exc.status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.PERMISSION_DENIED)
            raise ApplicationError(
                f"visibility query failed: {exc.message}", type="VisibilityError", non_retryable=non_retryable
            ) from None
        return ctx

    # ------------------------------------------------------------ lock

    @activity.defn(name="deploy_request_lock")
    async def request_lock(self, request: LockRequest) -> None:
        """Signal-with-start the service/environment lock with ``acquire``."""
        await self._client.start_workflow(
            LOCK_WORKFLOW,
            LockInput(service=request.service, env=request.env),
            id=request.lock_id,
            task_queue=activity.info().task_queue,
            start_signal=LOCK_SIGNAL_ACQUIRE,
            start_signal_args=[request.acquire],
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search.KIND, "deploy-lock"),
                    SearchAttributePair(search.SERVICE, request.service),
                    SearchAttributePair(search.ENVIRONMENT, request.env),
                ]
            ),
            static_summary=f"deploy lock {request.service}/{request.env}",
        )

    @activity.defn(name="deploy_workflow_running")
    async def workflow_running(self, request: RunningRequest) -> bool:
        """Whether a workflow (a lock holder) is still running."""
        try:
            desc = await self._client.get_workflow_handle(request.workflow_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise ApplicationError(f"describe failed: {exc.message}", type="VisibilityError") from None
        return desc.status == WorkflowExecutionStatus.RUNNING
