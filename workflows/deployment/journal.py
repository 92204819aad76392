"""What a deployment writes to the audit journal (``workflows.journal``), as it happens.

Every timeline entry and stage change of a deployment passes :class:`DeploymentJournal`, which
journals it under the issue's action names:

* ``deployment.requested`` (the deployer's :class:`Actor`; service, environment, version, commit);
  an emergency override is a ``deployment.gate`` of gate ``emergency`` by the deployer;
* ``deployment.gate``: each gate's verdict, and the risk score;
* ``deployment.approved`` / ``deployment.rejected`` (the approver's Actor), ``refused`` for an
  approval or rejection refused (who, why);
* ``deployment.control``: pause, resume, promote, abort by a person (and the ones ignored);
* ``rollback.requested`` (who asked, why), ``rollback.finished`` (the rollback hook's outcome);
* ``deployment.stage``: each stage change, and Tocsin's own steps (queued, lock acquired, canary
  steps, analyses, reminders, health, incident raised);
* ``deployment.finished``: the outcome (deployed, rolled_back, rejected, expired) and its reason.

Deliveries are journaled by ``workflows.delivery``.
"""

from __future__ import annotations

from typing import Any

from workflows.deployment.models import DeploymentState
from workflows.identity import Actor
from workflows.journal import Journal

__all__ = ["DeploymentJournal", "OUTCOMES"]

OUTCOMES = frozenset({"deployed", "rolled_back", "rejected", "expired"})
ACTIONS = {
    "requested": "deployment.requested",
    "approved": "deployment.approved",
    "rejected": "deployment.rejected",
    "approval_refused": "refused",
    "rejection_refused": "refused",
    "rollback_requested": "rollback.requested",
    "rollback_ignored": "rollback.requested",
    "rollback_hook": "rollback.finished",
    "risk": "deployment.gate",
    "emergency": "deployment.gate",
}
CONTROLS = frozenset({"paused", "resumed", "promoted", "aborted"})


class DeploymentJournal:
    """Mixed into ``DeploymentStages``: the deployment's audit records."""

    _s: DeploymentState
    _journal: Journal

    def _base(self) -> dict[str, Any]:
        s = self._s
        return {"service": s.service, "env": s.env, "version": s.version}

    def _journal_entry(self, actor: str, action: str, detail: str, who: Actor | None) -> None:
        """Journal one timeline entry under its audit action (see the module's docstring)."""
        s = self._s
        record: dict[str, Any] = {"by": actor, "event": action, "detail": detail or None, **self._base()}
        person = who is not None or actor != "tocsin"
        if action in OUTCOMES and not person:
            kind = "deployment.finished"
            record.update(outcome=action, reason=s.reason or detail or None)
        elif action.startswith("gate_"):
            kind = "deployment.gate"
            record.update(gate=action.removeprefix("gate_"), result=detail.split(":", 1)[0])
        elif action in ACTIONS:
            kind = ACTIONS[action]
            if action == "requested":
                record.update(commit=s.commit, emergency=s.emergency or None)
            if kind == "deployment.gate":
                record.update(gate=action)
        elif person and (action in CONTROLS or action.endswith("_ignored")):
            kind = "deployment.control"
        else:
            kind = "deployment.stage"
        self._journal.record(kind, actor=who, detail=record)

    def _journal_stage(self, stage: str) -> None:
        """Journal a stage change."""
        self._journal.record("deployment.stage", detail={"stage": stage, **self._base()})
