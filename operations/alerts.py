"""Alerts in (Alertmanager webhook, ``tocsin alert``, Tocsin itself) → one incident workflow per group."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from operations.context import Context, require_actor, temporal_errors
from operations.errors import BadInput
from workflows import incident, search
from workflows.config import Config
from workflows.identity import Actor
from workflows.incident import Alert, AlertBatch, IncidentInput
from workflows.policy.incidents import group_severity, incident_id
from workflows.policy.routing import match_routes

__all__ = ["fingerprint", "group_alerts", "dispatch_alerts", "raise_alert", "ALERT_SEVERITIES"]

ALERT_SEVERITIES = ("info", "warning", "error", "critical")


def fingerprint(labels: dict[str, str]) -> str:
    """A stable fingerprint of a label set (for alerts that come without one)."""
    body = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(body.encode()).hexdigest()[:16]


class AlertGroup(BaseModel):
    """The alerts of one route and one set of group-by label values: one incident."""

    route_path: str
    group_labels: dict[str, str]
    alerts: list[Alert] = Field(default_factory=list)


def group_alerts(config: Config, alerts: list[Alert]) -> dict[str, AlertGroup]:
    """Route each alert and group it by (route, group_by labels), as Alertmanager's dispatcher does."""
    tree = config.route_tree()
    groups: dict[str, AlertGroup] = {}
    for alert in alerts:
        for node in match_routes(tree, alert.labels):
            labels = node.group_key_labels(alert.labels)
            key = incident_id(node.path, labels)
            groups.setdefault(key, AlertGroup(route_path=node.path, group_labels=labels)).alerts.append(alert)
    return groups


def _attributes(group: AlertGroup) -> tuple[list[SearchAttributePair], str]:
    labels = [a.labels for a in group.alerts]
    service = next((lbl["service"] for lbl in labels if lbl.get("service")), "")
    env = next(
        (lbl.get("env") or lbl.get("environment") or "" for lbl in labels if lbl.get("env") or lbl.get("environment")),
        "",
    )
    attrs = [
        SearchAttributePair(search.KIND, "incident"),
        SearchAttributePair(search.STATUS, "triggered"),
        SearchAttributePair(search.SEVERITY, group_severity(labels)),
    ]
    if service:
        attrs.append(SearchAttributePair(search.SERVICE, service))
    if env:
        attrs.append(SearchAttributePair(search.ENVIRONMENT, env))
    names = sorted({lbl.get("alertname", "?") for lbl in labels})
    summary = f"Incident: {', '.join(names)[:150]}" + (f" on {service}" if service else "")
    return attrs, summary


async def dispatch_alerts(ctx: Context, alerts: list[Alert], source: str) -> list[str]:
    """Signal-with-start one ``IncidentWorkflow`` per group; a retried delivery changes nothing.

    Args:
        ctx: client, config and task queue.
        alerts: the alerts, firing or resolved.
        source: where they came from (``alertmanager:<receiver>``, ``cli``, a workflow id).

    Returns:
        The incident ids, in first-seen order.
    """
    groups = group_alerts(ctx.config, alerts)

    async def start(wid: str, group: AlertGroup) -> None:
        attrs, summary = _attributes(group)
        await ctx.client.start_workflow(
            incident.WORKFLOW,
            IncidentInput(id=wid, route_path=group.route_path, group_labels=group.group_labels),
            id=wid,
            task_queue=ctx.task_queue,
            start_signal=incident.SIGNAL_ADD_ALERTS,
            start_signal_args=[AlertBatch(alerts=group.alerts, source=source)],
            search_attributes=TypedSearchAttributes(attrs),
            static_summary=summary,
        )

    with temporal_errors():
        await asyncio.gather(*(start(wid, group) for wid, group in groups.items()))
    return list(groups)


async def raise_alert(
    ctx: Context,
    actor: Actor,
    name: str,
    severity: str,
    labels: dict[str, str] | None = None,
    summary: str | None = None,
) -> list[str]:
    """Raise one alert by hand (``tocsin alert``): routed and grouped like any other.

    Raises:
        BadInput: empty name, unknown severity, bad label.

    Returns:
        The incident ids it reached.
    """
    require_actor(actor)
    if not name.strip():
        raise BadInput("--name", "must not be empty")
    if severity not in ALERT_SEVERITIES:
        raise BadInput("--severity", f"must be one of {'|'.join(ALERT_SEVERITIES)}, got {severity!r}")
    full = {"alertname": name, "severity": severity}
    for key, value in (labels or {}).items():
        if not key.strip():
            raise BadInput("--label", f"empty label name in {key}={value}")
        full[key.strip()] = value
    alert = Alert(
        fingerprint=fingerprint(full),
        labels=full,
        annotations={"summary": summary} if summary else {},
        starts_at=datetime.now(UTC),
    )
    return await dispatch_alerts(ctx, [alert], source="cli" if actor.via == "cli" else f"{actor.via}:{actor.name}")
