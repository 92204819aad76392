"""Pipeline activities: reading the pipeline entities (``pipeline/<repo>/<branch>``) from other flows.

Built once per worker with the worker's Temporal client and config store, like ``IncidentActivities``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from operations.config import ConfigStore
from operations.errors import BadInput
from operations.reports import build_health_report
from workflows.policy.health_report import HealthReport
from workflows.report.models import HealthReportRequest

__all__ = ["PipelineActivities"]


class PipelineActivities:
    """Activities over the pipeline entities."""

    def __init__(self, client: Client, store: ConfigStore):
        self._client = client
        self._store = store

    @activity.defn(name="pipeline_health_report")
    async def health_report(self, request: HealthReportRequest) -> HealthReport:
        """The health report of a repository's pipelines (``ReportWorkflow``, kind ``pipeline-health``).

        The report, not the pipelines' states, crosses into the workflow's history: it stays small
        whatever the number of branches and tests.
        """
        try:
            return await build_health_report(self._client, self._store.get(), request.repo, request.period, request.now)
        except BadInput as exc:  # a period no retry can fix
            raise ApplicationError(str(exc), type="BadInput", non_retryable=True) from None

    def functions(self) -> list[Callable[..., Any]]:
        """The activity callables to register."""
        return [self.health_report]
