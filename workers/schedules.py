"""Temporal Schedules Tocsin keeps in step with the config: one digest report per digest receiver, and one
pipeline health report per ``pipelines.reports`` entry (``report/health-<repo with / as ->-<every>``)."""

from __future__ import annotations

import logging

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from workflows import search
from workflows.config import Config, PipelineReportConfig
from workflows.report.models import KIND_PIPELINE_HEALTH, ReportInput
from workflows.report.workflow import ReportWorkflow

__all__ = ["digest_schedule_id", "health_schedule_id", "ensure_schedules", "WEEKDAYS"]

log = logging.getLogger("tocsin.schedules")
PREFIX = "report/digest-"
HEALTH_PREFIX = "report/health-"
WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
"""Temporal's day-of-week numbers (0 is Sunday)."""


def digest_schedule_id(receiver: str) -> str:
    """``report/digest-<receiver>``."""
    return f"{PREFIX}{receiver}"


def health_schedule_id(report: PipelineReportConfig) -> str:
    """``report/health-<repo with / replaced by ->-<every>`` (``report/health-acme-payments-weekly``)."""
    return f"{HEALTH_PREFIX}{report.repo.replace('/', '-')}-{report.every}"


def _schedule(
    sid: str,
    request: ReportInput,
    at: str,
    zone: str,
    task_queue: str,
    weekday: str | None = None,
    service: str | None = None,
) -> Schedule:
    hour, minute = (int(part) for part in at.split(":"))
    days = [ScheduleRange(WEEKDAYS[weekday])] if weekday is not None else [ScheduleRange(0, 6)]
    attributes = [SearchAttributePair(search.KIND, "report")]
    if service is not None:
        attributes.append(SearchAttributePair(search.SERVICE, service))
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReportWorkflow.run,
            request,
            id=sid,
            task_queue=task_queue,
            typed_search_attributes=TypedSearchAttributes(attributes),
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(hour=[ScheduleRange(hour)], minute=[ScheduleRange(minute)], day_of_week=days)
            ],
            time_zone_name=zone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.BUFFER_ONE),
    )


def _wanted(config: Config, task_queue: str) -> dict[str, Schedule]:
    """Every schedule the config asks for; a daily health report looks back one day unless told its period."""
    wanted = {
        digest_schedule_id(r.name): _schedule(
            digest_schedule_id(r.name),
            ReportInput(kind="digest", receiver=r.name),
            r.digest_at,
            r.digest_timezone,
            task_queue,
        )
        for r in config.receivers
        if r.digest
    }
    for report in config.pipelines.reports:
        sid = health_schedule_id(report)
        period = report.period if "period" in report.model_fields_set or report.every == "weekly" else "1d"
        request = ReportInput(kind=KIND_PIPELINE_HEALTH, receiver=report.receiver, repo=report.repo, period=period)
        weekday = report.weekday if report.every == "weekly" else None
        wanted[sid] = _schedule(sid, request, report.at, report.timezone, task_queue, weekday, report.repo)
    return wanted


async def ensure_schedules(client: Client, config: Config, task_queue: str) -> list[str]:
    """Create or update a digest schedule per digest receiver and a health report schedule per
    ``pipelines.reports`` entry; delete the digest and health schedules no longer configured.

    Returns:
        The schedule ids now in place.
    """
    wanted = _wanted(config, task_queue)
    for sid, schedule in wanted.items():
        try:
            await client.create_schedule(sid, schedule)
        except ScheduleAlreadyRunningError:

            async def update(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=new)

            await client.get_schedule_handle(sid).update(update)
    try:
        async for listed in await client.list_schedules():
            if listed.id.startswith((PREFIX, HEALTH_PREFIX)) and listed.id not in wanted:
                await client.get_schedule_handle(listed.id).delete()
    except RPCError as exc:  # listing needs visibility; not fatal
        log.warning("cannot list schedules: %s", exc.message)
    return sorted(wanted)
