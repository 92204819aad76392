"""Temporal Schedules Tocsin keeps in step with the config: one digest report per digest receiver."""

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
from workflows.config import Config
from workflows.report.models import ReportInput
from workflows.report.workflow import ReportWorkflow

__all__ = ["digest_schedule_id", "ensure_schedules"]

log = logging.getLogger("tocsin.schedules")
PREFIX = "report/digest-"


def digest_schedule_id(receiver: str) -> str:
    """``report/digest-<receiver>``."""
    return f"{PREFIX}{receiver}"


def _schedule(receiver: str, at: str, zone: str, task_queue: str) -> Schedule:
    hour, minute = (int(part) for part in at.split(":"))
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReportWorkflow.run,
            ReportInput(kind="digest", receiver=receiver),
            id=digest_schedule_id(receiver),
            task_queue=task_queue,
            typed_search_attributes=TypedSearchAttributes([SearchAttributePair(search.KIND, "report")]),
        ),
        spec=ScheduleSpec(
            calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(hour)], minute=[ScheduleRange(minute)])],
            time_zone_name=zone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.BUFFER_ONE),
    )


async def ensure_schedules(client: Client, config: Config, task_queue: str) -> list[str]:
    """Create or update a digest schedule per digest receiver; delete ones no longer configured.

    Returns:
        The schedule ids now in place.
    """
    wanted = {digest_schedule_id(r.name): r for r in config.receivers if r.digest}
    for sid, receiver in wanted.items():
        schedule = _schedule(receiver.name, receiver.digest_at, receiver.digest_timezone, task_queue)
        try:
            await client.create_schedule(sid, schedule)
        except ScheduleAlreadyRunningError:

            async def update(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=new)

            await client.get_schedule_handle(sid).update(update)
    try:
        async for listed in await client.list_schedules():
            if listed.id.startswith(PREFIX) and listed.id not in wanted:
                await client.get_schedule_handle(listed.id).delete()
    except RPCError as exc:  # listing needs visibility; not fatal
        log.warning("cannot list schedules: %s", exc.message)
    return sorted(wanted)
