"""Alerts in (Alertmanager webhook, ``tocsin alert``) → incident workflows; human actions out.

Shared by the gateway and the CLI so both behave the same.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from workflows import search
from workflows.config import Config
from workflows.incident.workflow import IncidentWorkflow
from workflows.incident.models import ActionResult, Alert, AlertBatch, HumanAction, IncidentInput
from workflows.policy.incidents import group_severity, incident_id
from workflows.policy.routing import build_tree, match_routes

__all__ = ["AMAlert", "AMWebhook", "dispatch_alerts", "fingerprint", "incident_action", "ActionRefused",
           "UnknownIncident"]


class AMAlert(BaseModel):
    """One alert of an Alertmanager webhook (payload version 4)."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class AMWebhook(BaseModel):
    """Alertmanager's webhook body (``version: "4"``)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str = ""
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AMAlert] = Field(min_length=1)

    def to_alerts(self) -> list[Alert]:
        """Tocsin alerts (Alertmanager's zero time ``0001-01-01`` means "no end")."""
        out = []
        for a in self.alerts:
            ends = a.endsAt if a.endsAt and a.endsAt.year > 1 else None
            out.append(Alert(fingerprint=a.fingerprint or fingerprint(a.labels), status=a.status, labels=a.labels,
                             annotations=a.annotations, starts_at=a.startsAt, ends_at=ends,
                             generator_url=a.generatorURL))
        return out


def fingerprint(labels: dict[str, str]) -> str:
    """A stable fingerprint of a label set (for alerts that come without one)."""
    body = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


class _Group(BaseModel):
    route_path: str
    group_labels: dict[str, str]
    alerts: list[Alert] = Field(default_factory=list)


def group_alerts(config: Config, alerts: list[Alert]) -> dict[str, _Group]:
    """Route each alert and group it by (route, group_by labels), as Alertmanager's dispatcher does."""
    tree = build_tree(config.route)
    groups: dict[str, _Group] = {}
    for alert in alerts:
        for node in match_routes(tree, alert.labels):
            labels = node.group_key_labels(alert.labels)
            key = incident_id(node.path, labels)
            groups.setdefault(key, _Group(route_path=node.path, group_labels=labels)).alerts.append(alert)
    return groups


async def dispatch_alerts(client: Client, config: Config, alerts: list[Alert], task_queue: str,
                          source: str) -> list[str]:
    """Signal-with-start one ``IncidentWorkflow`` per group; a retried delivery changes nothing.

    Returns:
        The incident ids, in first-seen order.
    """
    groups = group_alerts(config, alerts)

    async def start(wid: str, group: _Group) -> None:
        labels = [a.labels for a in group.alerts]
        service = next((lbl["service"] for lbl in labels if lbl.get("service")), "")
        env = next((lbl.get("env") or lbl.get("environment") or "" for lbl in labels
                    if lbl.get("env") or lbl.get("environment")), "")
        attrs = [SearchAttributePair(search.KIND, "incident"), SearchAttributePair(search.STATUS, "triggered"),
                 SearchAttributePair(search.SEVERITY, group_severity(labels))]
        if service:
            attrs.append(SearchAttributePair(search.SERVICE, service))
        if env:
            attrs.append(SearchAttributePair(search.ENVIRONMENT, env))
        names = sorted({lbl.get("alertname", "?") for lbl in labels})
        await client.start_workflow(
            IncidentWorkflow.run,
            IncidentInput(id=wid, route_path=group.route_path, group_labels=group.group_labels),
            id=wid, task_queue=task_queue,
            start_signal="add_alerts", start_signal_args=[AlertBatch(alerts=group.alerts, source=source)],
            search_attributes=TypedSearchAttributes(attrs),
            static_summary=f"Incident: {', '.join(names)[:150]}" + (f" on {service}" if service else ""),
        )

    await asyncio.gather(*(start(wid, group) for wid, group in groups.items()))
    return list(groups)


class UnknownIncident(Exception):
    """No incident with that id."""


class ActionRefused(Exception):
    """The incident refused the action (the reason is the message)."""


async def incident_action(client: Client, wid: str, update: str, action: HumanAction | Any) -> ActionResult:
    """Run one human action (an update with identity) on an incident.

    Raises:
        UnknownIncident: no such workflow.
        ActionRefused: the validator refused (e.g. already resolved).
    """
    handle = client.get_workflow_handle_for(IncidentWorkflow.run, wid)
    try:
        return await handle.execute_update(update, action, result_type=ActionResult)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise ActionRefused(getattr(cause, "message", None) or str(cause)) from None
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND and "completed" not in exc.message:
            raise
    # Not running: closed (resolved) or never existed?
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise UnknownIncident(f"no incident {wid}") from None
        raise
    raise ActionRefused(f"incident {wid} is closed ({desc.status.name.lower() if desc.status else 'closed'}), "
                        "it was resolved")


def now_utc() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(timezone.utc)


async def ensure_started(client: Client, run: Any, arg: Any, wid: str, task_queue: str,
                         kind: str) -> None:
    """Start an entity workflow unless it is already running."""
    await client.start_workflow(run, arg, id=wid, task_queue=task_queue,
                                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                                search_attributes=TypedSearchAttributes([SearchAttributePair(search.KIND, kind)]))
