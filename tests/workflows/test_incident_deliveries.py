"""An incident's deliveries run beside its ladder (issue 10, items 3 and 4) on the time-skipping server.

* A dead channel with no backup holds up neither the next rung, nor the acknowledgement's
  announcement, nor the resolve notice on the receiver's other channels; what it could not send
  is dead-lettered into the incident's state once ``give_up_after`` has passed, and the run
  ends only then.
* Sends of one receiver on one channel keep their order; "alerts changed" updates coalesce: a
  newer one cancels an older one still queued and skips one still waiting for its turn (never a
  dead letter); pages are sent as ``critical``/``page``, the rest as ``update``.
* Continue-as-new waits for the deliveries in flight (none is dropped) while alerts go on
  being processed.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from operations import incidents
from operations.alerts import dispatch_alerts, fingerprint
from tests.helpers import ops, outbox, person, tocsin_worker
from workers.registry import WORKFLOWS, workflow_runner
from workflows.incident.models import Alert, AlertBatch, IncidentInput, IncidentState
from workflows.incident.workflow import IncidentWorkflow
from workflows.models import DeliveryRecord, SendRequest


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/"


def alert(service: str, instance: str = "a", severity: str = "critical") -> Alert:
    labels = {"alertname": "HighErrorRate", "service": service, "severity": severity, "instance": instance}
    return Alert(fingerprint=fingerprint(labels), labels=labels, annotations={"summary": f"errors on {instance}"})


async def until(predicate: Callable[[], Any], timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


async def advance_until(
    env: WorkflowEnvironment, predicate: Callable[[], Any], step: timedelta = timedelta(seconds=10), limit: int = 12
) -> None:
    """Skip time ``step`` by ``step`` (at most ``limit`` times) until ``predicate`` holds: a busy worker may
    start the incident's clock a little after the test's."""
    for _ in range(limit):
        try:
            await until(predicate, timeout=2.0)
            return
        except AssertionError:
            await env.sleep(step)
    await until(predicate)


async def replays(history: WorkflowHistory) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=workflow_runner())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure


async def state_of(env: WorkflowEnvironment, wid: str) -> IncidentState:
    return await env.client.get_workflow_handle_for(IncidentWorkflow.run, wid).query(IncidentWorkflow.state)


def sent(home: Path, wid: str) -> list[str]:
    """``<step>/<channel>`` of what the console channels delivered for this incident."""
    return [r["key"][len(wid) + 1 :] for r in outbox(home) if r["key"].startswith(f"{wid}/")]


class FakeSend:
    """The send activity, delivering at once except for the steps told to fail until they give up."""

    def __init__(self, failing: set[str]):
        self.failing = failing
        self.calls: list[SendRequest] = []

    def keys(self) -> list[str]:
        return [r.idempotency_key.split("/", 2)[2] for r in self.calls]

    @activity.defn(name="send_notification")
    async def send(self, request: SendRequest) -> DeliveryRecord:
        self.calls.append(request)
        step = request.idempotency_key.split("/")[-2]
        if step in self.failing:
            raise ApplicationError("503 from the API", type="ChannelRetryable")
        return DeliveryRecord(
            channel=request.channel,
            receiver=request.receiver,
            outcome="delivered",
            message_id=f"ts-{step}",
            attempts=activity.info().attempt,
        )


@pytest.fixture
def service() -> str:
    return f"svc-{uuid.uuid4().hex[:8]}"


async def test_a_dead_channel_holds_up_no_rung_ack_or_resolve_and_is_dead_lettered(
    fresh_time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, service: str
) -> None:  # type: ignore[no-untyped-def]
    env = fresh_time_env
    config = write_config(
        {
            "channels": {
                "dead-slack": {"type": "slack", "token": "xoxb-dead", "channel": "#oncall", "api_url": refused_url()},
                "oncall-console": {"type": "console"},
                "senior-console": {"type": "console"},
            },
            "receivers": [
                {"name": "oncall", "channels": ["dead-slack", "oncall-console"], "give_up_after": "10m"},
                {"name": "senior", "channels": ["senior-console"]},
            ],
            "route": {"receiver": "oncall", "group_by": ["service"], "group_wait": "30s", "escalation": "ladder"},
            "escalation_policies": {
                "ladder": {"levels": [{"after": "0m", "receiver": "oncall"}, {"after": "5m", "receiver": "senior"}]}
            },
        }
    )
    async with tocsin_worker(env.client, task_queue, tmp_path, config):
        [wid] = await dispatch_alerts(ops(env.client, task_queue, config), [alert(service)], source="test")
        await env.sleep(timedelta(seconds=31))
        await advance_until(env, lambda: "rung-0/oncall-console" in sent(tmp_path, wid))
        await env.sleep(timedelta(minutes=5))
        await advance_until(env, lambda: "rung-1/senior-console" in sent(tmp_path, wid))  # the dead Slack still retries

        await incidents.acknowledge(ops(env.client, task_queue, config), person("alice"), wid, "on it")
        await until(lambda: "acknowledged-1/oncall-console" in sent(tmp_path, wid))
        assert "acknowledged-1/senior-console" in sent(tmp_path, wid)
        await incidents.resolve(ops(env.client, task_queue, config), person("alice"), wid, "fixed")
        await until(lambda: "resolved-2/oncall-console" in sent(tmp_path, wid))
        state = await state_of(env, wid)
        assert state.status == "resolved" and state.dead_letters == [], "nothing has given up yet"

        handle = env.client.get_workflow_handle_for(IncidentWorkflow.run, wid)
        await env.sleep(timedelta(minutes=11))  # the dead Slack's sends give up after 10m
        result = await handle.result()
        await replays(await handle.fetch_history())
    letters = [(d.step, d.channel) for d in result.dead_letters]
    assert sorted(letters) == [("acknowledged-1", "dead-slack"), ("resolved-2", "dead-slack"), ("rung-0", "dead-slack")]
    assert result.dead_letter_count == 3
    assert all(d.error.startswith("gave up after 10m") for d in result.dead_letters)
    notified = [e.detail for e in result.timeline if e.action == "notified L1"]
    assert notified == ["oncall (dead-slack:failed, oncall-console:delivered)"]


async def test_updates_coalesce_and_keep_their_order_behind_a_stuck_send(
    fresh_time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, service: str
) -> None:  # type: ignore[no-untyped-def]
    env = fresh_time_env
    config = write_config(
        {
            "channels": {"chat": {"type": "slack", "token": "xoxb-fake", "channel": "#oncall"}},
            "receivers": [{"name": "oncall", "channels": ["chat"], "give_up_after": "10m"}],
            "route": {"receiver": "oncall", "group_by": ["service"], "group_wait": "10s", "group_interval": "1m"},
        }
    )
    fake = FakeSend(failing={"updated-1-thread", "acknowledged-3-thread"})
    context = ops(env.client, task_queue, config)

    async def change(instance: str, announced: int) -> None:
        """New alert; the next "alerts changed" (the ``announced``-th announcement) comes a group_interval later."""
        await dispatch_alerts(context, [alert(service, instance)], source="test")
        await env.sleep(timedelta(seconds=61))
        counted: list[int] = [0]

        async def poll() -> None:
            while True:
                counted[0] = (await state_of(env, wid)).updates_sent
                await asyncio.sleep(0.05)

        poller = asyncio.create_task(poll())
        try:
            await advance_until(env, lambda: counted[0] >= announced)
        finally:
            poller.cancel()

    async with tocsin_worker(env.client, task_queue, tmp_path, config, replace_send=fake.send):
        [wid] = await dispatch_alerts(context, [alert(service)], source="test")
        await env.sleep(timedelta(seconds=11))
        await advance_until(env, lambda: "rung-0/chat" in fake.keys())
        await change("b", 1)  # updated-1: its thread reply keeps failing
        await until(lambda: "updated-1-thread/chat" in fake.keys())
        await change("c", 2)  # updated-2 cancels it (still retrying) and goes at once
        await until(lambda: "updated-2-thread/chat" in fake.keys())

        await incidents.acknowledge(context, person("alice"), wid)  # its thread reply gets stuck
        await until(lambda: "acknowledged-3-thread/chat" in fake.keys())
        await change("d", 4)  # updated-4 waits behind the acknowledgement's reply…
        await change("e", 5)  # …and is replaced by updated-5 before its turn
        assert not any(k.startswith(("updated-4", "updated-5")) for k in fake.keys())
        await env.sleep(timedelta(minutes=10))  # the acknowledgement's reply gives up
        await until(lambda: "updated-5-thread/chat" in fake.keys())
        state = await state_of(env, wid)
        history = await env.client.get_workflow_handle(wid).fetch_history()
        await env.client.get_workflow_handle(wid).terminate("test over")
    await replays(history)

    keys = fake.keys()
    assert not any(k.startswith("updated-4") for k in keys), "a superseded update waiting for its turn is skipped"
    assert keys.index("updated-5/chat") < keys.index("updated-5-thread/chat"), "edit, then its thread reply"
    assert [(d.step, d.channel) for d in state.dead_letters] == [("acknowledged-3-thread", "chat")]
    assert state.dead_letter_count == 1, "superseded updates are not dead letters"
    priorities = {r.idempotency_key.split("/", 2)[2]: r.priority for r in fake.calls}
    assert priorities["rung-0/chat"] == "critical"
    assert {p for k, p in priorities.items() if not k.startswith("rung-")} == {"update"}
    edits = {r.idempotency_key.split("/", 2)[2]: r.update_of for r in fake.calls if not r.thread_of}
    assert edits["updated-5/chat"] == "ts-rung-0", "announcements edit the message the rung posted"


async def test_continue_as_new_waits_for_deliveries_in_flight(
    fresh_time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, service: str
) -> None:  # type: ignore[no-untyped-def]
    env = fresh_time_env
    config = write_config(
        {
            "channels": {"chat": {"type": "slack", "token": "xoxb-fake", "channel": "#oncall"}},
            "receivers": [{"name": "oncall", "channels": ["chat"], "give_up_after": "10m"}],
            "route": {"receiver": "oncall", "group_by": ["service"], "group_wait": "0s", "group_interval": "1h"},
        }
    )
    fake = FakeSend(failing={"rung-0"})
    wid = f"incident/test-{uuid.uuid4().hex[:8]}"
    first = alert(service)
    async with tocsin_worker(env.client, task_queue, tmp_path, config, replace_send=fake.send):
        start = await env.client.start_workflow(
            IncidentWorkflow.run,
            IncidentInput(id=wid, route_path="route", max_history=30, pending=[AlertBatch(alerts=[first])]),
            id=wid,
            task_queue=task_queue,
        )
        handle = env.client.get_workflow_handle_for(IncidentWorkflow.run, wid)  # follows the newest run
        await until(lambda: "rung-0/chat" in fake.keys())
        for i in range(15):
            await handle.signal(IncidentWorkflow.add_alerts, AlertBatch(alerts=[alert(service, f"i{i}")]))
        for _ in range(100):
            state = await handle.query(IncidentWorkflow.state)
            if state.counts.firing == 16:
                break
            await asyncio.sleep(0.05)
        assert state.counts.firing == 16, "alerts are processed while the page is still being retried"
        assert (await handle.describe()).run_id == start.result_run_id, "no continue-as-new with a delivery in flight"

        await env.sleep(timedelta(minutes=11))  # the page gives up
        for _ in range(200):
            desc = await handle.describe()
            if desc.run_id != start.result_run_id:
                break
            await asyncio.sleep(0.05)
        state = await handle.query(IncidentWorkflow.state)
        first_run = await env.client.get_workflow_handle(wid, run_id=start.result_run_id).fetch_history()
        try:
            await handle.terminate("test over")
        except RPCError:
            pass
    await replays(first_run)
    assert desc.run_id != start.result_run_id, "the run continued as new once its delivery was done"
    assert [(d.step, d.channel) for d in state.dead_letters] == [("rung-0", "chat")], "carried into the new run"
    assert state.counts.firing == 16
