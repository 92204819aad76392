"""The deployment's status message always carries the buttons that apply (``PATCH_CHAT_CONTROLS``).

After the approval the request's Approve/Reject give way to who approved and when; while the
canary runs it offers Pause (Resume once paused), Promote and Abort; once it rolls back, none.
Checked on the time-skipping server through the console channel, which records every edit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from operations.deployments import approve, start_deployment
from tests.fakes.hooks import FakeHooks
from tests.helpers import ops, outbox, person
from tests.workflows.test_deployment_workflow import ANYONE, env_config, replay, request, until_stage, worker
from workflows.deployment import ControlRequest
from workflows.deployment.workflow import DeploymentWorkflow


@pytest.fixture
def time_env(fresh_time_env: WorkflowEnvironment) -> WorkflowEnvironment:
    """A rollback raises an incident that outlives the test: a time-skipping server of its own."""
    return fresh_time_env


@pytest.fixture
def hooks() -> Iterator[FakeHooks]:
    with FakeHooks() as fake:
        yield fake


def statuses(home: Path, service: str) -> list[dict[str, Any]]:
    """The status message as posted and each edit of it, in order."""
    records = [r["message"] for r in outbox(home) if r["channel"] == "deploy-chat"]
    return [m for m in records if m["title"].startswith(f"Deploy {service} ")]


def buttons(message: dict[str, Any]) -> list[str]:
    return [a["action_id"] for a in message.get("actions") or []]


async def until_status(home: Path, service: str, after: int, pick: Callable[[dict[str, Any]], bool]) -> int:
    """Index of the first status edit past ``after`` that ``pick`` accepts (waits up to 15 s)."""
    for _ in range(300):
        found = [i for i, m in enumerate(statuses(home, service)) if i > after and pick(m)]
        if found:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError([(m["title"], buttons(m)) for m in statuses(home, service)])


async def test_status_message_buttons_follow_approval_pause_resume_and_abort(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks
) -> None:
    service = f"svc-{task_queue}"
    cfg = env_config(hooks, canary={"steps": [10, 100], "bake": "1h"})
    client = time_env.client
    async with worker(time_env, task_queue, tmp_path, write_config(cfg)):
        handle, _ = await start_deployment(ops(client, task_queue), ANYONE, request(service))
        await until_stage(handle, "pending_approval")
        asked = await until_status(tmp_path, service, -1, lambda m: "approval needed" in m["title"])
        assert buttons(statuses(tmp_path, service)[asked]) == ["tocsin_approve", "tocsin_reject"]
        await approve(ops(client, task_queue), person("alice"), handle.id, "ship it")
        decided = await until_status(tmp_path, service, asked, lambda m: "approval needed" not in m["title"])
        after = statuses(tmp_path, service)[decided]
        assert after["title"].endswith(": approved")  # edited at once, not at the first canary step
        assert "Approved by alice at " in after["text"] and " UTC: ship it" in after["text"]
        assert buttons(after) == []
        running = await until_status(tmp_path, service, asked, lambda m: "canary at 10%" in m["title"])
        assert buttons(statuses(tmp_path, service)[running]) == ["tocsin_pause", "tocsin_promote", "tocsin_abort"]

        await handle.signal(DeploymentWorkflow.pause, ControlRequest(by="carol"))
        paused = await until_status(tmp_path, service, running, lambda m: "paused" in m["title"])
        assert buttons(statuses(tmp_path, service)[paused]) == ["tocsin_resume", "tocsin_promote", "tocsin_abort"]
        await handle.signal(DeploymentWorkflow.resume, ControlRequest(by="carol"))
        resumed = await until_status(tmp_path, service, paused, lambda m: "tocsin_pause" in buttons(m))
        assert "paused" not in statuses(tmp_path, service)[resumed]["title"]

        await handle.signal(DeploymentWorkflow.abort, ControlRequest(by="carol", reason="latency up"))
        result = await handle.result()
        await replay(handle)
    assert result.outcome == "rolled_back"
    final = statuses(tmp_path, service)
    assert "rolled back" in final[-1]["title"] and buttons(final[-1]) == []
    assert not any(buttons(m) for m in final[resumed + 1 :])  # from the rollback on, no buttons
