"""``tocsin status``: open incidents, running deployments and pipeline health, from Temporal's visibility."""

from __future__ import annotations

from typing import Any


from workers.settings import Settings
from workers.temporal import connect

__all__ = ["collect_status"]


def _summary(values: list[float]) -> dict[str, float | int]:
    return {"count": len(values), "avg": (sum(values) / len(values)) if values else 0.0,
            "max": max(values) if values else 0.0}


async def collect_status(settings: Settings, service: str | None) -> dict[str, Any]:
    """Everything ``tocsin status`` shows, as one dict (``--json`` prints it)."""
    client = await connect(settings)
    extra = f" AND TocsinService = '{service}'" if service else ""
    incidents: list[dict[str, Any]] = []
    mtta: list[float] = []
    mttr: list[float] = []
    # Everything comes from visibility (search attributes + memo): no query needs a worker.
    async for wf in client.list_workflows(f"TocsinKind = 'incident'{extra}", limit=1000):
        memo = await wf.memo()
        status = wf.typed_search_attributes.get(_status_key()) or "triggered"
        if memo.get("mtta_seconds") is not None:
            mtta.append(float(memo["mtta_seconds"]))
        if status == "resolved":
            if memo.get("mttr_seconds") is not None:
                mttr.append(float(memo["mttr_seconds"]))
            continue
        if wf.status is not None and wf.status.name != "RUNNING":
            continue
        incidents.append({"id": wf.id, "status": status,
                          "severity": memo.get("severity") or wf.typed_search_attributes.get(_severity_key()) or "",
                          "title": memo.get("title", ""), "service": memo.get("service", ""),
                          "level": memo.get("level", 0), "acknowledged_by": memo.get("acknowledged_by"),
                          "mtta_seconds": memo.get("mtta_seconds"), "created_at": wf.start_time})
    deployments = [
        {"id": wf.id, "status": (wf.typed_search_attributes.get(_status_key()) or "running")}
        async for wf in client.list_workflows(
            f"TocsinKind = 'deployment' AND ExecutionStatus = 'Running'{extra}", limit=200)
    ]
    pipelines = [
        {"id": wf.id, "status": wf.typed_search_attributes.get(_status_key()) or "unknown"}
        async for wf in client.list_workflows(f"TocsinKind = 'pipeline' AND ExecutionStatus = 'Running'{extra}",
                                              limit=500)
    ]
    return {"incidents": incidents, "deployments": deployments, "pipelines": pipelines,
            "mtta_seconds": _summary(mtta), "mttr_seconds": _summary(mttr)}


def _status_key():  # type: ignore[no-untyped-def]
    from workflows.search import STATUS

    return STATUS


def _severity_key():  # type: ignore[no-untyped-def]
    from workflows.search import SEVERITY

    return SEVERITY
