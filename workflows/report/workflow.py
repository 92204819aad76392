"""``ReportWorkflow``: scheduled reports (``report/<name>``): the receivers' digests and pipeline health.

A Temporal Schedule starts ``report/digest-<receiver>`` at the receiver's
``digest_at`` in ``digest_timezone``. The run collects the incidents held for
that receiver, sends them as one message, and tells each incident it was sent,
so none is dropped and none is sent twice.

Kind ``pipeline-health`` (``report/health-<repo>-<every>``, one schedule per ``pipelines.reports`` entry):
an activity reads the repository's pipeline entities and makes the report
(``workflows.policy.health_report``); the run sends it as one message to the configured receiver.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.delivery import deliver, load_config
from workflows.incident.models import HeldIncident
from workflows.models import Message, MessageField
from workflows.policy.health_report import HealthReport, report_message
from workflows.report.models import KIND_PIPELINE_HEALTH, HealthReportRequest, ReportInput, ReportResult

with workflow.unsafe.imports_passed_through():
    from activities.incidents import IncidentActivities
    from activities.pipelines import PipelineActivities

__all__ = ["ReportWorkflow", "digest_message"]


def digest_message(receiver: str, held: list[HeldIncident], source: str) -> Message:
    """One message listing every held incident."""
    worst = max(
        (h.severity for h in held),
        key=lambda s: (
            ["info", "warning", "error", "critical"].index(s) if s in ("info", "warning", "error", "critical") else 1
        ),
    )
    lines = []
    for h in held:
        when = h.first_seen.strftime("%Y-%m-%d %H:%M UTC") if h.first_seen else "?"
        state = "resolved" if h.resolved else "still firing"
        lines.append(f"• [{h.severity}] {h.title} — since {when}, {state} ({h.alerts} alert(s)) `{h.id}`")
    return Message(
        title=f"Digest for {receiver}: {len(held)} incident(s) held overnight",
        text="\n".join(lines),
        severity=worst if worst != "info" else "info",
        fields=[
            MessageField(title="Still firing", value=str(sum(not h.resolved for h in held))),
            MessageField(title="Resolved", value=str(sum(h.resolved for h in held))),
        ],
        labels={"kind": "digest", "receiver": receiver, "alertname": "Digest"},
        source=source,
    )


@workflow.defn(name="ReportWorkflow")
class ReportWorkflow:
    """One scheduled report run."""

    @workflow.run
    async def run(self, input: ReportInput) -> ReportResult:
        if input.kind == KIND_PIPELINE_HEALTH:
            return await self._pipeline_health(input)
        held: list[HeldIncident] = await workflow.execute_activity_method(
            IncidentActivities.held_incidents,
            input.receiver,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )
        result = ReportResult(incidents=[h.id for h in held])
        if not held:
            return result
        config = await load_config()
        info = workflow.info()
        # The schedule gives each run a unique id suffix; the step names this run.
        step = f"digest-{info.run_id}"
        result.deliveries = await deliver(
            config, input.receiver, digest_message(input.receiver, held, info.workflow_id), step
        )
        if any(d.outcome == "delivered" for d in result.deliveries) or not result.deliveries:
            for h in held:
                await workflow.get_external_workflow_handle(h.id).signal("digest_sent", info.workflow_id)
        return result

    async def _pipeline_health(self, input: ReportInput) -> ReportResult:
        """One repository's pipeline health report, delivered to the receiver (even when no build ran)."""
        info = workflow.info()
        request = HealthReportRequest(repo=input.repo or "", period=input.period or "7d", now=workflow.now())
        report: HealthReport = await workflow.execute_activity_method(
            PipelineActivities.health_report,
            request,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=30)),
        )
        config = await load_config()
        message = report_message(report, info.workflow_id)
        deliveries = await deliver(config, input.receiver, message, f"health-{info.run_id}")
        return ReportResult(deliveries=deliveries, report=report)
