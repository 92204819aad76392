"""Integration (issue 10, item 3): with Slack unreachable, a pipeline still processes its next event.

The real CLI and a real dev server: ``tocsin build --status failure`` then
``--status success`` while the receiver's Slack refuses connections. The
success is classified at once ("Build fixed" on the console, ``tocsin status``
says ``passing``) while the failure's Slack send is still retrying; after the
receiver's ``give_up_after`` the dead letter is in the ``state`` query and
the console (the default dead-letter receiver) is told.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from operations.status import collect_status
from tests.helpers import address_of, cli, ops, outbox, tocsin_worker
from workflows.pipeline.models import PipelineState
from workflows.pipeline.workflow import PipelineWorkflow


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/"


async def until(check: Any, timeout: float) -> Any:
    """Poll an async ``check`` until it returns something truthy (wall-clock bound)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_dead_slack_does_not_stall_the_next_build_and_is_dead_lettered(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    repo = f"acme/dead-{uuid.uuid4().hex[:6]}"
    config = write_config(
        {
            "channels": {
                "ci-builds": {"type": "slack", "token": "xoxb-dead", "channel": "#ci", "api_url": refused_url()},
                "console": {"type": "console"},
            },
            "receivers": [{"name": "builds", "channels": ["ci-builds", "console"], "give_up_after": "20s"}],
            "route": {"receiver": "builds"},
        }
    )
    wid = f"pipeline/{repo}/main"

    def build(status: str, commit: str) -> None:
        done = cli(
            "build",
            *("--repo", repo, "--branch", "main", "--commit", commit, "--status", status),
            address=address_of(dev_env.client),
            env={"TOCSIN_TASK_QUEUE": task_queue},
        )
        assert done.returncode == 0, done.stderr

    async with tocsin_worker(dev_env.client, task_queue, tmp_path, config):
        await asyncio.to_thread(build, "failure", "1111111")
        await asyncio.to_thread(build, "success", "2222222")
        handle = dev_env.client.get_workflow_handle(wid)

        async def fixed() -> PipelineState | None:
            state = await handle.query(PipelineWorkflow.state)
            titles = [r["message"]["title"] for r in outbox(tmp_path)]
            return state if state.seq == 2 and any(t.startswith("Build fixed") for t in titles) else None

        state = await until(fixed, 12)
        assert state is not None, f"the success was not processed while Slack was down: {outbox(tmp_path)}"
        assert [n.alertname for n in state.notices] == ["BuildFailed", "BuildFixed"]
        assert state.notices[0].delivering, "the failure's Slack send is still retrying"

        async def passing() -> bool:
            report = await collect_status(ops(dev_env.client, task_queue), repo)
            return [p["status"] for p in report["pipelines"]] == ["passing"]

        assert await until(passing, 10), "tocsin status should say passing"

        async def dead_lettered() -> PipelineState | None:
            state = await handle.query(PipelineWorkflow.state)
            return state if state.dead_letter_count >= 2 else None

        state = await until(dead_lettered, 60)
        assert state is not None, "the Slack sends never gave up"
    failed = next(d for d in state.dead_letters if d.step == "event-1/builds")
    assert (failed.receiver, failed.channel) == ("builds", "ci-builds")
    assert failed.error.startswith("gave up after 20s: ")
    told = [r for r in outbox(tmp_path) if r["key"] == f"{wid}/event-1/builds/dead-letter"]
    assert len(told) == 1 and told[0]["message"]["title"] == f"Not delivered: Build failed: {repo}@main (ci)"
    console = {r["key"] for r in outbox(tmp_path)}
    assert {f"{wid}/event-1/builds/console", f"{wid}/event-2/builds/console"} <= console
