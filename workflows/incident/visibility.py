"""What an incident publishes for ``tocsin status`` and the Temporal UI: status and severity search attributes, a memo.

Each publication is a visibility write on the server, so an incident publishes only what
changed. Runs started with the ``incident-lean`` patch also know what their start already
published (the gateway sets ``TocsinStatus=triggered`` and ``TocsinSeverity`` when it starts the
incident; a continued run inherits its predecessor's) and do not publish it again.
"""

from __future__ import annotations

from temporalio import workflow

from workflows import search
from workflows.incident.models import IncidentState

__all__ = ["IncidentVisibility"]


class IncidentVisibility:
    """Mixed into ``IncidentWorkflow``: its search attributes and memo."""

    _st: IncidentState
    _lean: bool
    _published_status: str | None = None
    _published_severity: str | None = None
    _published_memo: dict[str, object] | None = None

    def _inherit_published(self) -> None:
        """Take what the start (or the previous run) published as published (``incident-lean`` runs)."""
        attributes = workflow.info().typed_search_attributes
        self._published_status = attributes.get(search.STATUS)
        self._published_severity = attributes.get(search.SEVERITY)

    def _set_severity(self, severity: str) -> None:
        """The group's severity changed (or was computed for the first time)."""
        if self._lean:
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
