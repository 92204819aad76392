"""What an incident writes to the audit journal (``workflows.journal``), as it happens.

Mixed into ``IncidentWorkflow``: every timeline entry passes :meth:`IncidentJournal._journal_event`,
which journals the audited ones. A person's action is journaled with their :class:`Actor`
(``incident.acknowledged``, ``incident.resolved``, ``incident.escalated``, ``incident.snoozed``);
what Tocsin did is ``incident.state`` (triggered, silenced, inhibited, muted, held for digest,
sent in digest, notified at a level, acknowledgement timed out, resolved by Alertmanager,
closed) or ``rollback.requested`` (a rollback trigger fired). Alerts arriving are not
journaled one by one (the incident's state records carry the counts). Deliveries are journaled
by ``workflows.delivery`` (``notification.delivered`` / ``notification.dead_lettered``).
"""

from __future__ import annotations

from typing import Any

from workflows.identity import Actor
from workflows.incident.models import IncidentState
from workflows.journal import Journal

__all__ = ["IncidentJournal", "HUMAN_ACTIONS", "STATE_EVENTS"]

HUMAN_ACTIONS = {
    "acknowledged": "incident.acknowledged",
    "resolved": "incident.resolved",
    "escalate_now": "incident.escalated",
    "snoozed": "incident.snoozed",
}
STATE_EVENTS = frozenset(
    {
        "triggered",
        "silenced",
        "inhibited",
        "muted",
        "held for digest",
        "sent in digest",
        "ack timed out",
        "resolved",
        "closed",
    }
)
TOCSIN = frozenset({"tocsin", "alertmanager"})


class IncidentJournal:
    """Mixed into ``IncidentWorkflow``: the incident's audit records."""

    _st: IncidentState
    _journal: Journal

    def _journal_event(self, actor: str, action: str, detail: str, who: Actor | None) -> None:
        """Journal one timeline entry when it is audited (see the module's docstring)."""
        st = self._st
        base: dict[str, Any] = {
            "service": st.group_labels.get("service") or None,
            "severity": st.severity or None,
        }
        if action in HUMAN_ACTIONS and (who is not None or actor not in TOCSIN):
            record = {"by": actor, "status": st.status, "level": st.level, "detail": detail or None}
            self._journal.record(HUMAN_ACTIONS[action], actor=who, detail={**record, **base})
        elif action in STATE_EVENTS or action.startswith("notified L"):
            event, level = action, st.level
            if action.startswith("notified L"):
                event, level = "notified", int(action.removeprefix("notified L") or 0)
            record = {"event": event, "status": st.status, "by": actor, "level": level, "detail": detail or None}
            self._journal.record("incident.state", detail={**record, **base})
        elif action == "rollback requested":
            self._journal.record("rollback.requested", detail={"by": actor, "detail": detail, **base})
