"""What an incident publishes for ``tocsin status`` and the Temporal UI: status and severity search attributes, a memo.

Each publication is a visibility write on the server, so an incident publishes only what
changed. Runs started with the ``incident-lean`` patch also know what their start already
published (the gateway sets ``TocsinStatus=triggered`` and ``TocsinSeverity`` when it starts the
incident; a continued run inherits its predecessor's) and do not publish it again.

Runs started with the ``incident-own-attributes`` patch whose start carried no search attributes
publish them all themselves, in one upsert with their first severity. The gateway sends them only
with the first signal-with-start of an incident it has not started lately
(``operations.alerts``): on the dev server each search attribute on a call costs the server a
database read, and for a running incident they are ignored anyway.
"""

from __future__ import annotations

from temporalio import workflow

from workflows import search
from workflows.incident.models import IncidentState

__all__ = ["IncidentVisibility", "OWN_ATTRIBUTES_PATCH"]

OWN_ATTRIBUTES_PATCH = "incident-own-attributes"
"""Runs started with it publish the search attributes their start did not carry."""


class IncidentVisibility:
    """Mixed into ``IncidentWorkflow``: its search attributes and memo."""

    _st: IncidentState
    _lean: bool
    _published_status: str | None = None
    _published_severity: str | None = None
    _published_memo: dict[str, object] | None = None
    _own_attributes: bool = False
    """The start carried no search attributes: the first severity publishes them all."""

    def _inherit_published(self, own: bool = False) -> None:
        """Take what the start (or the previous run) published as published (``incident-lean`` runs).

        Args:
            own: the run follows ``OWN_ATTRIBUTES_PATCH``: with none from its start, it owes them all.
        """
        attributes = workflow.info().typed_search_attributes
        self._published_status = attributes.get(search.STATUS)
        self._published_severity = attributes.get(search.SEVERITY)
        self._own_attributes = own and attributes.get(search.KIND) is None

    def _set_severity(self, severity: str) -> None:
        """The group's severity changed (or was computed for the first time)."""
        if self._own_attributes:
            self._own_attributes = False
            self._st.severity = severity
            status = self._published_status = self._published_status or self._st.status
            self._published_severity = severity
            labels = [self._st.group_labels, *(a.labels for a in self._st.alerts.values())]
            attrs = search.incident_attributes(labels, severity, status)
            workflow.upsert_search_attributes([pair.key.value_set(pair.value) for pair in attrs])
        elif self._lean:
            self._st.severity = severity
            if severity != self._published_severity:
                self._published_severity = severity
                workflow.upsert_search_attributes([search.SEVERITY.value_set(severity)])
        elif severity != self._st.severity:
            self._st.severity = severity
            workflow.upsert_search_attributes([search.SEVERITY.value_set(severity)])

    def _set_status(self, status: str) -> None:
        """Set the status and publish what changed: ``TocsinStatus`` and a memo for ``tocsin status``."""
        self._st.status = status  # type: ignore[assignment]
        if status != self._published_status:
            self._published_status = status
            workflow.upsert_search_attributes([search.STATUS.value_set(status)])
        st = self._st
        memo = {
            "title": ", ".join(sorted(st.alert_names)),
            "severity": st.severity,
            "level": st.level,
            "acknowledged_by": st.acknowledged_by,
            "mtta_seconds": st.mtta_seconds,
            "mttr_seconds": st.mttr_seconds,
            "service": st.group_labels.get("service", ""),
        }
        if memo != self._published_memo:
            self._published_memo = memo
            workflow.upsert_memo(memo)
