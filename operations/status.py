"""``tocsin status``: open incidents, running deployments and pipeline health, from Temporal's visibility.

Everything comes from visibility (search attributes + memo): no query needs a worker.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowExecution

from operations.context import Context, temporal_errors
from workflows import search

__all__ = ["collect_status"]


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
    return {
        "incidents": incidents,
        "deployments": deployments,
        "pipelines": pipelines,
        "mtta_seconds": _summary(mtta),
        "mttr_seconds": _summary(mttr),
    }
