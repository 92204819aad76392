"""Integration (issue 10, item 4): paced channels against a real dev server.

* A paced channel's posts go on its own task queue (``<task queue>/send/<channel>``), which every
  worker polls with ``max_task_queue_activities_per_second`` set to the channel's rate, each with
  its Temporal priority (critical pages 1, pages 2, updates 3): Temporal paces them across workers.
* Three workers together still send at the channel's rate, not three times it.
* A deferral by the worker's own bucket (channels without a send queue) is not a failure: no
  traceback in the log, and the next attempt does not look for a duplicate (no Slack history
  search), which only a real failure calls for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from operations.config import ConfigStore
from tests.fakes import FakeSlack
from tests.helpers import address_of, settings_for, tocsin_worker
from workers.main import running_worker, send_queue_name
from workflows.models import Message
from workflows.notify.models import NotifyInput, NotifyResult
from workflows.notify.workflow import NotifyWorkflow

CHANNEL = "#pacing"


def slack_config(slack: FakeSlack, **channel: Any) -> dict[str, Any]:
    settings = {"type": "slack", "token": slack.token, "channel": CHANNEL, "api_url": slack.url, **channel}
    return {
        "channels": {"slack": settings},
        "receivers": [{"name": "team", "channels": ["slack"]}],
        "route": {"receiver": "team"},
    }


@pytest.fixture
def slack() -> Any:
    with FakeSlack() as fake:
        yield fake


@contextlib.asynccontextmanager
async def workers(client: Client, task_queue: str, home: Path, config: Path, count: int) -> AsyncIterator[None]:
    """``count`` production workers (``running_worker``: each with its send queue workers), each its own client
    (the SDK runs one worker per task queue and client, as it would per process)."""
    async with contextlib.AsyncExitStack() as stack:
        for i in range(count):
            own = await Client.connect(address_of(client), data_converter=pydantic_data_converter)
            settings = settings_for(task_queue, home / f"w{i}")
            await stack.enter_async_context(running_worker(own, settings, ConfigStore(config)))
        yield


async def notify(client: Client, task_queue: str, title: str, severity: str = "warning") -> WorkflowHandle[Any, Any]:
    message = Message(title=title, severity=severity)  # type: ignore[arg-type]
    return await client.start_workflow(
        NotifyWorkflow.run,
        NotifyInput(receiver="team", message=message),
        id=f"notify/{uuid.uuid4()}",
        task_queue=task_queue,
    )


def paced_count(channel: str) -> float:
    return REGISTRY.get_sample_value("tocsin_notifications_total", {"channel": channel, "outcome": "paced"}) or 0.0


async def scheduled_sends(handle: WorkflowHandle[Any, Any]) -> list[tuple[str, int]]:
    """(task queue, priority key) of each send the workflow scheduled."""
    sends = []
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == "send_notification":
                sends.append((attrs.task_queue.name, attrs.priority.priority_key))
    return sends


async def test_paced_posts_go_on_the_channels_queue_with_their_priority(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, slack: FakeSlack
) -> None:  # type: ignore[no-untyped-def]
    config = write_config(slack_config(slack))
    async with workers(dev_env.client, task_queue, tmp_path, config, 1):
        critical = await notify(dev_env.client, task_queue, "db down", "critical")
        warning = await notify(dev_env.client, task_queue, "disk filling")
        results: list[NotifyResult] = [await critical.result(), await warning.result()]
    assert [[d.outcome for d in r.deliveries] for r in results] == [["delivered"], ["delivered"]]
    queue = send_queue_name(task_queue, "slack")
    assert await scheduled_sends(critical) == [(queue, 1)]
    assert await scheduled_sends(warning) == [(queue, 2)]
    assert len(slack.messages) == 2


async def test_three_workers_together_send_at_the_channels_rate(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, slack: FakeSlack
) -> None:  # type: ignore[no-untyped-def]
    rate, count = 2.0, 16
    config = write_config(slack_config(slack, rate_per_second=rate, burst=1))
    async with workers(dev_env.client, task_queue, tmp_path, config, 3):
        handles = await asyncio.gather(*(notify(dev_env.client, task_queue, f"m{i}") for i in range(count)))
        await asyncio.gather(*(h.result() for h in handles))
    received = sorted(float(m["received"]) for m in slack.messages)
    assert len(received) == count
    # Temporal hands the queue's tasks out at the rate (its partitions, 4 by default, may let a few
    # go at once); with three workers each pacing on its own, the sixteen would be out in under three seconds.
    span = received[-1] - received[0]
    assert span >= (count - 4) / rate, f"{count} messages in {span:.2f}s at {rate:g}/s across 3 workers"


async def test_a_paced_deferral_is_not_a_failure(
    dev_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    write_config,  # type: ignore[no-untyped-def]
    slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    config = write_config(slack_config(slack, rate_per_second=4, burst=1))
    paced_before = paced_count("slack")
    async with tocsin_worker(dev_env.client, task_queue, tmp_path, config):  # no send queue: the worker paces
        handles = await asyncio.gather(*(notify(dev_env.client, task_queue, f"burst {i}") for i in range(8)))
        results: list[NotifyResult] = await asyncio.gather(*(h.result() for h in handles))
    assert paced_count("slack") - paced_before >= 4, "the burst was paced by the worker's bucket"
    assert all([d.outcome for d in r.deliveries] == ["delivered"] for r in results)
    assert sorted(m["text"] for m in slack.messages) == sorted(f"burst {i}" for i in range(8))
    assert slack.calls("conversations.history") == [], "a deferral is no reason to look for a duplicate"
    tracebacks = [r for r in caplog.records if r.exc_info or "Completing activity as failed" in r.getMessage()]
    assert tracebacks == [], [r.getMessage() for r in tracebacks]
