"""Integration: `tocsin build` (the real CLI) → real Temporal dev server → worker → Slack (local fake) + console."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.fakes import FakeSlack
from tests.helpers import address_of, cli, outbox, tocsin_worker
from workflows.notify.workflow import NotifyWorkflow
from workflows.pipeline.workflow import PipelineWorkflow


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token="xoxb-integration-token") as fake:
        yield fake


@pytest.fixture
def config(write_config, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> Path:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SLACK_BOT_TOKEN", slack.token)
    return write_config(
        {
            "channels": {
                "ci-builds": {
                    "type": "slack",
                    "token": "${SLACK_BOT_TOKEN}",
                    "channel": "#ci-builds",
                    "api_url": slack.url,
                },
                "console": {"type": "console"},
            },
            "receivers": [{"name": "builds", "channels": ["ci-builds", "console"]}],
            "route": {"receiver": "builds", "group_by": ["alertname", "repo"]},
        }
    )


def repo() -> str:
    return f"acme/svc-{uuid.uuid4().hex[:6]}"


async def test_failed_build_reaches_slack_as_block_kit_and_console(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, slack: FakeSlack, config: Path
) -> None:
    name = repo()
    async with tocsin_worker(dev_env.client, task_queue, tmp_path, config):
        done = await asyncio.to_thread(
            cli,
            "build",
            "--repo",
            name,
            "--branch",
            "main",
            "--commit",
            "9f8e7d6c5b4a39281706",
            "--status",
            "failure",
            "--author",
            "alice",
            "--duration",
            "754",
            "--workflow",
            "tests",
            "--url",
            "https://ci.example.com/runs/42",
            address=address_of(dev_env.client),
            env={"TOCSIN_TASK_QUEUE": task_queue},
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"pipeline/{name}/main"
        [msg] = await slack.await_messages(1, timeout=20)
    post = next(r for r in slack.requests if r.method == "chat.postMessage")
    assert post.headers["authorization"] == "Bearer xoxb-integration-token"
    assert msg["channel_name"] == "#ci-builds"
    blocks = msg["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "emoji": True, "text": f"Build failed: {name}@main (tests)"},
    }
    field_texts = [f["text"] for b in blocks if b["type"] == "section" for f in b.get("fields", [])]
    for expected in (
        f"*Repository*\n{name}",
        "*Branch*\nmain",
        "*Commit*\n9f8e7d6",
        "*Author*\nalice",
        "*Duration*\n12m 34s",
        "*Status*\nfailure",
    ):
        assert expected in field_texts
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert actions["elements"][0]["url"] == "https://ci.example.com/runs/42"
    assert actions["elements"][0]["action_id"] == "tocsin_link_0"
    assert msg["metadata"]["event_payload"]["key"] == f"pipeline/{name}/main/event-1/builds/ci-builds"
    [console] = outbox(tmp_path)
    assert console["message"]["title"] == f"Build failed: {name}@main (tests)"


async def test_two_server_errors_produce_exactly_one_message(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, slack: FakeSlack, config: Path
) -> None:
    name = repo()
    slack.fail_next(2, status=500, method="chat.postMessage")
    async with tocsin_worker(dev_env.client, task_queue, tmp_path, config):
        done = await asyncio.to_thread(
            cli,
            "build",
            "--repo",
            name,
            "--branch",
            "dev",
            "--commit",
            "abcdef1",
            "--status",
            "failure",
            address=address_of(dev_env.client),
            env={"TOCSIN_TASK_QUEUE": task_queue},
        )
        assert done.returncode == 0, done.stderr
        handle = dev_env.client.get_workflow_handle(f"pipeline/{name}/dev")
        for _ in range(200):
            state = await handle.query(PipelineWorkflow.state)
            if state.notices and state.notices[0].deliveries and len(state.notices[0].deliveries) == 2:
                break
            await asyncio.sleep(0.1)
    posts = [r for r in slack.requests if r.method == "chat.postMessage"]
    assert [r.status for r in posts] == [500, 500, 200]
    assert len(slack.messages) == 1
    slack_record = next(d for d in state.notices[0].deliveries if d.channel == "ci-builds")
    assert slack_record.outcome == "delivered" and slack_record.attempts == 3


async def test_fixed_build_notifies_and_green_stays_quiet(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, slack: FakeSlack, config: Path
) -> None:
    name = repo()
    address = address_of(dev_env.client)
    async with tocsin_worker(dev_env.client, task_queue, tmp_path, config):
        for commit, status in (("1111111", "success"), ("2222222", "failure"), ("3333333", "success")):
            done = await asyncio.to_thread(
                cli,
                "build",
                "--repo",
                name,
                "--branch",
                "main",
                "--commit",
                commit,
                "--status",
                status,
                address=address,
                env={"TOCSIN_TASK_QUEUE": task_queue},
            )
            assert done.returncode == 0, done.stderr
        messages = await slack.await_messages(2, timeout=20)
        await asyncio.sleep(0.5)
    assert [m["blocks"][0]["text"]["text"].split(":")[0] for m in slack.messages] == ["Build failed", "Build fixed"]
    assert len(messages) == 2


async def test_notify_command_prints_id_and_delivers(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, slack: FakeSlack, config: Path
) -> None:
    async with tocsin_worker(dev_env.client, task_queue, tmp_path, config):
        done = await asyncio.to_thread(
            cli,
            "notify",
            "--receiver",
            "builds",
            "--title",
            "Release 1.2 is out",
            "--text",
            "token=xoxb-1234567890-abcdefghij leaked",
            "--severity",
            "success",
            "--link",
            "https://rel/1.2",
            address=address_of(dev_env.client),
            env={"TOCSIN_TASK_QUEUE": task_queue, "TOCSIN_CONFIG": str(config)},
        )
        assert done.returncode == 0, done.stderr
        wid = done.stdout.strip()
        assert wid.startswith("notify/")
        result = await dev_env.client.get_workflow_handle_for(NotifyWorkflow.run, wid).result()
    assert sorted((d.channel, d.outcome) for d in result.deliveries) == [
        ("ci-builds", "delivered"),
        ("console", "delivered"),
    ]
    [msg] = slack.messages
    assert "xoxb-1234567890" not in str(msg), "secrets are redacted before they leave the activity"
    assert msg["blocks"][0]["text"]["text"] == "Release 1.2 is out"


async def test_search_attributes_make_pipelines_findable(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, slack: FakeSlack, config: Path
) -> None:
    name = repo()
    async with tocsin_worker(dev_env.client, task_queue, tmp_path, config):
        done = await asyncio.to_thread(
            cli,
            "build",
            "--repo",
            name,
            "--branch",
            "main",
            "--commit",
            "abcdef1",
            "--status",
            "failure",
            address=address_of(dev_env.client),
            env={"TOCSIN_TASK_QUEUE": task_queue},
        )
        assert done.returncode == 0, done.stderr
        await slack.await_messages(1, timeout=20)
        query = f"TocsinKind = 'pipeline' AND TocsinService = '{name}' AND TocsinStatus = 'failing'"
        found: list[str] = []
        for _ in range(100):
            found = [wf.id async for wf in dev_env.client.list_workflows(query)]
            if found:
                break
            await asyncio.sleep(0.1)
    assert found == [f"pipeline/{name}/main"]
