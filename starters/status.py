"""``tocsin status``: open incidents, running deployments and pipeline health, from Temporal's visibility."""

from __future__ import annotations

from typing import Any

from temporalio.service import RPCError

from workers.settings import Settings
from workers.temporal import connect

__all__ = ["collect_status"]


def _summary(values: list[float]) -> dict[str, float | int]:
    return {"count": len(values), "avg": (sum(values) / len(values)) if values else 0.0,
            "max": max(values) if values else 0.0}


async def collect_status(settings: Settings, service: str | None) -> dict[str, Any]:
    """Everything ``tocsin status`` shows, as one dict (``--json`` prints it)."""
    from workflows.incident import IncidentWorkflow

    client = await connect(settings)
    extra = f" AND TocsinService = '{service}'" if service else ""
    incidents: list[dict[str, Any]] = []
    mtta: list[float] = []
    mttr: list[float] = []
    async for wf in client.list_workflows(f"TocsinKind = 'incident'{extra}", limit=500):
        try:
            st = await client.get_workflow_handle_for(IncidentWorkflow.run, wf.id).query(IncidentWorkflow.state)
        except RPCError:
            continue
        if st.mtta_seconds is not None:
            mtta.append(st.mtta_seconds)
        if st.mttr_seconds is not None and st.status == "resolved":
            mttr.append(st.mttr_seconds)
        if st.status == "resolved":
            continue
        names = sorted({a.labels.get("alertname", "?") for a in st.alerts.values()})
        incidents.append({"id": st.id, "status": st.status, "severity": st.severity, "title": ", ".join(names),
                          "service": st.group_labels.get("service", ""), "level": st.level,
                          "acknowledged_by": st.acknowledged_by, "mtta_seconds": st.mtta_seconds,
                          "created_at": st.created_at})
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
