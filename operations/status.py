"""``tocsin status``: open incidents, running deployments and pipeline health, from Temporal's visibility.

Everything comes from visibility (search attributes + memo): no query needs a worker.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, WorkflowExecution
from temporalio.service import RPCError

from operations.context import Context, temporal_errors
from workflows import search
from workflows.policy.durations import format_duration

__all__ = ["collect_status", "namespace_retention", "retention_status", "retention_text"]


def retention_text(delta: timedelta) -> str:
    """A retention as people write it: ``24h``, ``90d``, ``400d`` (whole days from two days up, else hours)."""
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    return format_duration(delta)


async def namespace_retention(client: Client) -> timedelta | None:
    """The workflow execution retention of the client's namespace (None when the server reports none).

    Raises:
        RPCError: the namespace cannot be described.
    """
    described = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=client.namespace))
    if not described.config.HasField("workflow_execution_retention_ttl"):
        return None
    return described.config.workflow_execution_retention_ttl.ToTimedelta()


async def retention_status(client: Client, wanted: str) -> dict[str, Any]:
    """``retention`` in ``tocsin status``: the namespace's retention and what ``audit.history_retention`` asks."""
    out: dict[str, Any] = {"namespace": client.namespace, "history_retention": wanted}
    try:
        have = await namespace_retention(client)
    except RPCError as exc:
        return {**out, "workflow_execution_retention": None, "seconds": None, "error": exc.message}
    return {
        **out,
        "workflow_execution_retention": retention_text(have) if have is not None else None,
        "seconds": int(have.total_seconds()) if have is not None else None,
    }


def _summary(values: list[float]) -> dict[str, float | int]:
    return {
        "count": len(values),
        "avg": (sum(values) / len(values)) if values else 0.0,
        "max": max(values) if values else 0.0,
    }


async def _incident_row(wf: WorkflowExecution, mtta: list[float], mttr: list[float]) -> dict[str, Any] | None:
    memo = await wf.memo()
    status = wf.typed_search_attributes.get(search.STATUS) or "triggered"
    if memo.get("mtta_seconds") is not None:
        mtta.append(float(memo["mtta_seconds"]))
    if status == "resolved":
        if memo.get("mttr_seconds") is not None:
            mttr.append(float(memo["mttr_seconds"]))
        return None
    if wf.status is not None and wf.status.name != "RUNNING":
        return None
    return {
        "id": wf.id,
        "status": status,
        "severity": memo.get("severity") or wf.typed_search_attributes.get(search.SEVERITY) or "",
        "title": memo.get("title", ""),
        "service": memo.get("service", ""),
        "level": memo.get("level", 0),
        "acknowledged_by": memo.get("acknowledged_by"),
        "mtta_seconds": memo.get("mtta_seconds"),
        "created_at": wf.start_time,
    }


def _repo_matches(repo: str, service: str) -> bool:
    """A pipeline belongs to ``service`` when its repository is it, or ends with ``/<service>``."""
    return repo == service or repo.endswith("/" + service)


async def collect_status(ctx: Context, service: str | None = None) -> dict[str, Any]:
    """Everything ``tocsin status`` shows, as one dict (``--json`` prints it)."""
    client = ctx.client
    incidents: list[dict[str, Any]] = []
    mtta: list[float] = []
    mttr: list[float] = []
    with temporal_errors():
        async for wf in client.list_workflows(search.query("incident", service=service), limit=1000):
            row = await _incident_row(wf, mtta, mttr)
            if row is not None:
                incidents.append(row)
        deployments = [
            {"id": wf.id, "status": (wf.typed_search_attributes.get(search.STATUS) or "running")}
            async for wf in client.list_workflows(search.query("deployment", service=service, running=True), limit=200)
        ]
        pipelines = [
            {"id": wf.id, "status": wf.typed_search_attributes.get(search.STATUS) or "unknown"}
            async for wf in client.list_workflows(search.query("pipeline", running=True), limit=500)
            if service is None or _repo_matches(wf.typed_search_attributes.get(search.SERVICE) or "", service)
        ]
        retention = await retention_status(client, ctx.config.audit.history_retention)
    return {
        "retention": retention,
        "incidents": incidents,
        "deployments": deployments,
        "pipelines": pipelines,
        "mtta_seconds": _summary(mtta),
        "mttr_seconds": _summary(mttr),
    }
