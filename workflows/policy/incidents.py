"""Incident policy: group keys, severity, the escalation schedule, messages. Pure."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Iterable, Mapping

from workflows.config import EscalationPolicy
from workflows.models import Action, Link, Message, MessageField, Severity
from workflows.policy.durations import parse_duration

__all__ = ["incident_id", "SEVERITY_ORDER", "group_severity", "Rung", "ladder", "incident_message",
           "DEFAULT_LADDER"]

SEVERITY_ORDER = {"info": 0, "success": 0, "warning": 1, "error": 2, "critical": 3}

DEFAULT_LADDER = EscalationPolicy.model_validate({"levels": [
    {"after": "0m", "receiver": "critical"}, {"after": "5m", "receiver": "senior"},
    {"after": "10m", "receiver": "cto"}, {"after": "15m", "receiver": "emergency"}]})
"""The seed's L1..L4 (0/5/10/15 min); the default config names these receivers."""


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


class Rung:
    """One scheduled escalation step."""

    __slots__ = ("index", "level", "receiver", "due")

    def __init__(self, index: int, level: int, receiver: str, due: datetime):
        self.index = index
        """Position in the schedule (0-based), unique per rung, used in idempotency keys."""
        self.level = level
        """The ladder level, L1 = 1 (repeats of the last level keep its number)."""
        self.receiver = receiver
        self.due = due

    def __repr__(self) -> str:
        return f"Rung(L{self.level} #{self.index} {self.receiver} at {self.due.isoformat()})"


def ladder(policy: EscalationPolicy, start: datetime) -> list[Rung]:
    """The full schedule of an escalation policy from ``start``.

    Args:
        policy: levels (``after`` measured from the first notification) and ``repeat``.
        start: when the incident was first notified (market hours shorten waits by attaching a
            policy with shorter ``after`` values on a route active in market hours).

    Returns:
        Rungs in time order; repeats of the last level follow it, spaced like the
        last two levels (or 5 minutes when there is only one level).
    """
    rungs: list[Rung] = []
    afters = [parse_duration(level.after) for level in policy.levels]
    for i, (level, after) in enumerate(zip(policy.levels, afters)):
        rungs.append(Rung(i, i + 1, level.receiver, start + after))
    if policy.levels and policy.repeat > 0:
        gap = afters[-1] - afters[-2] if len(afters) > 1 else timedelta(minutes=5)
        gap = gap if gap > timedelta(0) else timedelta(minutes=5)
        for r in range(policy.repeat):
            rungs.append(Rung(len(rungs), len(policy.levels), policy.levels[-1].receiver,
                              start + afters[-1] + gap * (r + 1)))
    return rungs


def incident_message(*, incident: str, status: str, severity: Severity, group_labels: Mapping[str, str],
                     alerts: list[Mapping[str, object]], level: int | None = None, note: str = "") -> Message:
    """The incident's main message (edited in place as the incident changes)."""
    firing = [a for a in alerts if a.get("status") == "firing"]
    names = sorted({str((a.get("labels") or {}).get("alertname", "?")) for a in alerts})  # type: ignore[union-attr]
    title_names = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
    prefix = {"resolved": "RESOLVED", "acknowledged": "ACK"}.get(status, severity.upper())
    title = f"[{prefix}] {title_names or 'alert'}"
    service = group_labels.get("service") or next(
        (str((a.get("labels") or {}).get("service")) for a in alerts if (a.get("labels") or {}).get("service")),  # type: ignore[union-attr]
        "")
    if service:
        title += f" on {service}"
    lines = []
    for alert in firing[:10]:
        ann = alert.get("annotations") or {}
        summary = ann.get("summary") or ann.get("description") or ""  # type: ignore[union-attr]
        label_name = (alert.get("labels") or {}).get("alertname", "?")  # type: ignore[union-attr]
        lines.append(f"• {label_name}: {summary}" if summary else f"• {label_name}")
    if len(firing) > 10:
        lines.append(f"… and {len(firing) - 10} more")
    if note:
        lines.append(note)
    fields = [MessageField(title="Status", value=status), MessageField(title="Severity", value=severity),
              MessageField(title="Alerts firing", value=f"{len(firing)} of {len(alerts)}")]
    if level:
        fields.append(MessageField(title="Escalation", value=f"L{level}"))
    for key, value in sorted(group_labels.items()):
        fields.append(MessageField(title=key, value=value))
    links = []
    for alert in alerts[:1]:
        url = alert.get("generator_url")
        if isinstance(url, str) and url.startswith("http"):
            links.append(Link(text="Source", url=url))
    actions = [] if status == "resolved" else [
        Action(action_id="tocsin_ack", text="Acknowledge", value=incident, style="primary"),
        Action(action_id="tocsin_resolve", text="Resolve", value=incident),
        Action(action_id="tocsin_escalate", text="Escalate now", value=incident, style="danger"),
    ]
    msg_severity: Severity = "success" if status == "resolved" else severity
    labels = dict(group_labels)
    labels.update({"incident": incident, "kind": "incident", "severity": severity})
    return Message(title=title, text="\n".join(lines), severity=msg_severity, fields=fields, links=links,
                   actions=actions, labels=labels, source=incident)
