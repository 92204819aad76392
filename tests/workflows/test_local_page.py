"""Pages on unpaced channels are tried locally first (``incident-local-page``, ``workflows.delivery``).

An incident started with the patch sends a page on a channel with no paced send queue from the
workflow task that decided it (a local activity, one try of at most ``LOCAL_SEND_TIMEOUT``). What
that try does not deliver goes on as the durable send activity, with its retries and failover: it
counts as a retry (it looks for a duplicate from the local try's time) unless the local try was a
paced deferral, which reached no channel.
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from operations.alerts import dispatch_alerts
from tests.helpers import ops, outbox
from tests.workflows.test_incident_lean import local_activities
from tests.workflows.test_incident_workflow import alert, config_dict
from tests.workflows.test_journal_flows import FakeJournal, replay, scheduled, until, worker
from workflows.delivery import LOCAL_SEND_TIMEOUT
from workflows.incident.workflow import IncidentWorkflow
from workflows.models import DeliveryRecord, SendRequest


async def page_recorded(handle: WorkflowHandle) -> list[HistoryEvent]:
    """The history once the first page's outcome is recorded (the workflow task after the send completed)."""
    for _ in range(100):
        events = list((await handle.fetch_history()).events)
        if any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in events) and (
            "send_notification" in local_activities(events) or scheduled(events, "send_notification")
        ):
            state = await handle.query(IncidentWorkflow.state)
            if any(t.action.startswith("notified L") for t in state.timeline):
                return events
        await asyncio.sleep(0.05)
    raise AssertionError("the first page was never recorded")


class FlakySend:
    """The send activity: its first call fails with ``first_error`` (None: hangs past the local try's
    timeout); later ones deliver."""

    def __init__(self, first_error: ApplicationError | None) -> None:
        self.first_error = first_error
        self.requests: list[SendRequest] = []
        self.local: list[bool] = []

    @activity.defn(name="send_notification")
    async def send(self, request: SendRequest) -> DeliveryRecord:
        self.requests.append(request)
        self.local.append(activity.info().is_local)
        if len(self.requests) == 1:
            if self.first_error is None:
                await asyncio.sleep(LOCAL_SEND_TIMEOUT.total_seconds() * 5)
            else:
                raise self.first_error
        return DeliveryRecord(channel=request.channel, receiver=request.receiver, outcome="delivered")


async def test_a_first_page_on_an_unpaced_channel_goes_out_from_the_workflow_task(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path, write_config
) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(config_dict(group_wait="0s"))
    ctx = ops(time_env.client, task_queue, cfg)
    async with worker(time_env, task_queue, tmp_path, cfg, FakeJournal()):
        [wid] = await dispatch_alerts(ctx, [alert(service=f"svc-{task_queue}")], source="test")
        handle = time_env.client.get_workflow_handle(wid)
        await until(lambda: any(r["key"].startswith(f"{wid}/rung-0/") for r in outbox(tmp_path)))
        events = await page_recorded(handle)
        state = await handle.query(IncidentWorkflow.state)
        await replay(handle)
    assert local_activities(events, journal=False) == ["first_look", "send_notification"]
    assert scheduled(events, "send_notification") == [], "no activity task for the page"
    assert sum(1 for r in outbox(tmp_path) if r["key"].startswith(f"{wid}/rung-0/")) == 1
    assert state.level == 1


async def test_a_failed_local_try_goes_on_as_a_durable_send_that_counts_as_a_retry(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path, write_config
) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(config_dict(group_wait="0s"))
    ctx = ops(time_env.client, task_queue, cfg)
    send = FlakySend(ApplicationError("slack answered 500", type="SlackTransient"))
    async with worker(time_env, task_queue, tmp_path, cfg, FakeJournal(), send.send):
        [wid] = await dispatch_alerts(ctx, [alert(service=f"svc-{task_queue}")], source="test")
        await until(lambda: len(send.requests) == 2)
        handle = time_env.client.get_workflow_handle(wid)
        events = await page_recorded(handle)
        await replay(handle)
    assert send.local == [True, False], "a local try, then the durable activity"
    first, durable = send.requests
    assert first.tried_at is None and durable.tried_at is not None
    assert durable.idempotency_key == first.idempotency_key
    assert len(scheduled(events, "send_notification")) == 1


async def test_a_paced_local_try_is_not_counted_as_a_try(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path, write_config
) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(config_dict(group_wait="0s"))
    ctx = ops(time_env.client, task_queue, cfg)
    send = FlakySend(ApplicationError("paced: bucket empty", type="Paced", next_retry_delay=None))
    async with worker(time_env, task_queue, tmp_path, cfg, FakeJournal(), send.send):
        await dispatch_alerts(ctx, [alert(service=f"svc-{task_queue}")], source="test")
        await until(lambda: len(send.requests) == 2)
    assert send.local == [True, False]
    assert send.requests[1].tried_at is None, "a deferral reached no channel: no duplicate look-up"


async def test_a_local_try_that_hangs_gives_way_to_the_durable_send(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path, write_config
) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(config_dict(group_wait="0s"))
    ctx = ops(time_env.client, task_queue, cfg)
    send = FlakySend(None)
    async with worker(time_env, task_queue, tmp_path, cfg, FakeJournal(), send.send):
        [wid] = await dispatch_alerts(ctx, [alert(service=f"svc-{task_queue}")], source="test")
        await until(lambda: len(send.requests) == 2, timeout=LOCAL_SEND_TIMEOUT.total_seconds() + 10)
        events = await page_recorded(time_env.client.get_workflow_handle(wid))
    assert send.requests[1].tried_at is not None, "the timed-out try may have reached the channel"
    assert len(scheduled(events, "send_notification")) == 1
