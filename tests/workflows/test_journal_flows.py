"""The flows' side of the audit journal on the time-skipping server (``workflows.journal``).

A fake ``journal_append`` activity records the batches the flows send: each audited event
arrives once, in order, with its actor and a key ``<workflow id>/<first run id>/<seq>``, also
when the worker is restarted mid-run (its history replayed); a journal that is down for a while
delays records but holds up nothing (a page still goes out); ``detail`` never carries a
notification's text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from operations import incidents
from operations.alerts import dispatch_alerts, group_alerts
from operations.builds import send_build_event
from operations.config import ConfigStore
from operations.deployments import approve, start_deployment
from operations.journal import open_journal
from operations.silences import add_silence, expire_silence
from tests.fakes.hooks import FakeHooks
from tests.helpers import deployment_config, ops, outbox, person, settings_for, tocsin_worker
from tests.workflows.test_deployment_workflow import FakeContext
from tests.workflows.test_incident_lean import local_activity_type
from tests.workflows.test_incident_workflow import alert, config_dict
from workers.main import ActivitySet, build_worker
from workers.registry import WORKFLOWS, workflow_runner
from workflows.audit import ACTIONS, ACTIVITY_APPEND, JournalBatch, JournalEntry
from workflows.deployment import ControlRequest, DeployInput
from workflows.deployment.workflow import DeploymentWorkflow
from workflows.incident.models import AlertBatch, IncidentInput
from workflows.incident.workflow import IncidentWorkflow
from workflows.models import DeliveryRecord, Message, SendRequest
from workflows.notify.models import NotifyInput
from workflows.notify.workflow import NotifyWorkflow
from workflows.pipeline.models import BuildEvent

SECRET = "password=hunter2-ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.fixture
def time_env(fresh_time_env: WorkflowEnvironment) -> WorkflowEnvironment:
    """Incidents and silences outlive a test: each test gets its own time-skipping server."""
    return fresh_time_env


class FakeJournal:
    """The ``journal_append`` activity's double: down for its first ``down`` calls, then records batches."""

    def __init__(self, down: int = 0):
        self.down = down
        self.calls = 0
        self.batches: list[JournalBatch] = []

    @activity.defn(name=ACTIVITY_APPEND)
    async def append(self, batch: JournalBatch) -> int:
        self.calls += 1
        if self.calls <= self.down:
            raise ApplicationError("journal database unavailable", type="JournalUnavailable")
        self.batches.append(batch)
        return len(batch.entries)

    def of(self, wid: str) -> list[JournalEntry]:
        return [e for b in self.batches for e in b.entries if e.key.startswith(wid + "/")]


class FailingSend:
    """The send activity: channel ``bad`` fails for good (bad credentials), the others deliver."""

    @activity.defn(name="send_notification")
    async def send(self, request: SendRequest) -> DeliveryRecord:
        if request.channel == "bad":
            raise ApplicationError("invalid_auth", type="BadCredentials", non_retryable=True)
        return DeliveryRecord(channel=request.channel, receiver=request.receiver, outcome="delivered")


def _name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__temporal_activity_definition").name)


@contextlib.asynccontextmanager
async def worker(
    env: WorkflowEnvironment, task_queue: str, home: Path, config: Path, journal: FakeJournal, *extra: Any
) -> AsyncIterator[None]:
    """A Tocsin worker whose ``journal_append`` (and any ``extra`` activity, by name) is a double.

    It caches no workflow: every workflow task replays the history from the start (and no sticky
    queue outlives the worker when a test stops it and starts another).
    """
    settings = settings_for(task_queue, home)
    acts = ActivitySet(env.client, settings, ConfigStore(config))
    replaced = {ACTIVITY_APPEND, *(_name(f) for f in extra)}
    functions = [f for f in acts.functions() if _name(f) not in replaced]
    try:
        async with build_worker(env.client, settings, [*functions, *extra, journal.append], max_cached_workflows=0):
            yield
    finally:
        await acts.aclose()


async def until(predicate: Callable[[], Any], timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if await predicate() if asyncio.iscoroutinefunction(predicate) else predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


async def replay(handle: WorkflowHandle) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=workflow_runner())
    await replayer.replay_workflow(await handle.fetch_history())


def check_once_in_order(entries: Sequence[JournalEntry], wid: str) -> None:
    """Keys unique, numbered 1..n in the order they arrived, all of this workflow; actions known."""
    keys = [e.key for e in entries]
    assert len(keys) == len(set(keys)), f"a record arrived twice: {keys}"
    assert [int(k.rsplit("/", 1)[1]) for k in keys] == list(range(1, len(keys) + 1)), keys
    assert all(e.object == wid for e in entries)
    assert all(e.action in ACTIONS for e in entries), [e.action for e in entries]
    times = [e.time for e in entries]
    assert times == sorted(times)


def audited(entries: Sequence[JournalEntry]) -> list[tuple[str, str | None, str | None]]:
    """(action, actor name, event) of every record but deliveries."""
    return [
        (e.action, e.actor.name if e.actor else None, e.detail.get("event"))
        for e in entries
        if not e.action.startswith("notification.")
    ]


# ------------------------------------------------------------------ incident


async def test_incident_journals_states_and_actions_once_across_a_worker_restart(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    cfg, journal, service = write_config(config_dict()), FakeJournal(), f"svc-{task_queue}"
    ctx = ops(time_env.client, task_queue, cfg)
    async with worker(time_env, task_queue, tmp_path, cfg, journal):
        [wid] = await dispatch_alerts(ctx, [alert(service=service)], source="test")
        await time_env.sleep(timedelta(seconds=31))
        await until(lambda: any(e.detail.get("event") == "notified" for e in journal.of(wid)))
        await incidents.acknowledge(ctx, person("alice"), wid, "looking")
        await until(lambda: any(e.action == "incident.acknowledged" for e in journal.of(wid)))
        # The acknowledgement is journaled from its own workflow task (incident-local-journal), before its
        # notice is sent: wait for the notice, which a worker stopping under it would leave to its timeout.
        await until(lambda: any(r["key"].startswith(f"{wid}/acknowledged-") for r in outbox(tmp_path)))
    async with worker(time_env, task_queue, tmp_path, cfg, journal):  # a new worker replays the history
        await incidents.resolve(ctx, person("bob", via="slack"), wid, "fixed")
        handle = time_env.client.get_workflow_handle(wid)
        await handle.result()
        await replay(handle)
    entries = journal.of(wid)
    check_once_in_order(entries, wid)
    assert audited(entries) == [
        ("incident.state", None, "triggered"),
        ("incident.state", None, "notified"),
        ("incident.acknowledged", "alice", None),
        ("incident.resolved", "bob", None),
    ]
    ack = next(e for e in entries if e.action == "incident.acknowledged")
    assert ack.actor is not None and ack.actor.via == "cli" and ack.detail["service"] == service
    notified = next(e for e in entries if e.detail.get("event") == "notified")
    assert notified.detail["level"] == 1 and notified.detail["severity"] == "critical"
    delivered = [e.detail for e in entries if e.action == "notification.delivered"]
    assert {"receiver": "oncall", "channel": "oncall", "outcome": "delivered"}.items() <= delivered[0].items()
    assert any(d["step"].startswith("resolved-") for d in delivered), "the resolve notice is journaled too"


async def test_journal_down_delays_records_but_the_page_goes_out(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    cfg, journal = write_config(config_dict()), FakeJournal(down=3)
    ctx = ops(time_env.client, task_queue, cfg)
    async with worker(time_env, task_queue, tmp_path, cfg, journal):
        [wid] = await dispatch_alerts(ctx, [alert(service=f"svc-{task_queue}")], source="test")
        await time_env.sleep(timedelta(seconds=31))
        await until(lambda: any(r["key"].startswith(f"{wid}/rung-0/") for r in outbox(tmp_path)))
        await incidents.resolve(ctx, person("bob"), wid, "fixed")
        handle = time_env.client.get_workflow_handle(wid)
        # The journal recovers (retries back off in real time); the run waits for it to end.
        await until(lambda: any(e.action == "incident.resolved" for e in journal.of(wid)), timeout=60)
        await handle.result()
    assert journal.calls > len(journal.batches) >= 1
    entries = journal.of(wid)
    check_once_in_order(entries, wid)
    assert [a for a, _, _ in audited(entries)] == ["incident.state", "incident.state", "incident.resolved"]


class HeldSend:
    """The send activity: a local try fails at once; each durable send waits until the test lets it go."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.started = 0

    @activity.defn(name="send_notification")
    async def send(self, request: SendRequest) -> DeliveryRecord:
        if activity.info().is_local:  # incident-local-page: the page goes on as a durable send
            raise ApplicationError("slack answered 500", type="SlackTransient")
        self.started += 1
        await self.go.wait()
        return DeliveryRecord(channel=request.channel, receiver=request.receiver, outcome="delivered")


def scheduled(events: Sequence[HistoryEvent], name: str) -> list[int]:
    """Event ids of the activity tasks of type ``name`` scheduled in the history."""
    return [
        e.event_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == name
    ]


async def test_a_first_page_goes_out_alone_and_its_records_go_in_one_send(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    """``incident-first-page-alone``: the journal's first batch waits for the first page."""
    cfg, journal = write_config(config_dict(group_wait="0s")), FakeJournal()
    ctx = ops(time_env.client, task_queue, cfg)
    async with worker(time_env, task_queue, tmp_path, cfg, journal):
        [wid] = await dispatch_alerts(ctx, [alert(service=f"svc-{task_queue}")], source="test")
        await until(lambda: any(e.action == "notification.delivered" for e in journal.of(wid)))
        handle = time_env.client.get_workflow_handle(wid)
        events = (await handle.fetch_history()).events
    # The page went out as a local activity (incident-local-page; the console is unpaced): its marker is
    # recorded when it is done, and the journal send (local too: incident-local-journal) comes after it,
    # not beside the page.
    [page] = [e.event_id for e in events if local_activity_type(e) == "send_notification"]
    [send] = [e.event_id for e in events if local_activity_type(e) == ACTIVITY_APPEND]  # one send, not two
    assert send > page, "the journal send is made after the page is done, not beside it"
    assert scheduled(events, ACTIVITY_APPEND) == [], "appended from the workflow task: no activity task"
    [batch] = [b for b in journal.batches if b.entries[0].key.startswith(wid + "/")]
    assert [(e.action, e.detail.get("event")) for e in batch.entries] == [
        ("incident.state", "triggered"),
        ("notification.delivered", None),
        ("incident.state", "notified"),
    ]
    check_once_in_order(batch.entries, wid)
    await replay(handle)


async def test_a_persons_action_is_journaled_while_the_first_page_is_in_flight(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    cfg, journal, send = write_config(config_dict(group_wait="0s")), FakeJournal(), HeldSend()
    ctx = ops(time_env.client, task_queue, cfg)
    async with worker(time_env, task_queue, tmp_path, cfg, journal, send.send):
        [wid] = await dispatch_alerts(ctx, [alert(service=f"svc-{task_queue}")], source="test")
        await until(lambda: send.started == 1)
        await asyncio.sleep(0.5)
        assert journal.of(wid) == [], "held while the first page is in flight"
        await incidents.acknowledge(ctx, person("alice"), wid, "on it")
        await until(lambda: any(e.action == "incident.acknowledged" for e in journal.of(wid)))
        assert send.started == 1 and not any(e.action == "notification.delivered" for e in journal.of(wid))
        send.go.set()
        await until(lambda: any(e.action == "notification.delivered" for e in journal.of(wid)))
        handle = time_env.client.get_workflow_handle(wid)
        await replay(handle)
    entries = journal.of(wid)
    check_once_in_order(entries, wid)
    assert audited(entries)[:2] == [("incident.state", None, "triggered"), ("incident.acknowledged", "alice", None)]


# ------------------------------------------------------------------ deployment


@pytest.fixture
def hooks() -> Any:
    with FakeHooks() as fake:
        yield fake


async def test_deployment_journals_request_gates_approval_stages_and_outcome(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks
) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(deployment_config(hooks.url, bake="5m"))
    journal, context, service = FakeJournal(), FakeContext(), f"svc-{task_queue}"
    ctx = ops(time_env.client, task_queue, cfg)
    async with worker(time_env, task_queue, tmp_path, cfg, journal, context.deployment_context):
        request = DeployInput(service=service, env="prod", version="v1.2.3", by="dave", commit="abc1234")
        handle, _ = await start_deployment(ctx, person("dave"), request)
        await until(lambda: any(e.detail.get("stage") == "pending_approval" for e in journal.of(handle.id)))
    async with worker(time_env, task_queue, tmp_path, cfg, journal, context.deployment_context):
        await approve(ctx, person("alice"), handle.id, "lgtm")
        result = await handle.result()
        await replay(handle)
    assert result.outcome == "deployed"
    entries = journal.of(handle.id)
    check_once_in_order(entries, handle.id)
    kinds = [(a, who) for a, who, _ in audited(entries)]
    assert kinds[0] == ("deployment.requested", "dave")
    assert ("deployment.approved", "alice") in kinds and kinds[-1] == ("deployment.finished", None)
    assert [e.detail["outcome"] for e in entries if e.action == "deployment.finished"] == ["deployed"]
    first = entries[0].detail
    assert (first["service"], first["env"], first["version"], first["commit"]) == (service, "prod", "v1.2.3", "abc1234")
    gate_results = {e.detail["gate"]: e.detail.get("result") for e in entries if e.action == "deployment.gate"}
    assert gate_results["freeze"] == gate_results["incidents"] == "pass" and "risk" in gate_results
    stages = [e.detail["stage"] for e in entries if e.action == "deployment.stage" and "stage" in e.detail]
    assert stages[:2] == ["checking", "pending_approval"] and "canary" in stages and "verifying" in stages
    approved = next(i for i, e in enumerate(entries) if e.action == "deployment.approved")
    canary = next(i for i, e in enumerate(entries) if e.detail.get("stage") == "canary")
    assert approved < canary


async def test_deployment_abort_journals_the_control_and_the_rollback(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks
) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(deployment_config(hooks.url, bake="10m", required_approvals=0))
    journal, context, service = FakeJournal(), FakeContext(), f"svc-{task_queue}"
    async with worker(time_env, task_queue, tmp_path, cfg, journal, context.deployment_context):
        request = DeployInput(service=service, env="prod", version="v2", by="dave")
        handle, _ = await start_deployment(ops(time_env.client, task_queue, cfg), person("dave"), request)
        await until(lambda: any(e.detail.get("stage") == "canary" for e in journal.of(handle.id)))
        carol = person("carol", via="slack")
        await handle.signal(DeploymentWorkflow.abort, ControlRequest(by="carol", reason="latency up", actor=carol))
        result = await handle.result()
    assert result.outcome == "rolled_back"
    entries = journal.of(handle.id)
    check_once_in_order(entries, handle.id)
    kinds = [(a, who) for a, who, _ in audited(entries)]
    assert ("deployment.control", "carol") in kinds
    finished = [e.detail for e in entries if e.action == "rollback.finished"]
    assert finished and finished[0]["detail"] == "rollback hook succeeded"
    assert [e.detail["outcome"] for e in entries if e.action == "deployment.finished"] == ["rolled_back"]


# ------------------------------------------------------------------ silences, pipeline, notify


async def test_silences_journal_added_and_expired_with_the_actor(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    cfg, journal = write_config(config_dict()), FakeJournal()
    ctx = ops(time_env.client, task_queue, cfg)
    matchers = [f'service="svc-{task_queue}"']
    async with worker(time_env, task_queue, tmp_path, cfg, journal):
        early = await add_silence(ctx, person("alice"), matchers, "2h", "maintenance")
        timed = await add_silence(ctx, person("bob"), matchers, "10m", "deploy window")
        await expire_silence(ctx, person("carol"), early.id)
        await time_env.sleep(timedelta(minutes=11))
        wid = "silences/default"
        await until(lambda: any(e.action == "silence.expired" and e.actor is None for e in journal.of(wid)))
    entries = journal.of(wid)
    mine = [e for e in entries if e.detail.get("id") in (early.id, timed.id)]
    assert [(e.action, e.actor.name if e.actor else None, e.detail["id"]) for e in mine] == [
        ("silence.added", "alice", early.id),
        ("silence.added", "bob", timed.id),
        ("silence.expired", "carol", early.id),
        ("silence.expired", None, timed.id),
    ]
    assert mine[0].detail["matchers"] == matchers and mine[2].detail["early"] is True
    assert mine[3].detail["early"] is False
    keys = [e.key for e in entries]
    assert len(keys) == len(set(keys))


async def test_pipeline_journals_build_events_with_the_sender(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    cfg, journal = write_config(config_dict()), FakeJournal()
    ctx = ops(time_env.client, task_queue, cfg)
    repo = f"acme/{task_queue}"
    async with worker(time_env, task_queue, tmp_path, cfg, journal):
        for status, commit in [("failure", "2222222"), ("success", "3333333")]:
            event = BuildEvent(repo=repo, branch="main", commit=commit, status=status)  # type: ignore[arg-type]
            wid = await send_build_event(ctx, person("ci-bot", via="api"), event)
        await until(lambda: sum(e.action == "build.reported" for e in journal.of(wid)) == 2)
        await until(lambda: sum(e.action == "notification.delivered" for e in journal.of(wid)) == 2)
    entries = journal.of(wid)
    check_once_in_order(entries, wid)
    built = [e for e in entries if e.action == "build.reported"]
    assert [(e.detail["commit"], e.detail["status"], e.actor.name if e.actor else None) for e in built] == [
        ("2222222", "failure", "ci-bot"),
        ("3333333", "success", "ci-bot"),
    ]
    assert built[0].detail["alertname"] and built[0].actor is not None and built[0].actor.via == "api"


async def test_notification_journal_has_outcomes_never_the_text(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(
        {
            "channels": {"good": {"type": "console"}, "bad": {"type": "console"}},
            "receivers": [{"name": "team", "channels": ["good", "bad"]}],
            "route": {"receiver": "team"},
        }
    )
    journal = FakeJournal()
    async with worker(time_env, task_queue, tmp_path, cfg, journal, FailingSend().send):
        message = Message(title=f"db creds {SECRET}", text=f"connect with {SECRET}", severity="warning")
        handle = await time_env.client.start_workflow(
            NotifyWorkflow.run,
            NotifyInput(receiver="team", message=message, actor=person("alice")),
            id=f"notify/{uuid.uuid4()}",
            task_queue=task_queue,
        )
        result = await handle.result()
    assert {d.channel: d.outcome for d in result.deliveries} == {"good": "delivered", "bad": "failed"}
    entries = journal.of(handle.id)
    check_once_in_order(entries, handle.id)
    assert entries[0].action == "notification.requested" and entries[0].actor is not None
    assert entries[0].actor.name == "alice" and entries[0].detail["receiver"] == "team"
    outcomes = {e.detail["channel"]: (e.action, e.detail["outcome"]) for e in entries[1:]}
    assert outcomes == {
        "good": ("notification.delivered", "delivered"),
        "bad": ("notification.dead_lettered", "failed"),
    }
    assert next(e for e in entries if e.detail.get("channel") == "bad").detail["error"]
    dumped = json.dumps([e.model_dump(mode="json") for e in entries])
    assert "hunter2" not in dumped and "connect with" not in dumped and "db creds" not in dumped


async def test_incident_keys_go_on_across_continue_as_new(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    cfg, journal = write_config(config_dict()), FakeJournal()
    ctx = ops(time_env.client, task_queue, cfg)
    [(wid, group)] = group_alerts(ctx.config, [alert(service=f"svc-{task_queue}")]).items()
    async with worker(time_env, task_queue, tmp_path, cfg, journal):
        first = await time_env.client.start_workflow(
            IncidentWorkflow.run,
            IncidentInput(id=wid, route_path=group.route_path, group_labels=group.group_labels, max_history=40),
            id=wid,
            task_queue=task_queue,
            start_signal="add_alerts",
            start_signal_args=[AlertBatch(alerts=group.alerts, source="test")],
        )
        await time_env.sleep(timedelta(minutes=16))  # four rungs: the history outgrows max_history
        await until(lambda: sum(e.detail.get("event") == "notified" for e in journal.of(wid)) == 4)
        await incidents.resolve(ctx, person("bob"), wid, "fixed")
        handle = time_env.client.get_workflow_handle(wid)
        await handle.result()
        last = (await handle.describe()).run_id
    assert last != first.result_run_id, "the incident continued as new"
    entries = journal.of(wid)
    check_once_in_order(entries, wid)
    assert {e.key.rsplit("/", 2)[1] for e in entries} == {first.result_run_id}
    assert [(a, who) for a, who, _ in audited(entries)][-1] == ("incident.resolved", "bob")


class BrokenJournal(FakeJournal):
    """A journal that refuses every batch for good: the flow logs it and goes on."""

    @activity.defn(name=ACTIVITY_APPEND)
    async def append(self, batch: JournalBatch) -> int:
        self.calls += 1
        raise ApplicationError("journal refused the batch", type="JournalBroken", non_retryable=True)


async def test_a_batch_that_gives_up_never_fails_the_flow(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    channels = {"channels": {"c": {"type": "console"}}, "receivers": [{"name": "r", "channels": ["c"]}]}
    cfg = write_config({**channels, "route": {"receiver": "r"}})
    journal = BrokenJournal()
    async with worker(time_env, task_queue, tmp_path, cfg, journal):
        handle = await time_env.client.start_workflow(
            NotifyWorkflow.run,
            NotifyInput(receiver="r", message=Message(title="hello"), actor=person("alice")),
            id=f"notify/{uuid.uuid4()}",
            task_queue=task_queue,
        )
        result = await handle.result()
    assert [d.outcome for d in result.deliveries] == ["delivered"]
    assert journal.calls >= 1 and journal.batches == []


async def test_a_real_worker_seals_an_incident_in_its_journal(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    """End to end with the worker's own journal (SQLite under its home): one valid chain, filterable."""
    cfg, service = write_config(config_dict()), f"svc-{task_queue}"
    ctx = ops(time_env.client, task_queue, cfg)
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        [wid] = await dispatch_alerts(ctx, [alert(service=service)], source="test")
        await time_env.sleep(timedelta(seconds=31))
        await until(lambda: any(r["key"].startswith(f"{wid}/rung-0/") for r in outbox(tmp_path)))
        await incidents.acknowledge(ctx, person("alice"), wid, "on it")
        await incidents.resolve(ctx, person("bob"), wid, "fixed")
        await time_env.client.get_workflow_handle(wid).result()
    store = await open_journal(None, tmp_path)
    try:
        assert (await store.verify()).ok
        mine = [r async for r in store.records(service=service)]
        by_alice = [r.action async for r in store.records(actor="alice")]
    finally:
        await store.close()
    assert [r.action for r in mine if not r.action.startswith("notification.")] == [
        "incident.state",
        "incident.state",
        "incident.acknowledged",
        "incident.resolved",
    ]
    assert by_alice == ["incident.acknowledged"]
    assert all(r.object == wid for r in mine)
