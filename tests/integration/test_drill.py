"""``tocsin drill`` end to end (issue 14 item 9): the real CLI, a real worker on a dev server, a GitHub channel
against the fake GitHub API.

The drill's failure is notified and opens the CI failure tracking issue, its recovery closes it, the timings
are printed, and both events are in the audit journal as ``build.reported`` with ``workflow: tocsin-drill``.
Without a GitHub channel the issue never opens: the drill says so and exits 1 (its recovery still sent). A
branch that is not watched is bad input; a pipeline whose tracking issue is open is refused (the drill's
recovery would close it).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from temporalio.testing import WorkflowEnvironment

from operations.builds import send_build_event
from operations.drill import DRILL_WORKFLOW
from operations.journal import open_journal
from tests.fakes.github import FakeGitHub
from tests.helpers import address_of, cli, ops, person, tocsin_worker
from workflows import pipeline
from workflows.pipeline import BuildEvent, PipelineState

T = TypeVar("T")
GH_REPO = "acme/api"


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 60) -> T:
    """The probe's first truthy answer, polled until ``timeout`` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.2)


def config(gh: FakeGitHub | None) -> dict[str, Any]:
    channels: dict[str, Any] = {"out": {"type": "console"}}
    if gh is not None:
        channels["gh"] = {"type": "github", "token": gh.token, "repo": GH_REPO, "api_url": gh.url}
    return {
        "channels": channels,
        "receivers": [{"name": "builds", "channels": list(channels)}],
        "route": {"receiver": "builds"},
    }


async def _drill(address: str, queue: str, path: Path, *args: str, **env: str) -> Any:
    """The real ``tocsin drill``, on the test's task queue, journaling where the test's worker does."""
    full = {"TOCSIN_CONFIG": str(path), "TOCSIN_TASK_QUEUE": queue, "TOCSIN_HOME": str(path.parent), **env}
    return await asyncio.to_thread(cli, "drill", *args, address=address, env=full, timeout=180)


async def test_drill_opens_and_closes_the_tracking_issue_and_prints_the_timings(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config: Any
) -> None:
    repo = f"acme/drill-{uuid.uuid4().hex[:6]}"
    client = dev_env.client
    with FakeGitHub(repos=[GH_REPO]) as gh:
        path = write_config(config(gh))
        async with tocsin_worker(client, task_queue, tmp_path, path):
            done = await _drill(address_of(client), task_queue, path, "--repo", repo, "--branch", "main", "--json")
            assert done.returncode == 0, done.stderr + done.stdout
            result = json.loads(done.stdout)
            text = await _drill(address_of(client), task_queue, path, "--repo", repo, "--branch", "main")
            assert text.returncode == 0, text.stderr + text.stdout
        issues = gh.issues(GH_REPO)

    assert result["ok"] is True and result["missing"] == []
    assert result["workflow_id"] == f"pipeline/{repo}/main"
    for key in ("notified_seconds", "issue_opened_seconds", "issue_closed_seconds"):
        assert isinstance(result[key], float) and result[key] >= 0, key
    assert len(result["failure_commit"]) == 40 and len(result["recovery_commit"]) == 40
    assert result["failure_commit"] != result["recovery_commit"]

    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"Drill on pipeline/{repo}/main (commits ")
    assert [line.split()[0:3] for line in lines[1:4]] == [
        ["sent", "→", "notified"],
        ["sent", "→", "issue"],
        ["recovery", "→", "issue"],
    ]
    assert all(line.split()[-1] != "—" for line in lines[1:4] if "http" not in line)

    # Two drills, one pipeline: each opened its issue and closed it.
    mine = [i for i in issues if i["title"] == f"CI failure alerts: {repo}@main"]
    assert len(mine) == 2 and all(i["state"] == "closed" for i in mine)
    assert result["issue_url"] == mine[0]["html_url"], "the first drill's issue"

    # Recorded: the pipeline journals both events of each drill with the drill's workflow name, and the
    # CLI one drill record with the timings, in the same chain.
    journal = await open_journal(None, tmp_path)
    try:

        async def reported() -> list[dict[str, Any]] | None:
            found = [r.detail async for r in journal.records(action="build.reported")]
            drills = [d for d in found if d.get("repo") == repo and d.get("workflow") == DRILL_WORKFLOW]
            return drills if len(drills) == 4 else None

        details = await eventually(reported)
        sealed = [r async for r in journal.records(action="drill")]
        assert (await journal.verify()).ok
    finally:
        await journal.close()
    assert [d["status"] for d in details] == ["failure", "success", "failure", "success"]
    assert [d["commit"] for d in details[:2]] == [result["failure_commit"], result["recovery_commit"]]
    assert len(sealed) == 2 and sealed[0].object == f"pipeline/{repo}/main"
    assert sealed[0].actor is not None and sealed[0].actor["name"] == "tocsin-drill"
    assert sealed[0].detail == {
        key: result[key]
        for key in ("repo", "branch", "failure_commit", "recovery_commit", "issue_url", "missing", "ok")
        + ("notified_seconds", "issue_opened_seconds", "issue_closed_seconds")
    }


async def test_drill_without_a_tracking_channel_fails_and_says_what_did_not_happen(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config: Any
) -> None:
    repo = f"acme/drill-{uuid.uuid4().hex[:6]}"
    client = dev_env.client
    path = write_config(config(None))
    async with tocsin_worker(client, task_queue, tmp_path, path):
        done = await _drill(
            address_of(client), task_queue, path, "--repo", repo, "--branch", "main", "--timeout", "8s", "--json"
        )
        wid = pipeline.pipeline_id(repo, "main")

        async def recovered() -> PipelineState | None:
            state = await client.get_workflow_handle(wid).query(pipeline.QUERY_STATE, result_type=PipelineState)
            statuses = [t.last_status for name, t in state.tracks.items() if name == DRILL_WORKFLOW]
            return state if statuses == ["success"] else None

        await eventually(recovered)
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] is False
    assert result["notified_seconds"] is not None, "the console channel was notified"
    assert result["issue_opened_seconds"] is None and result["issue_closed_seconds"] is None
    assert result["missing"] == [
        "the tracking issue did not open",
        "the tracking issue was not closed (it never opened)",
    ]
    assert done.stderr.strip() == (
        "tocsin: drill failed: the tracking issue did not open; the tracking issue was not closed (it never opened)"
    )
    journal = await open_journal(None, tmp_path)
    try:
        (sealed,) = [r async for r in journal.records(action="drill")]
    finally:
        await journal.close()
    assert sealed.detail["ok"] is False and sealed.detail["missing"] == result["missing"]


async def test_drill_refuses_what_it_cannot_drill(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config: Any
) -> None:
    repo = f"acme/drill-{uuid.uuid4().hex[:6]}"
    client = dev_env.client
    address = address_of(client)
    with FakeGitHub(repos=[GH_REPO]) as gh:
        path = write_config(config(gh))
        done = await _drill(address, task_queue, path, "--repo", repo, "--branch", "feature/x")
        assert done.returncode == 2
        assert done.stderr.startswith("tocsin: --branch: 'feature/x' is not watched (pipelines.watch: main, master)")
        done = await _drill(address, task_queue, path, "--repo", repo, "--branch", "main", "--timeout", "soon")
        assert done.returncode == 2 and done.stderr.startswith("tocsin: --timeout: not a duration"), done.stderr
        remote = await _drill(
            address, task_queue, path, "--repo", repo, "--branch", "main", TOCSIN_URL="http://127.0.0.1:9"
        )
        assert remote.returncode == 2 and "TOCSIN_URL" in remote.stderr, remote.stderr

        # A real failure has the branch red, its tracking issue open: a drill's recovery would close it.
        async with tocsin_worker(client, task_queue, tmp_path, path):
            ctx = ops(client, task_queue, path)
            event = BuildEvent(repo=repo, branch="main", commit="deadbee", status="failure")
            await send_build_event(ctx, person("ci"), event)
            wid = pipeline.pipeline_id(repo, "main")

            async def red() -> bool:
                state = await client.get_workflow_handle(wid).query(pipeline.QUERY_STATE, result_type=PipelineState)
                return bool(state.tracking)

            await eventually(red)
            done = await _drill(address, task_queue, path, "--repo", repo, "--branch", "main")
        assert done.returncode == 1
        assert done.stderr.startswith(f"tocsin: pipeline/{repo}/main is red: its tracking issue is open"), done.stderr
        tracking = [i for i in gh.issues(GH_REPO) if i["title"] == f"CI failure alerts: {repo}@main"]
        assert [i["state"] for i in tracking] == ["open"], "the real issue stays open"
