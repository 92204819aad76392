"""The grouped message of one failure signature (pure: no Temporal, no I/O)."""

from __future__ import annotations

from workflows.models import Link, Message, MessageField, Severity
from workflows.patterns.models import ALERTNAME, FailureGroup, Occurrence
from workflows.policy.failure_patterns import group_text, hint

__all__ = ["pattern_labels", "pattern_message", "MAX_LISTED"]

MAX_LISTED = 10
"""Occurrences listed in the message text (the count and the pipelines say the rest)."""


def pattern_labels(group: FailureGroup, *, critical: bool) -> dict[str, str]:
    """The routing labels: ``alertname=BuildFailurePattern``, ``kind=build``, ``category``, ``signature``,
    ``severity`` (``critical`` when a critical failure sent it, else ``error`` like a failed build), and
    ``repo``/``service`` when every pipeline in the group is of one repository."""
    labels = {
        "alertname": ALERTNAME,
        "kind": "build",
        "category": group.category,
        "signature": group.key,
        "severity": "critical" if critical else "error",
    }
    repos = {p.split("@", 1)[0] for p in group.pipelines}
    if len(repos) == 1:
        repo = repos.pop()
        labels["repo"] = repo
        labels["service"] = repo.rsplit("/", 1)[-1]
    return labels


def _line(occ: Occurrence) -> str:
    by = f" by {occ.author}" if occ.author else ""
    run = f" ({occ.run})" if occ.run else ""
    return f"• {occ.repo}@{occ.branch} at {occ.commit[:7]}{by}, {occ.at:%H:%M} UTC{run}"


def pattern_message(group: FailureGroup, first: Occurrence, source: str, *, critical: bool = False) -> Message:
    """One message for a group: "Same failure on 3 branches since 10:02 …", the pipelines, the runs and the hint.

    Args:
        group: the signature's window (its pipelines, count and occurrences).
        first: where the signature first appeared (the hint), possibly before this window.
        source: the sending workflow's id.
        critical: a critical failure sent the group before its window closed.
    """
    lines = [f"Pipelines: {', '.join(group.pipelines)}"]
    lines += [_line(o) for o in group.occurrences[-MAX_LISTED:]]
    if group.count > len(group.occurrences[-MAX_LISTED:]):
        lines.append(f"… {group.count} runs in all.")
    lines.append(hint(first))
    severity: Severity = "critical" if critical else "error"
    fields = [
        MessageField(title="Category", value=group.category),
        MessageField(title="Signature", value=group.summary),
        MessageField(title="Pipelines", value=str(len(group.pipelines))),
        MessageField(title="Runs", value=str(group.count)),
        MessageField(title="First seen", value=f"{first.repo}@{first.branch} {first.commit[:7]}"),
    ]
    if first.author:
        fields.append(MessageField(title="Author", value=first.author))
    links = (
        [Link(text="First run", url=first.run)] if first.run and first.run.startswith(("http://", "https://")) else []
    )
    return Message(
        title=group_text(group),
        text="\n".join(lines),
        severity=severity,
        fields=fields,
        links=links,
        labels=pattern_labels(group, critical=critical),
        source=source,
    )
