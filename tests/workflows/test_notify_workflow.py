"""NotifyWorkflow on the time-skipping server: delivery, retries, failover timing."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from tests.helpers import outbox, tocsin_worker
from workflows.models import DeliveryRecord, Message, SendRequest
from workflows.notify.models import NotifyInput, NotifyResult
from workflows.notify.workflow import NotifyWorkflow

CONFIG = {
    "channels": {"primary": {"type": "console"}, "backup": {"type": "console"}, "other": {"type": "console"}},
    "receivers": [
        {"name": "team", "channels": ["primary", "other"], "backup": ["backup"]},
        {"name": "solo", "channels": ["primary"]},
    ],
    "route": {"receiver": "team"},
}


class FakeSend:
    """A send activity double: per-channel behaviour, records attempts and schedule times."""

    def __init__(self, behaviour: dict[str, str]):
        self.behaviour = behaviour
        self.calls: list[tuple[str, int, datetime]] = []

    @activity.defn(name="send_notification")
    async def send(self, request: SendRequest) -> DeliveryRecord:
        info = activity.info()
        self.calls.append((request.channel, info.attempt, info.current_attempt_scheduled_time))
        mode = self.behaviour.get(request.channel, "ok")
        if mode == "down":
            raise ApplicationError("503 from API", type="ChannelRetryable")
        if mode == "dead":
            raise ApplicationError("invalid_auth", type="BadCredentials", non_retryable=True)
        if mode.startswith("flaky") and info.attempt <= int(mode[5:]):
            raise ApplicationError("500 from API", type="ChannelRetryable")
        return DeliveryRecord(
            channel=request.channel,
            receiver=request.receiver,
            outcome="delivered",
            attempts=info.attempt,
            message_id=request.idempotency_key,
        )


async def run_notify(env: WorkflowEnvironment, task_queue: str, receiver: str) -> tuple[NotifyResult, datetime]:
    handle = await env.client.start_workflow(
        NotifyWorkflow.run,
        NotifyInput(receiver=receiver, message=Message(title="disk full", severity="warning")),
        id=f"notify/{uuid.uuid4()}",
        task_queue=task_queue,
    )
    result = await handle.result()
    started = (await handle.describe()).start_time
    return result, started


async def test_console_delivery_records_and_outbox(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    async with tocsin_worker(time_env.client, task_queue, tmp_path, write_config(CONFIG)):
        result, _ = await run_notify(time_env, task_queue, "team")
    assert [(d.channel, d.outcome, d.backup) for d in result.deliveries] == [
        ("primary", "delivered", False),
        ("other", "delivered", False),
    ]
    box = sorted(outbox(tmp_path), key=lambda r: r["channel"])  # channels are sent concurrently
    assert [r["channel"] for r in box] == ["other", "primary"]
    assert box[1]["message"]["title"] == "disk full"
    assert box[1]["message"]["source"].startswith("notify/")
    assert box[1]["key"].endswith("/notify/primary")


async def test_transient_failures_retry_to_one_delivery(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    fake = FakeSend({"primary": "flaky2"})
    async with tocsin_worker(time_env.client, task_queue, tmp_path, write_config(CONFIG), replace_send=fake.send):
        result, _ = await run_notify(time_env, task_queue, "solo")
    assert [(d.channel, d.outcome, d.attempts) for d in result.deliveries] == [("primary", "delivered", 3)]
    assert [c[:2] for c in fake.calls] == [("primary", 1), ("primary", 2), ("primary", 3)]


async def test_dead_primary_fails_over_within_30s(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    fake = FakeSend({"primary": "down"})
    async with tocsin_worker(time_env.client, task_queue, tmp_path, write_config(CONFIG), replace_send=fake.send):
        result, started = await run_notify(time_env, task_queue, "team")
    by_channel = {d.channel: d for d in result.deliveries}
    assert by_channel["backup"].outcome == "delivered" and by_channel["backup"].backup
    assert by_channel["other"].outcome == "delivered"
    assert by_channel["primary"].outcome == "failed"
    backup_at = next(t for ch, _, t in fake.calls if ch == "backup")
    assert timedelta(seconds=20) <= backup_at - started < timedelta(seconds=30)
    assert sum(1 for ch, _, _ in fake.calls if ch == "backup") == 1


async def test_permanent_failure_fails_over_at_once(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    fake = FakeSend({"primary": "dead"})
    async with tocsin_worker(time_env.client, task_queue, tmp_path, write_config(CONFIG), replace_send=fake.send):
        result, started = await run_notify(time_env, task_queue, "team")
    by_channel = {d.channel: d for d in result.deliveries}
    assert by_channel["primary"].error == "invalid_auth"
    assert [c[:2] for c in fake.calls if c[0] == "primary"] == [("primary", 1)], "non-retryable: one attempt"
    backup_at = next(t for ch, _, t in fake.calls if ch == "backup")
    assert backup_at - started < timedelta(seconds=5)


async def test_unknown_receiver_is_recorded_not_crashed(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    async with tocsin_worker(time_env.client, task_queue, tmp_path, write_config(CONFIG)):
        result, _ = await run_notify(time_env, task_queue, "nobody")
    assert [(d.outcome, d.error) for d in result.deliveries] == [("failed", "unknown receiver 'nobody'")]


async def test_gives_up_after_give_up_after_and_returns_the_dead_letters(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    fake = FakeSend({"primary": "down", "backup": "down"})
    async with tocsin_worker(time_env.client, task_queue, tmp_path, write_config(CONFIG), replace_send=fake.send):
        handle = await time_env.client.start_workflow(
            NotifyWorkflow.run,
            NotifyInput(receiver="team", message=Message(title="disk full", severity="warning")),
            id=f"notify/{uuid.uuid4()}",
            task_queue=task_queue,
        )
        result = await handle.result()
        desc = await handle.describe()
    assert desc.close_time is not None
    assert desc.close_time - desc.start_time < timedelta(hours=1, minutes=5), "bounded by give_up_after (1h)"
    assert all(at - desc.start_time < timedelta(hours=1) for _, _, at in fake.calls), "no send after giving up"
    by_channel = {d.channel: d for d in result.deliveries}
    assert by_channel["other"].outcome == "delivered"
    assert by_channel["primary"].outcome == by_channel["backup"].outcome == "failed"
    assert by_channel["primary"].error == "gave up after 1h: 503 from API"
    assert sorted((d.receiver, d.channel) for d in result.dead_letters) == [("team", "backup"), ("team", "primary")]
    told = [r for r in outbox(tmp_path) if r["message"]["title"] == "Not delivered: disk full"]
    assert len(told) == 1 and told[0]["key"] == f"{handle.id}/notify/dead-letter"


async def test_a_backup_that_delivers_leaves_no_dead_letter(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    fake = FakeSend({"primary": "dead"})
    async with tocsin_worker(time_env.client, task_queue, tmp_path, write_config(CONFIG), replace_send=fake.send):
        result, _ = await run_notify(time_env, task_queue, "team")
    assert {d.channel: d.outcome for d in result.deliveries}["primary"] == "failed"
    assert result.dead_letters == []
    assert outbox(tmp_path) == []
