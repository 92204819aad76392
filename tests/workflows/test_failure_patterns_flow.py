"""FailurePatternsWorkflow (``report/failure-patterns``) on the time-skipping server, fed by the real activity.

One failure signature seen on several pipelines within a window becomes ONE grouped message routed like
any build message (delivered here to the console channel, read back from its outbox).
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.patterns import PatternActivities
from tests.helpers import outbox, tocsin_worker
from workflows.patterns import (
    ALERTNAME,
    WORKFLOW,
    WORKFLOW_ID,
    FailurePatternsInput,
    FailurePatternsState,
    FailureSeen,
    Occurrence,
)
from workflows.patterns.workflow import FailurePatternsWorkflow

REPO = "acme/shop"
T0 = datetime(2026, 3, 2, 10, 2, tzinfo=UTC)


@pytest.fixture
def time_env(fresh_time_env: WorkflowEnvironment) -> WorkflowEnvironment:
    """A server per test: the entity has one fixed id, and time skipping is global to a server (a window
    another test left open would hold up this test's timers)."""
    return fresh_time_env


def seen(
    branch: str,
    commit: str,
    *,
    key: str = "sig-assert",
    author: str | None = None,
    run: str | None = None,
    critical: bool = False,
    repo: str = REPO,
) -> FailureSeen:
    return FailureSeen(
        key=key,
        category="test",
        summary=f"tests/test_cart.py::test_total: AssertionError ({key})",
        occurrence=Occurrence(repo=repo, branch=branch, commit=commit, at=T0, run=run, author=author),
        critical=critical,
    )


async def report(client: Client, task_queue: str, item: FailureSeen) -> None:
    """What the pipeline does: run the ``report_failure_pattern`` activity (signal-with-start)."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, task_queue=task_queue)
    await env.run(PatternActivities(client).report_failure_pattern, item)


async def state_when(client: Client, done: Any, what: str) -> FailurePatternsState:
    """Poll the ``state`` query until ``done(state)`` (a query can race a continue-as-new: ask again)."""
    handle = client.get_workflow_handle(WORKFLOW_ID)
    state: FailurePatternsState | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while loop.time() < deadline:
        try:
            state = await handle.query(FailurePatternsWorkflow.state, rpc_timeout=timedelta(seconds=5))
        except RPCError:
            await asyncio.sleep(0.05)
            continue
        if done(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {what}: {state}")


def settled(received: int) -> Any:
    """``received`` failures grouped and every delivery finished."""
    return lambda s: s.received >= received and not any(n.delivering for n in s.notices)


def patterns(home: Path) -> list[dict[str, Any]]:
    return [r["message"] for r in outbox(home) if r["message"]["labels"].get("alertname") == ALERTNAME]


async def test_three_branches_with_one_signature_send_one_grouped_message_at_once(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    client = time_env.client
    async with tocsin_worker(client, task_queue, tmp_path):
        await report(client, task_queue, seen("main", "1a2b3c4d5e6f", author="alice", run="https://ci.example/runs/7"))
        await report(client, task_queue, seen("feature-x", "2b3c4d5e6f7a", author="bob"))
        await report(client, task_queue, seen("fix-y", "3c4d5e6f7a8b", author="carol"))
        state = await state_when(client, lambda s: settled(3)(s) and s.sent == 1, "sent the group")
        desc = await client.get_workflow_handle(WORKFLOW_ID).describe()
        # A fourth branch in the same window is counted, not sent again.
        await report(client, task_queue, seen("docs", "4d5e6f7a8b9c"))
        after = await state_when(client, settled(4), "counted the fourth")
    [message] = patterns(tmp_path)
    assert message["title"].startswith("Same failure on 3 branches since ")
    assert "(3 runs, test): tests/test_cart.py::test_total" in message["title"]
    text = message["text"]
    for branch in ("main", "feature-x", "fix-y"):
        assert f"{REPO}@{branch}" in text
    assert "First seen in run https://ci.example/runs/7 on acme/shop@main at 1a2b3c4 by alice" in text
    assert message["labels"] == {
        "alertname": "BuildFailurePattern",
        "kind": "build",
        "category": "test",
        "signature": "sig-assert",
        "severity": "error",
        "repo": REPO,
        "service": "shop",
    }
    assert {"text": "First run", "url": "https://ci.example/runs/7"} in message["links"]
    [notice] = state.notices
    assert notice.receivers == ["console"] and [d.outcome for d in notice.deliveries] == ["delivered"]
    assert state.patterns.groups[0].state == "sent" and state.patterns.groups[0].count == 3
    assert desc.search_attributes.get("TocsinKind") == ["report"]
    assert after.sent == 1 and after.patterns.groups[0].count == 4 and len(after.patterns.groups[0].pipelines) == 4


async def test_different_signatures_are_not_grouped(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    client = time_env.client
    async with tocsin_worker(client, task_queue, tmp_path):
        await report(client, task_queue, seen("main", "1a2b3c4d5e6f", key="sig-a"))
        await report(client, task_queue, seen("feature-x", "2b3c4d5e6f7a", key="sig-b"))
        await report(client, task_queue, seen("fix-y", "3c4d5e6f7a8b", key="sig-c"))
        await state_when(client, settled(3), "grouped three")
        await time_env.sleep(timedelta(minutes=6))  # every window closes with one pipeline
        state = await state_when(
            client, lambda s: all(g.state == "sent" for g in s.patterns.groups), "closed the windows"
        )
    assert patterns(tmp_path) == [] and state.sent == 0
    assert sorted(state.patterns.first_seen) == ["sig-a", "sig-b", "sig-c"]


async def test_a_window_closing_with_two_pipelines_is_sent_at_its_end(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    client = time_env.client
    async with tocsin_worker(client, task_queue, tmp_path):
        await report(client, task_queue, seen("main", "1a2b3c4d5e6f", author="alice", run="r1"))
        await report(client, task_queue, seen("main", "1a2b3c4d5e6f", author="alice", run="r1"))  # a retried report
        await report(client, task_queue, seen("main", "1a2b3c4d5e6f", author="alice", run="r2"))  # a CI rerun
        await report(client, task_queue, seen("release", "5e6f7a8b9c0d", author="dave", repo="acme/api"))
        state = await state_when(client, settled(4), "held the group")
        assert state.sent == 0 and patterns(tmp_path) == []
        [group] = state.patterns.groups
        assert group.state == "holding" and group.closes - group.opened == timedelta(minutes=5)
        await time_env.sleep(timedelta(minutes=4))
        state = await state_when(client, settled(4), "still holding")
        assert state.sent == 0 and patterns(tmp_path) == []
        await time_env.sleep(timedelta(minutes=2))
        state = await state_when(client, lambda s: s.sent == 1 and settled(4)(s), "sent at the window's end")
    [message] = patterns(tmp_path)
    assert message["title"].startswith("Same failure on 2 pipelines since ")  # two repositories
    assert "(3 runs, test)" in message["title"]
    assert "acme/shop@main" in message["text"] and "acme/api@release" in message["text"]
    assert "First seen in run r1 on acme/shop@main at 1a2b3c4 by alice" in message["text"]
    assert "repo" not in message["labels"]
    assert state.patterns.groups[0].state == "sent" and state.patterns.groups[0].count == 3


async def test_a_critical_failure_shared_by_two_pipelines_goes_at_once(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    client = time_env.client
    async with tocsin_worker(client, task_queue, tmp_path):
        await report(client, task_queue, seen("main", "1a2b3c4d5e6f", critical=True))
        state = await state_when(client, settled(1), "held a lone critical failure")
        assert state.sent == 0  # one pipeline: its own message told it
        await report(client, task_queue, seen("hotfix", "6f7a8b9c0d1e", critical=True))
        await state_when(client, lambda s: s.sent == 1 and settled(2)(s), "sent the critical pair")
    [message] = patterns(tmp_path)
    assert message["labels"]["severity"] == "critical" and message["severity"] == "critical"
    assert message["title"].startswith("Same failure on 2 branches")


async def test_state_stays_bounded_under_many_signatures(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config: Any
) -> None:
    config = write_config(
        {
            "channels": {"console": {"type": "console"}},
            "receivers": [{"name": "console", "channels": ["console"]}],
            "route": {"receiver": "console"},
            "pipelines": {"health": {"patterns": {"max_groups": 5, "max_signatures": 8, "max_occurrences": 3}}},
        }
    )
    client = time_env.client
    async with tocsin_worker(client, task_queue, tmp_path, config):
        for i in range(30):
            await report(client, task_queue, seen(f"b{i % 4}", f"{i:07d}abc", key=f"sig-{i}"))
        for i in range(6):  # one signature on many runs of two branches
            await report(client, task_queue, seen(f"hot{i % 2}", f"{i:07d}def", key="sig-hot"))
        state = await state_when(client, settled(36), "grouped all")
    assert len(state.patterns.groups) <= 5
    assert len(state.patterns.first_seen) <= 8 and len(state.patterns.last_seen) <= 8
    assert "sig-hot" in state.patterns.first_seen  # the most recently seen are kept
    hot = next(g for g in state.patterns.groups if g.key == "sig-hot")
    assert hot.count == 6 and len(hot.occurrences) == 3


async def test_continue_as_new_keeps_windows_and_first_sightings(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    client = time_env.client
    async with tocsin_worker(client, task_queue, tmp_path):
        handle = await client.start_workflow(
            WORKFLOW, FailurePatternsInput(max_history=20), id=WORKFLOW_ID, task_queue=task_queue
        )
        first_run = handle.first_execution_run_id or (await handle.describe()).run_id
        await report(client, task_queue, seen("main", "1a2b3c4d5e6f", author="alice", run="run-1"))
        for i in range(6):  # other signatures push the history past 20 events
            await report(client, task_queue, seen("noise", f"{i:07d}fff", key=f"other-{i}"))
        await report(client, task_queue, seen("feature-x", "2b3c4d5e6f7a", author="bob"))
        state = await state_when(client, lambda s: s.runs >= 1 and settled(8)(s), "continued as new")
        assert state.sent == 0 and patterns(tmp_path) == []
        await report(client, task_queue, seen("fix-y", "3c4d5e6f7a8b", author="carol"))
        state = await state_when(client, lambda s: s.sent == 1 and settled(9)(s), "sent across runs")
        desc = await client.get_workflow_handle(WORKFLOW_ID).describe()
    assert desc.run_id != first_run and desc.status == WorkflowExecutionStatus.RUNNING
    [message] = patterns(tmp_path)
    assert message["title"].startswith("Same failure on 3 branches")
    assert "First seen in run run-1 on acme/shop@main at 1a2b3c4 by alice" in message["text"]
    assert state.received == 9 and "sig-assert" in state.patterns.first_seen


def test_failure_seen_takes_an_occurrence_built_inside_the_sandbox() -> None:
    """The sandbox re-imports ``workflows.pipeline.health_models``: its Occurrence is another class."""
    from pydantic import BaseModel

    class SandboxOccurrence(BaseModel):
        repo: str
        branch: str
        commit: str
        at: datetime
        run: str | None = None
        author: str | None = None

    other = SandboxOccurrence(repo=REPO, branch="main", commit="1a2b3c4", at=T0, author="alice")
    item = FailureSeen(key="k", category="test", summary="s", occurrence=other)  # type: ignore[arg-type]
    assert isinstance(item.occurrence, Occurrence) and item.occurrence.author == "alice"
