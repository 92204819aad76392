"""Incident policy: group keys, severity, messages. Pure.

The escalation ladder lives in :mod:`workflows.policy.escalation`; its names are re-exported here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from workflows.models import Action, Link, Message, MessageField, Severity
from workflows.policy.alert_limits import SEARCH_ATTRIBUTE_MAX, truncate
from workflows.policy.escalation import DEFAULT_LADDER, EscalationLevel, EscalationPolicy, Repeats, Rung, ladder

__all__ = [
    "incident_id",
    "SEVERITY_ORDER",
    "group_severity",
    "incident_service",
    "EscalationLevel",
    "EscalationPolicy",
    "Rung",
    "Repeats",
    "ladder",
    "incident_message",
    "DEFAULT_LADDER",
]

SEVERITY_ORDER = {"info": 0, "success": 0, "warning": 1, "error": 2, "critical": 3}


def incident_id(route_path: str, group_labels: Mapping[str, str]) -> str:
    """``incident/<hash>``: one incident per route and group-by label values (stable, so starts dedupe)."""
    body = route_path + "|" + ",".join(f"{k}={v}" for k, v in sorted(group_labels.items()))
    return "incident/" + hashlib.sha256(body.encode()).hexdigest()[:16]


def group_severity(labels: Iterable[Mapping[str, str]]) -> Severity:
    """The highest ``severity`` label among the alerts (unknown values count as warning)."""
    best: Severity = "info"
    for item in labels:
        sev = item.get("severity", "warning")
        if sev not in SEVERITY_ORDER:
            sev = "warning"
        if SEVERITY_ORDER[sev] > SEVERITY_ORDER[best]:
            best = sev  # type: ignore[assignment]
    return best


def incident_service(labels: Iterable[Mapping[str, str]]) -> tuple[str, str]:
    """An incident's service and environment: the first alert's that has one (``env`` or ``environment``), cut to fit a search attribute."""
    service = env = ""
    for item in labels:
        service = service or item.get("service", "")
        env = env or item.get("env") or item.get("environment") or ""
    return truncate(service, SEARCH_ATTRIBUTE_MAX), truncate(env, SEARCH_ATTRIBUTE_MAX)


def incident_message(
    *,
    incident: str,
    status: str,
    severity: Severity,
    group_labels: Mapping[str, str],
    alerts: Sequence[Mapping[str, Any]],
    level: int | None = None,
    note: str = "",
    handled_by: str | None = None,
    handled_at: datetime | None = None,
    handled_note: str = "",
) -> Message:
    """The incident's main message (edited in place as the incident changes).

    It names the incident id (what ``tocsin ack`` needs) and links each alert's ``runbook_url``. Once
    acknowledged or resolved it says who, when and why, and the buttons give way to that line.
    """
    firing = [a for a in alerts if a.get("status") == "firing"]
    names = sorted({str((a.get("labels") or {}).get("alertname", "?")) for a in alerts})
    title_names = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
    prefix = {"resolved": "RESOLVED", "acknowledged": "ACK"}.get(status, severity.upper())
    title = f"[{prefix}] {title_names or 'alert'}"
    service = group_labels.get("service") or next(
        (str((a.get("labels") or {}).get("service")) for a in alerts if (a.get("labels") or {}).get("service")),
        "",
    )
    if service:
        title += f" on {service}"
    lines = []
    for alert in firing[:10]:
        ann = alert.get("annotations") or {}
        summary = ann.get("summary") or ann.get("description") or ""
        label_name = (alert.get("labels") or {}).get("alertname", "?")
        lines.append(f"• {label_name}: {summary}" if summary else f"• {label_name}")
    if len(firing) > 10:
        lines.append(f"… and {len(firing) - 10} more")
    if note:
        lines.append(note)
    if status in ("acknowledged", "resolved") and handled_by:
        when = f" at {handled_at.strftime('%H:%M UTC')}" if handled_at else ""
        lines.append(f"{status.capitalize()} by {handled_by}{when}" + (f": {handled_note}" if handled_note else ""))
    fields = [
        MessageField(title="Incident", value=incident, short=False),
        MessageField(title="Status", value=status),
        MessageField(title="Severity", value=severity),
        MessageField(title="Alerts firing", value=f"{len(firing)} of {len(alerts)}"),
    ]
    if level:
        fields.append(MessageField(title="Escalation", value=f"L{level}"))
    for key, value in sorted(group_labels.items()):
        fields.append(MessageField(title=key, value=value))
    links = _links(alerts)
    actions = (
        []
        if status in ("acknowledged", "resolved")
        else [
            Action(action_id="tocsin_ack", text="Acknowledge", value=incident, style="primary"),
            Action(action_id="tocsin_resolve", text="Resolve", value=incident),
            Action(action_id="tocsin_escalate", text="Escalate now", value=incident, style="danger"),
            Action(action_id="tocsin_snooze", text="Snooze 1h", value=incident),
        ]
    )
    msg_severity: Severity = "success" if status == "resolved" else severity
    labels = dict(group_labels)
    labels.update({"incident": incident, "kind": "incident", "severity": severity})
    return Message(
        title=title,
        text="\n".join(lines),
        severity=msg_severity,
        fields=fields,
        links=links,
        actions=actions,
        labels=labels,
        source=incident,
    )


def _links(alerts: Sequence[Mapping[str, Any]]) -> list[Link]:
    """The first alert's source, then each distinct ``runbook_url`` annotation (as Alertmanager users expect)."""
    links: list[Link] = []
    for alert in alerts[:1]:
        url = alert.get("generator_url")
        if isinstance(url, str) and url.startswith("http"):
            links.append(Link(text="Source", url=url))
    runbooks: list[str] = []
    for alert in alerts:
        url = (alert.get("annotations") or {}).get("runbook_url")
        if isinstance(url, str) and url.startswith("http") and url not in runbooks:
            runbooks.append(url)
    for n, url in enumerate(runbooks[:3], start=1):
        links.append(Link(text="Runbook" if len(runbooks) == 1 else f"Runbook {n}", url=url))
    return links
