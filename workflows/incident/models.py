"""Contracts of ``IncidentWorkflow`` (``incident/<hash>``): alerts in, human actions, state out.

Code outside Temporal (``operations/``) calls the workflow by these names and
models only; it never imports the workflow class.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from workflows.config import Config
from workflows.identity import Actor
from workflows.notify.models import DeadLetter
from workflows.policy.alert_limits import (
    ALERT_MAX_BYTES,
    ANNOTATION_VALUE_MAX,
    LABEL_VALUE_MAX,
    URL_MAX,
    bounded_fingerprint,
    compact_alert_parts,
    truncate,
)
from workflows.search import OPEN_INCIDENT_STATUSES

__all__ = [
    "RouteStateQuery",
    "RouteState",
    "HeldIncident",
    "Alert",
    "AlertBatch",
    "HumanAction",
    "SnoozeAction",
    "TimelineEntry",
    "AlertCounts",
    "IncidentState",
    "IncidentInput",
    "ActionResult",
    "RollbackTrigger",
    "IncidentMetrics",
    "SuppressionQuery",
    "Suppression",
    "OPEN_STATUSES",
    "MuteQuery",
    "MuteVerdict",
    "WORKFLOW",
    "SIGNAL_ADD_ALERTS",
    "SIGNAL_DIGEST_SENT",
    "QUERY_STATE",
    "UPDATE_ACKNOWLEDGE",
    "UPDATE_RESOLVE",
    "UPDATE_ESCALATE",
    "UPDATE_SNOOZE",
]

WORKFLOW = "IncidentWorkflow"
SIGNAL_ADD_ALERTS = "add_alerts"
SIGNAL_DIGEST_SENT = "digest_sent"
QUERY_STATE = "state"
UPDATE_ACKNOWLEDGE = "acknowledge"
UPDATE_RESOLVE = "resolve"
UPDATE_ESCALATE = "escalate_now"
UPDATE_SNOOZE = "snooze"

IncidentStatus = Literal["triggered", "notified", "acknowledged", "resolved", "silenced", "inhibited", "muted", "held"]
OPEN_STATUSES = OPEN_INCIDENT_STATUSES


class Alert(BaseModel):
    """One alert, as Alertmanager sends it (webhook v4) or as ``tocsin alert`` makes it."""

    fingerprint: str
    status: Literal["firing", "resolved"] = "firing"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    generator_url: str = ""

    def bounded(
        self,
        label_max: int = LABEL_VALUE_MAX,
        annotation_max: int = ANNOTATION_VALUE_MAX,
        total_max: int = ALERT_MAX_BYTES,
    ) -> Alert:
        """This alert within size limits (``workflows.policy.alert_limits``); itself when already within.

        Values over a limit are cut with a ``…[truncated 96 KiB]`` marker; an over-long
        fingerprint becomes its hash.
        """
        fp = bounded_fingerprint(self.fingerprint)
        url = truncate(self.generator_url, URL_MAX)
        labels, annotations = compact_alert_parts(
            self.labels, self.annotations, label_max=label_max, annotation_max=annotation_max, total_max=total_max
        )
        if (fp, url, labels, annotations) == (self.fingerprint, self.generator_url, self.labels, self.annotations):
            return self
        return self.model_copy(
            update={"fingerprint": fp, "generator_url": url, "labels": labels, "annotations": annotations}
        )


class AlertBatch(BaseModel):
    """Signal ``add_alerts``: alerts for this incident's group (firing or resolved)."""

    alerts: list[Alert]
    source: str = "alertmanager"
    """Where they came from: ``alertmanager``, ``cli:<user>``…"""


class HumanAction(BaseModel):
    """An action by a person: who, and why (when is the workflow's clock)."""

    by: str
    note: str = ""
    via: str = "cli"
    """``cli``, ``slack``, ``pagerduty``, ``ui``…"""
    actor: Actor | None = None
    """Who acts, and how they were verified (``by`` is its name)."""


class SnoozeAction(HumanAction):
    """Hold escalation until ``until``."""

    until: datetime


class ActionResult(BaseModel):
    """What an update did."""

    accepted: bool
    status: str
    detail: str = ""


class TimelineEntry(BaseModel):
    """One event in the incident's audit timeline."""

    at: datetime
    actor: str
    action: str
    detail: str = ""
    identity: Actor | None = None
    """How ``actor`` was verified, for a person's action (None: Tocsin itself, or an older run)."""


class AlertCounts(BaseModel):
    """How many alerts an incident has seen, whatever it keeps in detail."""

    firing: int = 0
    resolved: int = 0
    seen: int = 0
    """Distinct alerts (by fingerprint) tracked, firing or resolved."""
    untracked: int = 0
    """Arrivals of new alerts after the ledger was full: counted (re-sends too), never holding the incident open."""


class IncidentState(BaseModel):
    """Everything an incident knows (query ``state``; carried over on continue-as-new).

    Bounded whatever arrives (``workflows.incident.bounded``): ``alerts`` holds a sample in
    detail (the first firing ones and the last few resolved), ``counts`` counts them all, and
    the timeline keeps its first and last entries with one entry saying how many were elided.
    """

    id: str
    route_path: str
    group_labels: dict[str, str] = Field(default_factory=dict)
    status: IncidentStatus = "triggered"
    severity: str = "warning"
    receiver: str = ""
    escalation: str | None = None
    alerts: dict[str, Alert] = Field(default_factory=dict)
    """By fingerprint: up to 100 firing alerts (128 KiB in all) and the last 10 resolved, in detail."""
    counts: AlertCounts = Field(default_factory=AlertCounts)
    """Every alert seen, counted."""
    alert_names: list[str] = Field(default_factory=list)
    """``alertname`` of every alert seen, in first-seen order (at most 50, each cut to 200 bytes)."""
    level: int = 0
    """Highest escalation level notified (L1 = 1)."""
    rungs_done: int = 0
    """Escalation schedule entries already delivered (exactly once each)."""
    refs: dict[str, dict[str, str]] = Field(default_factory=dict)
    """receiver → channel → message_id of the incident's main message there."""
    created_at: datetime | None = None
    notified_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    handled_note: str = ""
    """The note of the last acknowledgement or resolution (shown in the main message)."""
    snoozed_until: datetime | None = None
    escalation_restart: datetime | None = None
    """When the ladder (re)started: first notification, or an ack that timed out."""
    suppressed_by: list[str] = Field(default_factory=list)
    held_for_digest: bool = False
    """Waiting for (or included in) the receiver's scheduled digest."""
    digest: str | None = None
    """The digest report that carried this incident."""
    rollback_requested: bool = False
    updates_sent: int = 0
    timeline: list[TimelineEntry] = Field(default_factory=list)
    """The first 20 entries, an ``elided`` entry when there were more, and the last 100."""
    timeline_elided: int = 0
    """Entries dropped from the middle of the timeline."""
    mtta_seconds: float | None = None
    mttr_seconds: float | None = None
    dead_letters: list[DeadLetter] = Field(default_factory=list)
    """The last 20 notifications of this incident that no channel of a receiver delivered before its
    ``give_up_after`` (``workflows.incident.deliveries``)."""
    dead_letter_count: int = 0
    """Every dead letter of this incident."""

    def firing(self) -> list[Alert]:
        """Alerts still firing, of those kept in detail (``counts.firing`` counts them all)."""
        return [a for a in self.alerts.values() if a.status == "firing"]


class IncidentInput(BaseModel):
    """Input of ``IncidentWorkflow`` (also its continue-as-new input)."""

    id: str
    route_path: str
    group_labels: dict[str, str] = Field(default_factory=dict)
    escalation: str | None = None
    """An escalation policy chosen by the sender (a CI pipeline's ``pipelines.escalation``) when the route names none."""
    state: IncidentState | None = None
    pending: list[AlertBatch] = Field(default_factory=list)
    max_history: int = 5000
    ledger: str = ""
    """Status and severity of every alert seen, packed (``workflows.policy.alert_ledger``)."""
    events: list[tuple[str, str, str]] = Field(default_factory=list)
    """Actions not yet announced when the run continued as new: (event, actor, note)."""
    changed: bool = False
    """Alerts changed since the last "alerts changed" announcement."""
    advance: bool = False
    """An ``escalate_now`` not yet acted on when the run continued as new."""
    journal_seq: int = 0
    """Audit journal records made so far by this incident's chain of runs (``workflows.journal``)."""


class RollbackTrigger(BaseModel):
    """Activity input: ask the service/environment's deployment to roll back."""

    service: str
    environment: str
    alertname: str
    incident: str
    reason: str


class IncidentMetrics(BaseModel):
    """Activity input: observe MTTA/MTTR histograms."""

    severity: str
    service: str
    mtta_seconds: float | None = None
    mttr_seconds: float | None = None


class SuppressionQuery(BaseModel):
    """Activity input: is this incident silenced or inhibited right now?"""

    incident: str
    alerts: list[dict[str, str]]
    """Label sets of the firing alerts."""
    at: datetime | None = None
    """The incident's clock (``workflow.now()``): silences are judged at this instant."""
    inhibition: bool = True
    """Also evaluate inhibit rules against the incidents firing now (silences only when False)."""


class RouteStateQuery(BaseModel):
    """Activity input: is this route muted by time, or a digest receiver, at ``at``?"""

    route_path: str
    at: datetime


class RouteState(BaseModel):
    """Activity result."""

    muted_by: list[str] = Field(default_factory=list)
    """Time intervals that mute the route now (mute_time_intervals active, or active_time_intervals not)."""
    digest: bool = False
    """The route's receiver collects notifications into a scheduled digest."""


class MuteQuery(BaseModel):
    """Local-activity input of the one muting stage: may this incident notify now?"""

    incident: str
    route_path: str
    alerts: list[dict[str, str]]
    """Label sets of the firing alerts."""
    at: datetime
    """The incident's clock (``workflow.now()``): silences and time intervals are judged at this instant."""


class MuteVerdict(BaseModel):
    """One verdict of silences, inhibition and time intervals (and whether the receiver is a digest)."""

    silenced_by: list[str] = Field(default_factory=list)
    inhibited_by: list[str] = Field(default_factory=list)
    muted_by: list[str] = Field(default_factory=list)
    """Time intervals that mute the route now."""
    digest: bool = False
    """The route's receiver collects notifications into a scheduled digest."""

    def suppressed(self) -> bool:
        """Silenced or inhibited (held until that ends)."""
        return bool(self.silenced_by or self.inhibited_by)


class FirstLook(BaseModel):
    """A new incident's first local activity: the config snapshot and, on a route that waits no group_wait, its mute verdict.

    One round trip instead of two (``load_config``, then ``mute_verdict``) on a first page's path.
    """

    config: Config
    verdict: MuteVerdict | None = None
    """Judged with ``config``'s route when its ``group_wait`` is zero; None when the incident waits first."""


class HeldIncident(BaseModel):
    """One incident waiting for its receiver's digest."""

    id: str
    title: str
    severity: str
    status: str
    first_seen: datetime | None = None
    alerts: int = 0
    resolved: bool = False


class Suppression(BaseModel):
    """Activity result."""

    silenced_by: list[str] = Field(default_factory=list)
    inhibited_by: list[str] = Field(default_factory=list)

    def any(self) -> bool:
        """True when notifications should be held."""
        return bool(self.silenced_by or self.inhibited_by)


def model_dump_alerts(alerts: list[Alert]) -> list[dict[str, Any]]:
    """Alerts as plain dicts for the pure message renderer."""
    return [a.model_dump(mode="json") for a in alerts]
