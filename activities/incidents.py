"""Incident activities: suppression (silences, inhibition), rollback triggers, MTTA/MTTR metrics.

Built once per worker with the worker's Temporal client: they read other
workflows (the silences store, firing incidents, deployments) through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Histogram
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from operations.alerts import dispatch_alerts
from operations.config import ConfigStore
from operations.context import Context
from operations.deployments import rollback
from workflows import incident, search, silences
from workflows.config import Config
from workflows.identity import Actor
from workflows.incident.models import (
    AlertBatch,
    FirstLook,
    HeldIncident,
    IncidentMetrics,
    IncidentState,
    MuteQuery,
    MuteVerdict,
    RollbackTrigger,
    RouteState,
    RouteStateQuery,
    Suppression,
    SuppressionQuery,
)
from workflows.policy.inhibit import inhibited
from workflows.policy.matchers import matches_all
from workflows.policy.routing import find_node
from workflows.policy.silences import silence_matchers
from workflows.policy.timeintervals import active_names

__all__ = ["IncidentActivities", "MTTA", "MTTR"]

log = logging.getLogger("tocsin.incidents")

_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
MTTA = Histogram(
    "tocsin_incident_mtta_seconds",
    "Time from first alert to acknowledgement",
    ["severity", "service"],
    buckets=_BUCKETS,
)
MTTR = Histogram(
    "tocsin_incident_mttr_seconds", "Time from first alert to resolution", ["severity", "service"], buckets=_BUCKETS
)


class IncidentActivities:
    """Activities used by ``IncidentWorkflow``."""

    SILENCES_TTL = 1.0
    """Seconds a worker reuses the silences it read (a new silence applies within this).

    Past half of it, a read still answers from the cache and refreshes it in the background
    (one refresh at a time), so while incidents keep arriving no first page waits for the
    silences store; a read past the whole of it waits for a fresh list, as before."""

    def __init__(self, client: Client, store: ConfigStore, snapshot: Callable[[], Awaitable[Config]]) -> None:
        """Args:
        client: reads silences and other incidents.
        store: the worker's config.
        snapshot: the config snapshot flows record (``DeliveryActivities.load_config``).
        """
        self._client = client
        self._store = store
        self._snapshot = snapshot
        self._silences_cache: tuple[float, list[Any]] | None = None
        self._silences_read: asyncio.Task[list[Any]] | None = None

    async def _silences(self, at: datetime | None) -> list[dict]:
        cached = self._silences_cache
        if cached is not None and (age := time.monotonic() - cached[0]) < self.SILENCES_TTL:
            records = cached[1]
            if age >= self.SILENCES_TTL / 2:
                self._read_silences()  # refresh ahead: the next read finds a fresh list
        else:
            records = await asyncio.shield(self._read_silences())
        now = at or datetime.now(UTC)
        return [r.model_dump() for r in records if r.active(now)]

    def _read_silences(self) -> asyncio.Task[list[Any]]:
        """The read of the silences store in flight, or a new one (concurrent reads share one query)."""
        if self._silences_read is None or self._silences_read.done():
            self._silences_read = asyncio.create_task(self._query_silences())
        return self._silences_read

    async def _query_silences(self) -> list[Any]:
        started = time.monotonic()
        try:
            state = await self._client.get_workflow_handle(silences.SILENCES_ID).query(
                silences.QUERY_LIST, result_type=silences.SilencesState, rpc_timeout=timedelta(seconds=5)
            )
            records: list[Any] = state.silences
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                # The store did not answer: notify rather than hold everything (never silently lost).
                log.warning("silences store did not answer (%s): notifying without silences", exc.message)
            records = []
        self._silences_cache = (started, records)
        return records

    async def aclose(self) -> None:
        """Stop a background read of the silences store."""
        if self._silences_read is not None and not self._silences_read.done():
            self._silences_read.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._silences_read

    async def _firing_elsewhere(self, incident: str) -> list[dict[str, str]]:
        statuses = [s for s in search.OPEN_INCIDENT_STATUSES if s not in ("silenced", "inhibited")]
        query = search.query("incident", status=statuses, running=True)
        labels: list[dict[str, str]] = []
        async for wf in self._client.list_workflows(query, limit=500):
            if wf.id == incident:
                continue
            try:
                state = await self._incident_state(wf.id)
            except RPCError:
                continue
            labels.extend(a.labels for a in state.firing())
        return labels

    async def _incident_state(self, wid: str) -> IncidentState:
        return await self._client.get_workflow_handle(wid).query(incident.QUERY_STATE, result_type=IncidentState)

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
            sources = await self._firing_elsewhere(query.incident)
            if all(inhibited(labels, sources, config.inhibit_rules) for labels in query.alerts):
                result.inhibited_by.append("inhibit_rules")
        return result

    @activity.defn(name="mute_verdict")
    async def mute_verdict(self, query: MuteQuery) -> MuteVerdict:
        """The one muting stage: silences, then inhibition, then the route's time intervals and digest."""
        suppression = await self.check_suppression(
            SuppressionQuery(incident=query.incident, alerts=query.alerts, at=query.at)
        )
        route = await self.route_state(RouteStateQuery(route_path=query.route_path, at=query.at))
        return MuteVerdict(
            silenced_by=suppression.silenced_by,
            inhibited_by=suppression.inhibited_by,
            muted_by=route.muted_by,
            digest=route.digest,
        )

    @activity.defn(name="first_look")
    async def first_look(self, query: MuteQuery) -> FirstLook:
        """A new incident's config snapshot, and its mute verdict when its route waits no ``group_wait``."""
        tree = self._store.get().route_tree()  # the store's config keeps its tree; a snapshot would build it anew
        node = find_node(tree, query.route_path) or tree
        verdict = await self.mute_verdict(query) if node.group_wait <= timedelta(0) else None
        return FirstLook(config=await self._snapshot(), verdict=verdict)

    @activity.defn(name="route_state")
    async def route_state(self, query: RouteStateQuery) -> RouteState:
        """Time-interval muting of a route at an instant, and whether its receiver is a digest."""
        config = self._store.get()
        tree = config.route_tree()
        node = find_node(tree, query.route_path) or tree
        muted = active_names(config.time_intervals, node.mute_time_intervals, query.at)
        if node.active_time_intervals and not active_names(config.time_intervals, node.active_time_intervals, query.at):
            muted += [f"outside {', '.join(node.active_time_intervals)}"]
        receiver = config.receiver(node.receiver)
        return RouteState(muted_by=muted, digest=bool(receiver and receiver.digest))

    @activity.defn(name="held_incidents")
    async def held_incidents(self, receiver: str) -> list[HeldIncident]:
        """Incidents of a digest receiver waiting for the digest (from visibility and their state)."""
        held: list[HeldIncident] = []
        async for wf in self._client.list_workflows(search.query("incident", status="held", running=True), limit=1000):
            try:
                st = await self._incident_state(wf.id)
            except RPCError:
                continue
            if st.receiver != receiver or not st.held_for_digest or st.digest:
                continue
            names = sorted({a.labels.get("alertname", "?") for a in st.alerts.values()})
            service = st.group_labels.get("service", "")
            held.append(
                HeldIncident(
                    id=st.id,
                    title=", ".join(names) + (f" on {service}" if service else ""),
                    severity=st.severity,
                    status=st.status,
                    first_seen=st.created_at,
                    alerts=st.counts.seen or len(st.alerts),
                    resolved=st.resolved_at is not None,
                )
            )
        return sorted(held, key=lambda h: (h.first_seen is None, h.first_seen))

    def _context(self) -> Context:
        return Context(self._client, self._store.get(), activity.info().task_queue)

    @activity.defn(name="request_rollback")
    async def request_rollback(self, trigger: RollbackTrigger) -> str:
        """Abort the service/environment's running deployment, or roll back its last one."""
        outcome = await rollback(
            self._context(),
            Actor.system(f"tocsin:{trigger.incident}", via="alertmanager"),
            trigger.service,
            trigger.environment,
            trigger.reason,
            source=trigger.incident,
        )
        return " ".join(str(part) for part in vars(outcome).values() if part)

    @activity.defn(name="raise_alerts")
    async def raise_alerts(self, batch: AlertBatch) -> list[str]:
        """Raise alerts from inside Tocsin (a rollback's incident): routed and grouped like any other."""
        return await dispatch_alerts(self._context(), batch.alerts, source=batch.source)

    @activity.defn(name="record_incident_metrics")
    async def record_metrics(self, metrics: IncidentMetrics) -> None:
        """Observe MTTA/MTTR histograms (exported on /metrics)."""
        if metrics.mtta_seconds is not None:
            MTTA.labels(metrics.severity, metrics.service).observe(metrics.mtta_seconds)
        if metrics.mttr_seconds is not None:
            MTTR.labels(metrics.severity, metrics.service).observe(metrics.mttr_seconds)
