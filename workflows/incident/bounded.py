"""What an incident carries, bounded whatever arrives (ARCHITECTURE principle 8).

An incident's state is its ``state`` query answer and its continue-as-new input, so it must
stay far below Temporal's 2 MB payload limit however many alerts its group has:

* **Alerts**: every alert is counted and tracked in a compact ledger (13 bytes each, at most
  20,000: ``workflows.policy.alert_ledger``), carried in the continue-as-new input but not in
  the query. In detail (``IncidentState.alerts``) the incident keeps up to ``DETAIL_FIRING``
  firing alerts and the last ``DETAIL_RESOLVED`` resolved ones, ``DETAIL_BYTES`` in all, each
  compacted to ``DETAIL_ALERT_BYTES``. Resolved alerts beyond those are pruned; ``counts``
  keeps firing, resolved and seen.
* **Timeline**: the first ``TIMELINE_HEAD`` and the last ``TIMELINE_TAIL`` entries, with one
  ``elided`` entry between them counting what was dropped; each entry's text is cut to
  ``TIMELINE_TEXT`` bytes. A batch that changes many alerts is one entry, not one per alert.
* **Main message**: the ten first firing alerts with their summaries cut to
  ``DISPLAY_ANNOTATION`` bytes, group labels within 16 KiB, counts over all alerts.

Measured (tests/workflows/test_incident_bounds.py): 10,000 alerts x 15 labels sent three
times, then resolved, keep the query answer and the continue-as-new input in the low hundreds
of KB.
"""

from __future__ import annotations

from datetime import datetime

from workflows.identity import Actor
from workflows.incident.models import Alert, AlertBatch, IncidentState, TimelineEntry, model_dump_alerts
from workflows.models import Message
from workflows.policy.alert_ledger import AlertLedger, severity_code
from workflows.policy.alert_limits import alert_size, display_labels, truncate
from workflows.policy.incidents import incident_message

__all__ = [
    "AlertBook",
    "add_to_timeline",
    "trim_timeline",
    "main_message",
    "DETAIL_FIRING",
    "DETAIL_RESOLVED",
    "DETAIL_BYTES",
    "DETAIL_ALERT_BYTES",
    "TIMELINE_HEAD",
    "TIMELINE_TAIL",
]

DETAIL_FIRING = 100
DETAIL_RESOLVED = 10
DETAIL_BYTES = 128 * 1024
DETAIL_ALERT_BYTES = 16 * 1024
DETAIL_LABEL_MAX = 4 * 1024
DETAIL_ANNOTATION_MAX = 4 * 1024
NAMES_KEPT = 50
NAME_BYTES = 200
TIMELINE_HEAD = 20
TIMELINE_TAIL = 100
TIMELINE_TEXT = 512
DISPLAY_ANNOTATION = 1024
SHOWN = 10
"""Firing alerts listed in the main message (``incident_message``)."""
LOGGED_ONE_BY_ONE = 5
"""A batch changing more alerts than this is logged as one timeline entry per status."""


def _size(alert: Alert) -> int:
    return alert_size(alert.labels, alert.annotations, alert.fingerprint, alert.generator_url)


class AlertBook:
    """An incident's alerts: the ledger of all of them, a bounded sample in detail, the counts."""

    def __init__(self, st: IncidentState, packed: str = "") -> None:
        """Take over ``st`` (and its packed ledger); a state from before the ledger is migrated."""
        self.st = st
        self.ledger = AlertLedger(packed)
        self._sizes = {fp: _size(a) for fp, a in st.alerts.items()}
        self._firing_kept = sum(1 for a in st.alerts.values() if a.status == "firing")
        if not packed and st.alerts and st.counts.seen == 0:
            self._migrate()
        trim_timeline(st)

    def _migrate(self) -> None:
        """A state carried over from before the ledger kept every alert: count them all, keep a sample."""
        alerts = list(self.st.alerts.values())
        self.st.alerts, self._sizes, self._firing_kept = {}, {}, 0
        for alert in alerts:
            alert = alert.bounded(DETAIL_LABEL_MAX, DETAIL_ANNOTATION_MAX, DETAIL_ALERT_BYTES)
            if self.ledger.record(alert.fingerprint, severity_code(alert.labels, alert.status == "firing")) != "same":
                self._note_name(alert)
                self._keep(alert)
        self._count()

    def pack(self) -> str:
        """The ledger, for the continue-as-new input."""
        return self.ledger.pack()

    def severity(self) -> str:
        """The group's severity: the highest among firing alerts (among all when none fires)."""
        return self.ledger.severity()

    def all_resolved(self) -> bool:
        """Alerts were seen and none fires."""
        return len(self.ledger) > 0 and self.ledger.firing() == 0

    def apply(self, batch: AlertBatch) -> list[Alert]:
        """Merge a batch: the alerts that changed (new, status, severity or labels), compacted.

        A re-sent alert changes nothing. Malformed or oversized input never raises: values are
        cut, and alerts beyond the ledger's capacity are only counted (``counts.untracked``).
        """
        changed: list[Alert] = []
        for raw in batch.alerts:
            alert = raw.bounded(DETAIL_LABEL_MAX, DETAIL_ANNOTATION_MAX, DETAIL_ALERT_BYTES)
            outcome = self.ledger.record(alert.fingerprint, severity_code(alert.labels, alert.status == "firing"))
            if outcome == "untracked":
                self.st.counts.untracked += 1
                continue
            kept = self.st.alerts.get(alert.fingerprint)
            if outcome == "same":
                if kept is None and alert.status == "firing":
                    self._keep(alert)  # a re-send refills the sample when there is room; not a change
                if kept is None or kept.labels == alert.labels:
                    continue
            changed.append(alert)
            self._note_name(alert)
            self._keep(alert)
        if changed:
            self._count()
        return changed

    def _count(self) -> None:
        counts = self.st.counts
        counts.firing, counts.resolved, counts.seen = self.ledger.firing(), self.ledger.resolved(), len(self.ledger)

    def _note_name(self, alert: Alert) -> None:
        name = truncate(alert.labels.get("alertname", "?"), NAME_BYTES)
        if len(self.st.alert_names) < NAMES_KEPT and name not in self.st.alert_names:
            self.st.alert_names.append(name)

    def _drop(self, fp: str) -> None:
        old = self.st.alerts.pop(fp, None)
        if old is not None:
            self._sizes.pop(fp, None)
            self._firing_kept -= old.status == "firing"

    def _drop_oldest_resolved(self) -> bool:
        oldest = next((fp for fp, a in self.st.alerts.items() if a.status == "resolved"), None)
        if oldest is not None:
            self._drop(oldest)
        return oldest is not None

    def _keep(self, alert: Alert) -> None:
        """Keep the alert in detail if it fits: firing ones first, then the most recently resolved."""
        fp, size = alert.fingerprint, _size(alert)
        old = self.st.alerts.get(fp)
        if alert.status == "firing" and old is not None and old.status == "firing":
            self.st.alerts[fp], self._sizes[fp] = alert, size  # in place: the order of firing alerts stays
            return
        self._drop(fp)
        if alert.status == "firing":
            if self._firing_kept >= DETAIL_FIRING:
                return
            while sum(self._sizes.values()) + size > DETAIL_BYTES:
                if not self._drop_oldest_resolved():
                    return
            self._firing_kept += 1
        self.st.alerts[fp], self._sizes[fp] = alert, size
        resolved = len(self.st.alerts) - self._firing_kept
        while resolved > DETAIL_RESOLVED or (resolved and sum(self._sizes.values()) > DETAIL_BYTES):
            self._drop_oldest_resolved()
            resolved -= 1


def batch_entries(source: str, changed: list[Alert]) -> list[tuple[str, str, str]]:
    """Timeline entries (actor, action, detail) for the alerts a batch changed: one per alert, or per status."""
    if len(changed) <= LOGGED_ONE_BY_ONE:
        return [(source, f"alert {a.status}", a.labels.get("alertname", a.fingerprint)) for a in changed]
    entries = []
    for status in ("firing", "resolved"):
        alerts = [a for a in changed if a.status == status]
        if alerts:
            names = sorted({a.labels.get("alertname", "?") for a in alerts})
            shown = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
            entries.append((source, f"alerts {status}", f"{len(alerts)} alerts: {shown}"))
    return entries


def add_to_timeline(
    st: IncidentState, at: datetime, actor: str, action: str, detail: str = "", identity: Actor | None = None
) -> None:
    """Append an entry (with how a person's ``actor`` was verified); past ``TIMELINE_HEAD + TIMELINE_TAIL``
    entries the middle is summarised."""
    st.timeline.append(
        TimelineEntry(
            at=at,
            actor=truncate(actor, NAME_BYTES),
            action=truncate(action, NAME_BYTES),
            detail=truncate(detail, TIMELINE_TEXT),
            identity=identity,
        )
    )
    trim_timeline(st)


def trim_timeline(st: IncidentState) -> None:
    """Keep the first ``TIMELINE_HEAD`` and last ``TIMELINE_TAIL`` entries, and one ``elided`` entry counting the rest."""
    marker = 1 if st.timeline_elided else 0
    if len(st.timeline) <= TIMELINE_HEAD + marker + TIMELINE_TAIL:
        return
    middle = st.timeline[TIMELINE_HEAD + marker : len(st.timeline) - TIMELINE_TAIL]
    st.timeline_elided += len(middle)
    elided = TimelineEntry(
        at=middle[-1].at,
        actor="tocsin",
        action="elided",
        detail=f"{st.timeline_elided} entries elided (the first {TIMELINE_HEAD} and the last {TIMELINE_TAIL} are kept)",
    )
    st.timeline = [*st.timeline[:TIMELINE_HEAD], elided, *st.timeline[-TIMELINE_TAIL:]]


def _displayed(alert: Alert) -> Alert:
    annotations = {k: truncate(v, DISPLAY_ANNOTATION) for k, v in alert.annotations.items()}
    return alert if annotations == alert.annotations else alert.model_copy(update={"annotations": annotations})


def main_message(st: IncidentState, note: str = "") -> Message:
    """The incident's main message from what it keeps in detail, with counts over all its alerts."""
    kept = [_displayed(a) for a in st.alerts.values()]
    shown_names = {a.labels.get("alertname", "?") for a in kept}
    # Names seen but no longer kept in detail still belong in the title.
    stubs = [
        Alert(fingerprint=f"name:{n}", status="resolved", labels={"alertname": n})
        for n in st.alert_names
        if n not in shown_names
    ]
    message = incident_message(
        incident=st.id,
        status=st.status,
        severity=st.severity,  # type: ignore[arg-type]
        group_labels=display_labels(st.group_labels),
        alerts=model_dump_alerts(kept + stubs),
        level=st.level or None,
        note=note,
        handled_by=st.resolved_by if st.status == "resolved" else st.acknowledged_by,
        handled_at=st.resolved_at if st.status == "resolved" else st.acknowledged_at,
        handled_note=st.handled_note,
    )
    firing_kept = sum(1 for a in kept if a.status == "firing")
    seen = st.counts.seen or len(kept)
    firing = st.counts.firing if st.counts.seen else firing_kept
    for field in message.fields:
        if field.title == "Alerts firing":
            field.value = f"{firing} of {seen}"
    lines = message.text.split("\n") if message.text else []
    bullets = min(SHOWN, firing_kept)
    rest = lines[bullets + 1 :] if firing_kept > SHOWN else lines[bullets:]
    more = [f"… and {firing - bullets} more"] if firing > bullets else []
    message.text = "\n".join(lines[:bullets] + more + rest)
    return message
