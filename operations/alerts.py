"""Alerts in (Alertmanager webhook, ``tocsin alert``, Tocsin itself) → one incident workflow per group.

**Limits** (principle 8: whatever arrives, every group is paged). Temporal refuses for good a
payload over 2 MB and a search attribute value over 2 KB, so before anything is sent:

* every alert is cut to size (``workflows.policy.alert_limits``): label values to 4 KiB,
  annotation values to 16 KiB, names to 128 B, ``generatorURL`` to 4 KiB, at most 64 labels
  and 32 annotations, 64 KiB per alert in all; a cut value ends with a visible marker,
  ``…[truncated 96 KiB]``; a fingerprint over 64 B becomes its hash. The fingerprint is
  taken from the labels before they are cut, so two alerts differing past the cut stay two;
* search attribute values (``TocsinService``, ``TocsinEnvironment``) are cut to 256 B and the
  workflow's summary to 200 B;
* a group's alerts go in signals of at most 256 KiB each (firing alerts first when there
  are several), each one a signal-with-start, so 6,000 alerts in one group reach one incident;
* each group's fate is its own: a group Temporal still refuses for good is reported in
  :attr:`Dispatched.rejected` while the others are paged; only when every group is refused
  is it :class:`~operations.errors.BadInput`, and Temporal not answering is
  :class:`~operations.errors.Unavailable` (a re-sent webhook changes nothing for the groups
  already accepted: alerts are merged by fingerprint).

**Search attributes** (``TocsinKind``, ``TocsinStatus``, ``TocsinSeverity``, ``TocsinService``,
``TocsinEnvironment``) count only when a signal-with-start starts the incident; for a running one
Temporal ignores them, yet checks each against its search-attribute registry (on the dev server,
a database read per call). So they go with the first signal-with-start of an incident this process
has not sent them for in the last :data:`ATTRIBUTES_FRESH` seconds: the incident is listed with
them from its start, even with no worker running. An incident started without them (it ended and
started again within that window, or another gateway sent them) publishes them from its first
workflow task (``workflows.incident.visibility``, ``incident-own-attributes``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import BaseModel, Field
from temporalio.common import TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from operations.auth import authorize
from operations.context import Context, require_actor, temporal_errors
from operations.errors import BadInput
from workflows import incident
from workflows.config import Config
from workflows.identity import Actor
from workflows.incident import Alert, AlertBatch, IncidentInput
from workflows.policy.alert_limits import SIGNAL_BUDGET, alert_size, truncate
from workflows.policy.incidents import group_severity, incident_id, incident_service
from workflows.policy.redact import redact_alerts
from workflows.policy.routing import match_routes
from workflows.search import incident_attributes

__all__ = ["fingerprint", "group_alerts", "dispatch_alerts", "raise_alert", "Dispatched", "ALERT_SEVERITIES"]

ALERT_SEVERITIES = ("info", "warning", "error", "critical")
SUMMARY_MAX = 200
"""Bytes of a workflow's static summary (the Temporal UI's one-line title)."""
_REFUSED_FOR_GOOD = {RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.OUT_OF_RANGE}

ATTRIBUTES_FRESH = 300.0
"""Seconds for which an incident this process sent its search attributes for is sent none again."""
ATTRIBUTES_REMEMBERED = 10_000
"""Incidents remembered at most (the oldest are forgotten first)."""

log = logging.getLogger("tocsin.alerts")


class _SentAttributes:
    """Incidents (by task queue and id) whose search attributes this process sent lately, and when."""

    def __init__(self) -> None:
        self._sent: OrderedDict[tuple[str, str], float] = OrderedDict()

    def due(self, key: tuple[str, str]) -> bool:
        """Send them with this incident's next signal-with-start."""
        sent = self._sent.get(key)
        return sent is None or time.monotonic() - sent > ATTRIBUTES_FRESH

    def sent(self, key: tuple[str, str]) -> None:
        """Temporal accepted a signal-with-start carrying them."""
        self._sent[key] = time.monotonic()
        self._sent.move_to_end(key)
        while len(self._sent) > ATTRIBUTES_REMEMBERED:
            self._sent.popitem(last=False)


_sent_attributes = _SentAttributes()


def fingerprint(labels: dict[str, str]) -> str:
    """A stable fingerprint of a label set (for alerts that come without one); any text, even lone surrogates."""
    body = "\xff".join(f"{k}\xfe{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()[:16]


class Dispatched(list[str]):
    """The incidents that took their alerts (a list of ids, as before) and the groups refused for good.

    Attributes:
        rejected: incident id → Temporal's reason, for groups whose alerts (or some of them:
            the reason says how many went through) Temporal refused permanently.
    """

    def __init__(self, ids: Iterable[str] = (), rejected: dict[str, str] | None = None) -> None:
        super().__init__(ids)
        self.rejected: dict[str, str] = dict(rejected or {})


class _GroupRefused(Exception):
    """Temporal refused a group's alerts for good (bad argument, too large)."""


class AlertGroup(BaseModel):
    """The alerts of one route and one set of group-by label values: one incident."""

    route_path: str
    group_labels: dict[str, str]
    alerts: list[Alert] = Field(default_factory=list)
    escalation: str | None = None
    """``pipelines.escalation`` for CI alerts (``kind="build"``) whose route names no escalation policy."""


def group_alerts(config: Config, alerts: list[Alert]) -> dict[str, AlertGroup]:
    """Route each alert and group it by (route, group_by labels), as Alertmanager's dispatcher does."""
    tree = config.route_tree()
    groups: dict[str, AlertGroup] = {}
    for alert in alerts:
        for node in match_routes(tree, alert.labels):
            labels = node.group_key_labels(alert.labels)
            key = incident_id(node.path, labels)
            escalation = None
            if node.escalation is None and alert.labels.get("kind") == "build":
                escalation = config.pipelines.escalation
            group = groups.setdefault(key, AlertGroup(route_path=node.path, group_labels=labels, escalation=escalation))
            group.alerts.append(alert)
    return groups


def _summary(labels: list[dict[str, str]]) -> str:
    """The workflow's one-line title in the Temporal UI: its alert names, and its service."""
    service, _ = incident_service(labels)
    names = sorted({lbl.get("alertname", "?") for lbl in labels})
    summary = f"Incident: {', '.join(names)[:150]}" + (f" on {service}" if service else "")
    return truncate(summary, SUMMARY_MAX)


def _size(alert: Alert) -> int:
    return alert_size(alert.labels, alert.annotations, alert.fingerprint, alert.generator_url)


def signal_batches(alerts: list[Alert], budget: int = SIGNAL_BUDGET) -> list[list[Alert]]:
    """A group's alerts in batches of at most ``budget`` bytes (one alert at least per batch).

    One batch keeps the alerts as given. Over several, each fingerprint is sent once (its last
    status) and firing alerts go first, so no batch resolves the incident before the alerts
    still firing have arrived.
    """
    if sum(_size(a) for a in alerts) <= budget:
        return [alerts]
    latest = list({a.fingerprint: a for a in alerts}.values())
    ordered = [a for a in latest if a.status == "firing"] + [a for a in latest if a.status != "firing"]
    batches: list[list[Alert]] = [[]]
    used = 0
    for alert in ordered:
        size = _size(alert)
        if batches[-1] and used + size > budget:
            batches.append([])
            used = 0
        batches[-1].append(alert)
        used += size
    return batches


async def _send_group(ctx: Context, wid: str, group: AlertGroup, source: str) -> None:
    """Signal-with-start the group's incident, one batch at a time (in order)."""
    labels = [a.labels for a in group.alerts]
    summary = _summary(labels)
    key = (ctx.task_queue, wid)
    attributes = None
    if _sent_attributes.due(key):
        attributes = TypedSearchAttributes(incident_attributes(labels, group_severity(labels), "triggered"))
    sent = 0
    for batch in signal_batches(group.alerts):
        try:
            with temporal_errors():
                try:
                    await ctx.client.start_workflow(
                        incident.WORKFLOW,
                        IncidentInput(
                            id=wid,
                            route_path=group.route_path,
                            group_labels=group.group_labels,
                            escalation=group.escalation,
                        ),
                        id=wid,
                        task_queue=ctx.task_queue,
                        start_signal=incident.SIGNAL_ADD_ALERTS,
                        start_signal_args=[AlertBatch(alerts=batch, source=source)],
                        search_attributes=attributes,
                        static_summary=summary,
                    )
                    if attributes is not None:
                        _sent_attributes.sent(key)
                        attributes = None  # the first batch carried them
                except RPCError as exc:
                    if not _refused_for_good(exc):
                        raise
                    reason = exc.message.splitlines()[0][:300] if exc.message else exc.status.name
                    raise _GroupRefused(f"{reason} (after {sent} of {len(group.alerts)} alerts)") from None
        except (ValueError, TypeError) as exc:  # a payload that cannot be encoded
            raise _GroupRefused(f"{str(exc)[:300]} (after {sent} of {len(group.alerts)} alerts)") from None
        sent += len(batch)


def _refused_for_good(exc: RPCError) -> bool:
    """Temporal will refuse this again: a bad argument, or a message over its size limits."""
    if exc.status in _REFUSED_FOR_GOOD:
        return True
    return exc.status == RPCStatusCode.RESOURCE_EXHAUSTED and "larger than max" in (exc.message or "")


async def dispatch_alerts(ctx: Context, alerts: list[Alert], source: str) -> Dispatched:
    """Signal-with-start one ``IncidentWorkflow`` per group; a retried delivery changes nothing.

    Alerts are cut to the limits of this module's docstring first; each group goes on its
    own, so a group Temporal refuses does not stop the others.

    Args:
        ctx: client, config and task queue.
        alerts: the alerts, firing or resolved.
        source: where they came from (``alertmanager:<receiver>``, ``cli``, a workflow id).

    Returns:
        The ids of the incidents that took their alerts, in first-seen order; groups refused
        for good are in ``.rejected``.

    Raises:
        Unavailable: Temporal did not answer for some group (the others were still sent).
        BadInput: Temporal refused every group for good (``field`` is ``alerts``).
    """
    # Bounded first (a 10 MB annotation is cut before any regex runs over it), then redacted: no secret
    # enters Temporal.
    safe = redact_alerts([a.bounded() for a in alerts], ctx.config.redact_patterns)
    groups = group_alerts(ctx.config, safe)
    outcomes = await asyncio.gather(
        *(_send_group(ctx, wid, group, source) for wid, group in groups.items()), return_exceptions=True
    )
    accepted: list[str] = []
    rejected: dict[str, str] = {}
    failure: BaseException | None = None
    for wid, outcome in zip(groups, outcomes, strict=True):
        if outcome is None:
            accepted.append(wid)
        elif isinstance(outcome, _GroupRefused):
            rejected[wid] = str(outcome)
        elif failure is None:
            failure = outcome
    if failure is not None:
        raise failure
    if rejected:
        log.warning("Temporal refused %d of %d alert group(s): %s", len(rejected), len(groups), rejected)
        if not accepted:
            raise BadInput("alerts", f"Temporal refused every alert group: {next(iter(rejected.values()))}")
    return Dispatched(accepted, rejected)


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
    authorize(ctx.config, actor, "responder")
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
