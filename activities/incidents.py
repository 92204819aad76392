"""Incident activities: suppression (silences, inhibition), rollback triggers, MTTA/MTTR metrics.

Built once per worker with the worker's Temporal client: they read other
workflows (the silences store, firing incidents, deployments) through it.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from datetime import datetime, timedelta, timezone

from prometheus_client import Histogram
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from operations.config import ConfigStore
from workflows.incident.models import (
    OPEN_STATUSES,
    AlertBatch,
    HeldIncident,
    RouteState,
    RouteStateQuery,
    IncidentMetrics,
    RollbackTrigger,
    Suppression,
    SuppressionQuery,
)
from workflows.policy.matchers import matches_all
from workflows.policy.silences import silence_matchers

__all__ = ["IncidentActivities", "MTTA", "MTTR"]

log = logging.getLogger("tocsin.incidents")

_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
MTTA = Histogram("tocsin_incident_mtta_seconds", "Time from first alert to acknowledgement",
                 ["severity", "service"], buckets=_BUCKETS)
MTTR = Histogram("tocsin_incident_mttr_seconds", "Time from first alert to resolution",
                 ["severity", "service"], buckets=_BUCKETS)


class IncidentActivities:
    """Activities used by ``IncidentWorkflow``."""

    SILENCES_TTL = 1.0
    """Seconds a worker reuses the silences it read (a new silence applies within this)."""

    def __init__(self, client: Client, store: ConfigStore):
        self._client = client
        self._store = store
        self._silences_cache: tuple[float, list[Any]] | None = None

    async def _silences(self, at: datetime | None) -> list[dict]:  # type: ignore[type-arg]
        from workflows.silences.models import SILENCES_ID
        from workflows.silences.workflow import SilencesWorkflow

        cached = self._silences_cache
        if cached is not None and time.monotonic() - cached[0] < self.SILENCES_TTL:
            records = cached[1]
        else:
            try:
                state = await self._client.get_workflow_handle_for(SilencesWorkflow.run, SILENCES_ID).query(
                    SilencesWorkflow.list, rpc_timeout=timedelta(seconds=5))
                records = state.silences
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    # The store did not answer: notify rather than hold everything (never silently lost).
                    log.warning("silences store did not answer (%s): notifying without silences", exc.message)
                records = []
            self._silences_cache = (time.monotonic(), records)
        now = at or datetime.now(timezone.utc)
        return [r.model_dump() for r in records if r.active(now)]

    async def _firing_elsewhere(self, incident: str) -> list[dict[str, str]]:
        from workflows.incident.workflow import IncidentWorkflow

        statuses = ", ".join(f"'{s}'" for s in OPEN_STATUSES if s not in ("silenced", "inhibited"))
        query = f"TocsinKind = 'incident' AND TocsinStatus IN ({statuses}) AND ExecutionStatus = 'Running'"
        labels: list[dict[str, str]] = []
        async for wf in self._client.list_workflows(query, limit=500):
            if wf.id == incident:
                continue
            try:
                state = await self._client.get_workflow_handle_for(IncidentWorkflow.run, wf.id).query(
                    IncidentWorkflow.state)
            except RPCError:
                continue
            labels.extend(a.labels for a in state.firing())
        return labels

    @activity.defn(name="check_suppression")
    async def check_suppression(self, query: SuppressionQuery) -> Suppression:
        """Active silences matching any firing alert; inhibit rules matched by incidents firing now."""
        result = Suppression()
        if not query.alerts:
            return result
        for silence in await self._silences(query.at):
            matchers = silence_matchers(silence["matchers"])
            if all(matches_all(matchers, labels) for labels in query.alerts):
                result.silenced_by.append(f"silence {silence['id']} ({silence['created_by']})")
        config = self._store.get()
        if query.inhibition and config.inhibit_rules and not result.silenced_by:
            from workflows.policy.inhibit import inhibited

            sources = await self._firing_elsewhere(query.incident)
            if all(inhibited(labels, sources, config.inhibit_rules) for labels in query.alerts):
                result.inhibited_by.append("inhibit_rules")
        return result

    @activity.defn(name="route_state")
    async def route_state(self, query: RouteStateQuery) -> RouteState:
        """Time-interval muting of a route at an instant, and whether its receiver is a digest."""
        from workflows.policy.routing import build_tree
        from workflows.policy.timeintervals import active_names

        config = self._store.get()
        stack = [build_tree(config.route)]
        node = stack[0]
        while stack:
            candidate = stack.pop()
            if candidate.path == query.route_path:
                node = candidate
                break
            stack.extend(candidate.children)
        muted = active_names(config.time_intervals, node.mute_time_intervals, query.at)
        if node.active_time_intervals and not active_names(config.time_intervals, node.active_time_intervals,
                                                            query.at):
            muted += [f"outside {', '.join(node.active_time_intervals)}"]
        receiver = config.receiver(node.receiver)
        return RouteState(muted_by=muted, digest=bool(receiver and receiver.digest))

    @activity.defn(name="held_incidents")
    async def held_incidents(self, receiver: str) -> list[HeldIncident]:
        """Incidents of a digest receiver waiting for the digest (from visibility and their state)."""
        from workflows.incident.workflow import IncidentWorkflow

        held: list[HeldIncident] = []
        async for wf in self._client.list_workflows(
                "TocsinKind = 'incident' AND TocsinStatus = 'held' AND ExecutionStatus = 'Running'", limit=1000):
            try:
                st = await self._client.get_workflow_handle_for(IncidentWorkflow.run, wf.id).query(
                    IncidentWorkflow.state)
            except RPCError:
                continue
            if st.receiver != receiver or not st.held_for_digest or st.digest:
                continue
            names = sorted({a.labels.get("alertname", "?") for a in st.alerts.values()})
            service = st.group_labels.get("service", "")
            held.append(HeldIncident(id=st.id, title=", ".join(names) + (f" on {service}" if service else ""),
                                     severity=st.severity, status=st.status, first_seen=st.created_at,
                                     alerts=len(st.alerts), resolved=st.resolved_at is not None))
        return sorted(held, key=lambda h: (h.first_seen is None, h.first_seen))

    @activity.defn(name="request_rollback")
    async def request_rollback(self, trigger: RollbackTrigger) -> str:
        """Abort the service/environment's running deployment, or roll back its last one."""
        from starters.deployments import request_rollback
        from workflows.deployment import RollbackRequest

        outcome = await request_rollback(
            self._client, trigger.service, trigger.environment,
            RollbackRequest(by=f"tocsin:{trigger.incident}", reason=trigger.reason, source=trigger.incident),
            activity.info().task_queue)
        return " ".join(str(part) for part in vars(outcome).values() if part)

    @activity.defn(name="raise_alerts")
    async def raise_alerts(self, batch: AlertBatch) -> list[str]:
        """Raise alerts from inside Tocsin (a rollback's incident): routed and grouped like any other."""
        from starters.incidents import dispatch_alerts

        return await dispatch_alerts(self._client, self._store.get(), batch.alerts, activity.info().task_queue,
                                     source=batch.source)

    @activity.defn(name="record_incident_metrics")
    async def record_metrics(self, metrics: IncidentMetrics) -> None:
        """Observe MTTA/MTTR histograms (exported on /metrics)."""
        if metrics.mtta_seconds is not None:
            MTTA.labels(metrics.severity, metrics.service).observe(metrics.mtta_seconds)
        if metrics.mttr_seconds is not None:
            MTTR.labels(metrics.severity, metrics.service).observe(metrics.mttr_seconds)
