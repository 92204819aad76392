"""The activities a deployment and its lock call, with their timeouts and retry policies.

Each function issues exactly one activity command; keeping them in one place
keeps the options (which are part of the recorded history) in one place too.
Activities are imported through ``imports_passed_through`` and referenced by
method, so their registered names (``deploy_call_hook``…) are used.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.deployment.models import (
    ContextRequest,
    DeployContext,
    HealthCheck,
    HookCall,
    LockRequest,
    MetricsRequest,
    MetricsResult,
    RunningRequest,
)
from workflows.incident.models import AlertBatch
from workflows.policy.durations import parse_duration

with workflow.unsafe.imports_passed_through():
    from activities.deployments import DeploymentActivities
    from activities.incidents import IncidentActivities

__all__ = [
    "HOOK_RETRY",
    "HEALTH_RETRY",
    "VISIBILITY_RETRY",
    "METRICS_RETRY",
    "INCIDENT_RETRY",
    "error_text",
    "request_lock",
    "workflow_running",
    "deployment_context",
    "call_hook",
    "query_metrics",
    "start_health_checks",
    "raise_alerts",
]

HOOK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(seconds=30)
)
HEALTH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=1.5, maximum_interval=timedelta(seconds=10)
)
VISIBILITY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10), maximum_attempts=10
)
METRICS_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)
INCIDENT_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=10)


def error_text(exc: BaseException) -> str:
    """The innermost message of an activity failure (what a person should read)."""
    cause: BaseException | None = exc
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause) or type(cause).__name__


async def request_lock(request: LockRequest) -> None:
    """Signal-with-start the service/environment lock with ``acquire``."""
    await workflow.execute_activity_method(
        DeploymentActivities.request_lock,
        request,
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=VISIBILITY_RETRY,
    )


async def workflow_running(workflow_id: str) -> bool:
    """Whether ``workflow_id`` (a lock holder) is still running."""
    return await workflow.execute_activity_method(
        DeploymentActivities.workflow_running,
        RunningRequest(workflow_id=workflow_id),
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=VISIBILITY_RETRY,
    )


async def deployment_context(request: ContextRequest) -> DeployContext:
    """Open critical incidents, CI state, recent rollbacks and the last deploy, from visibility.

    Raises:
        ActivityError: visibility did not answer within the retries.
    """
    return await workflow.execute_activity_method(
        DeploymentActivities.deployment_context,
        request,
        start_to_close_timeout=timedelta(seconds=60),
        retry_policy=VISIBILITY_RETRY,
    )


async def call_hook(kind: str, hook: Any, payload: dict[str, Any], idempotency_key: str) -> None:
    """POST ``payload`` to a deploy or rollback hook, within the hook's timeout and deadline.

    Args:
        kind: ``deploy`` or ``rollback`` (for the activity summary).
        hook: the hook's config (``url``, ``headers``, ``timeout``, ``deadline``).
        payload: the JSON body.
        idempotency_key: sent as ``Idempotency-Key``.

    Raises:
        ActivityError: the hook refused, or did not answer before its deadline.
    """
    timeout = parse_duration(hook.timeout)
    await workflow.execute_activity_method(
        DeploymentActivities.call_hook,
        HookCall(
            url=hook.url,
            payload=payload,
            headers=hook.headers,
            timeout_seconds=timeout.total_seconds(),
            idempotency_key=idempotency_key,
        ),
        start_to_close_timeout=timeout + timedelta(seconds=5),
        schedule_to_close_timeout=parse_duration(hook.deadline),
        retry_policy=HOOK_RETRY,
        summary=f"{kind} hook {payload.get('weight', '')}",
    )


async def query_metrics(request: MetricsRequest) -> MetricsResult:
    """One measurement: every query of ``request``.

    Raises:
        ActivityError: Prometheus could not be asked at all.
    """
    return await workflow.execute_activity_method(
        DeploymentActivities.query_metrics,
        request,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=METRICS_RETRY,
    )


def start_health_checks(urls: list[str], deadline: timedelta) -> list[workflow.ActivityHandle[Any]]:
    """Start one health check per URL, each retried until ``deadline``; they run concurrently."""
    return [
        workflow.start_activity_method(
            DeploymentActivities.health_check,
            HealthCheck(url=url),
            start_to_close_timeout=timedelta(seconds=15),
            schedule_to_close_timeout=deadline,
            retry_policy=HEALTH_RETRY,
            summary=f"health {url}",
        )
        for url in urls
    ]


async def raise_alerts(batch: AlertBatch) -> list[str]:
    """Route ``batch`` like any alerts; returns the incidents they went to.

    Raises:
        ActivityError: the incidents could not be reached within the retries.
    """
    return await workflow.execute_activity_method(
        IncidentActivities.raise_alerts,
        batch,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=INCIDENT_RETRY,
    )
