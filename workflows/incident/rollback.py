"""An incident's rollback triggers: a firing alert named in ``rollback_triggers`` rolls its deployment back.

Mixed into ``IncidentWorkflow``. Asked once per incident: the activity finds the service and
environment's running deployment and signals it (``operations``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.config import Config
from workflows.incident.models import IncidentState, RollbackTrigger

with workflow.unsafe.imports_passed_through():
    from activities.incidents import IncidentActivities

__all__ = ["IncidentRollback"]

ACTIVITY_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))


class IncidentRollback:
    """Mixed into ``IncidentWorkflow``: rollback triggers."""

    _st: IncidentState

    if TYPE_CHECKING:  # provided by IncidentWorkflow

        def _log(self, actor: str, action: str, detail: str = "") -> None: ...

    async def _maybe_rollback(self, config: Config) -> None:
        st = self._st
        if st.rollback_requested or not config.rollback_triggers:
            return
        for alert in st.firing():
            name = alert.labels.get("alertname", "")
            service = alert.labels.get("service")
            env = alert.labels.get("env") or alert.labels.get("environment")
            if name in config.rollback_triggers and service and env:
                st.rollback_requested = True
                result = await workflow.execute_activity_method(
                    IncidentActivities.request_rollback,
                    RollbackTrigger(
                        service=service,
                        environment=env,
                        alertname=name,
                        incident=st.id,
                        reason=f"rollback trigger {name} fired ({st.id})",
                    ),
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=ACTIVITY_RETRY,
                )
                self._log("tocsin", "rollback requested", f"{service}/{env}: {result}")
                return
