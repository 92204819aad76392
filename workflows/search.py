"""Search attributes that make the Temporal UI Tocsin's audit browser, and the one
place visibility queries over them are written.

Every list of workflows Tocsin asks Temporal for (open incidents of a service,
a service's deployments, running pipelines…) is built by :func:`query`, so the
quoting and the attribute names live here once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from temporalio.common import SearchAttributeKey, SearchAttributePair

from workflows.policy.incidents import incident_service

__all__ = [
    "KIND",
    "SERVICE",
    "ENVIRONMENT",
    "SEVERITY",
    "STATUS",
    "ALL_KEYS",
    "OPEN_INCIDENT_STATUSES",
    "ALERTING_INCIDENT_STATUSES",
    "quote",
    "query",
    "incident_attributes",
]

KIND = SearchAttributeKey.for_keyword("TocsinKind")
SERVICE = SearchAttributeKey.for_keyword("TocsinService")
ENVIRONMENT = SearchAttributeKey.for_keyword("TocsinEnvironment")
SEVERITY = SearchAttributeKey.for_keyword("TocsinSeverity")
STATUS = SearchAttributeKey.for_keyword("TocsinStatus")

ALL_KEYS = (KIND, SERVICE, ENVIRONMENT, SEVERITY, STATUS)

OPEN_INCIDENT_STATUSES = ("triggered", "notified", "acknowledged", "silenced", "inhibited", "muted", "held")
"""Every ``TocsinStatus`` of an incident that is not resolved."""
ALERTING_INCIDENT_STATUSES = ("triggered", "notified", "acknowledged")
"""Open incidents that are not muted (silenced, inhibited, muted by time, held for a digest): the ones
that inhibit others and that block a deployment at the incident gate."""


def quote(value: str) -> str:
    """A visibility-query string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def query(
    kind: str | Iterable[str] | None = None,
    *,
    service: str | None = None,
    env: str | None = None,
    severity: str | None = None,
    status: str | Iterable[str] | None = None,
    running: bool | None = None,
    closed_since: datetime | None = None,
    started_since: datetime | None = None,
) -> str:
    """A visibility query joining the given conditions with ``AND``.

    Args:
        kind: ``TocsinKind`` (one, or any of several).
        service: ``TocsinService``.
        env: ``TocsinEnvironment``.
        severity: ``TocsinSeverity``.
        status: ``TocsinStatus`` (one, or any of several).
        running: True: only running executions; False: only closed ones.
        closed_since: running, or closed at or after this instant.
        started_since: started at or after this instant.
    """
    parts: list[str] = []

    def one_of(name: str, value: str | Iterable[str]) -> None:
        values = [value] if isinstance(value, str) else list(value)
        if len(values) == 1:
            parts.append(f"{name} = {quote(values[0])}")
        else:
            parts.append(f"{name} IN ({', '.join(quote(v) for v in values)})")

    if kind is not None:
        one_of(KIND.name, kind)
    if service:
        parts.append(f"{SERVICE.name} = {quote(service)}")
    if env:
        parts.append(f"{ENVIRONMENT.name} = {quote(env)}")
    if severity:
        parts.append(f"{SEVERITY.name} = {quote(severity)}")
    if status is not None:
        one_of(STATUS.name, status)
    if running is True:
        parts.append("ExecutionStatus = 'Running'")
    elif running is False:
        parts.append("ExecutionStatus != 'Running'")
    if closed_since is not None:
        parts.append(f"(ExecutionStatus = 'Running' OR CloseTime >= '{_iso(closed_since)}')")
    if started_since is not None:
        parts.append(f"StartTime >= '{_iso(started_since)}'")
    return " AND ".join(parts)


def incident_attributes(labels: Sequence[Mapping[str, str]], severity: str, status: str) -> list[SearchAttributePair]:
    """An incident's search attributes: kind, status, severity, and its service and environment when it has them."""
    service, env = incident_service(labels)
    attrs = [
        SearchAttributePair(KIND, "incident"),
        SearchAttributePair(STATUS, status),
        SearchAttributePair(SEVERITY, severity),
    ]
    if service:
        attrs.append(SearchAttributePair(SERVICE, service))
    if env:
        attrs.append(SearchAttributePair(ENVIRONMENT, env))
    return attrs
