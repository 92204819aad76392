"""Failure-pattern activity: a pipeline hands one failed build to ``report/failure-patterns``.

Built once per worker with the worker's Temporal client. The pipeline calls it by name
(``report_failure_pattern``, :data:`workflows.patterns.ACTIVITY_REPORT`) with a :class:`FailureSeen`; the
activity signals-with-start the one ``FailurePatternsWorkflow`` on its own task queue, so the entity runs
where the pipeline runs. A Temporal error is left to the activity's retry policy: signal-with-start is safe to repeat, the
entity ignores an occurrence already in its signature's open window.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from workflows import search
from workflows.patterns.models import (
    ACTIVITY_REPORT,
    SIGNAL_FAILURE_SEEN,
    WORKFLOW,
    WORKFLOW_ID,
    FailurePatternsInput,
    FailureSeen,
)

__all__ = ["PatternActivities"]


class PatternActivities:
    """Activities of the failure-pattern entity."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=ACTIVITY_REPORT)
    async def report_failure_pattern(self, seen: FailureSeen) -> None:
        """Signal-with-start ``report/failure-patterns`` with one failed build."""
        await self._client.start_workflow(
            WORKFLOW,
            FailurePatternsInput(),
            id=WORKFLOW_ID,
            task_queue=activity.info().task_queue,
            start_signal=SIGNAL_FAILURE_SEEN,
            start_signal_args=[seen],
            search_attributes=TypedSearchAttributes([SearchAttributePair(search.KIND, "report")]),
            static_summary="CI failure patterns across pipelines",
        )
