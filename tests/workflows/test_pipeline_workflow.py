"""PipelineWorkflow on the time-skipping server: classification, routing, dedupe, continue-as-new."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from operations.builds import send_build_event
from tests.helpers import ops, outbox, person, tocsin_worker
from workflows.pipeline.models import BuildEvent, PipelineInput, PipelineState
from workflows.pipeline.workflow import PipelineWorkflow

REPO = "acme/api"


@pytest.fixture(autouse=True)
def _fresh_repo(task_queue: str) -> None:
    """Entity workflows outlive a test: give each test its own pipeline id."""
    global REPO
    REPO = f"acme/{task_queue}"


def event(status: str, commit: str = "abc1234", **kw: object) -> BuildEvent:
    return BuildEvent(repo=REPO, branch="main", commit=commit, status=status, **kw)  # type: ignore[arg-type]


async def wait_seq(handle, seq: int, *, delivered: bool = True) -> PipelineState:  # type: ignore[no-untyped-def]
    """The state once ``seq`` events are classified and (with ``delivered``) their deliveries have finished."""
    import asyncio

    from temporalio.service import RPCError

    state = None
    for _ in range(200):
        try:
            state = await handle.query(PipelineWorkflow.state, rpc_timeout=timedelta(seconds=5))
        except RPCError:  # a query can race a continue-as-new; ask the new run again
            await asyncio.sleep(0.05)
            continue
        handled = bool(state.notices) and state.notices[-1].seq >= seq  # seq counts an event as soon as it is taken
        if handled and not (delivered and any(n.delivering for n in state.notices)):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"pipeline never reached seq {seq}: {state}")


def by_event(records: list[dict]) -> list[dict]:  # type: ignore[type-arg]
    """The events' own messages in event order (``<wid>/event-<seq>/...`` keys; not the health follow-ups)."""
    own = [r for r in records if "/event-" in r["key"]]
    return sorted(own, key=lambda r: int(r["key"].split("/event-")[1].split("/")[0]))


async def test_failure_then_fixed_notifies_twice_and_success_is_quiet(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with tocsin_worker(time_env.client, task_queue, tmp_path):
        wid = await send_build_event(ops(time_env.client, task_queue), person("ci"), event("success", "1111111"))
        await send_build_event(
            ops(time_env.client, task_queue), person("ci"), event("failure", "2222222", author="alice")
        )
        await send_build_event(ops(time_env.client, task_queue), person("ci"), event("failure", "3333333"))
        await send_build_event(ops(time_env.client, task_queue), person("ci"), event("success", "4444444"))
        await send_build_event(ops(time_env.client, task_queue), person("ci"), event("success", "5555555"))
        handle = time_env.client.get_workflow_handle(wid)
        state = await wait_seq(handle, 5)
    box = by_event(outbox(tmp_path))  # deliveries run beside classification: sort them by event
    titles = [r["message"]["title"] for r in box]
    assert titles == [
        f"Build failed: {REPO}@main (ci)",
        f"Build failed: {REPO}@main (ci)",
        f"Build fixed: {REPO}@main (ci)",
    ]
    assert [n.alertname for n in state.notices] == [
        "BuildSucceeded",
        "BuildFailed",
        "BuildFailed",
        "BuildFixed",
        "BuildSucceeded",
    ]
    assert [n.notified for n in state.notices] == [False, True, True, True, False]
    assert state.tracks["ci"].consecutive_failures == 0
    second = box[1]["message"]
    assert "2 builds in a row" in second["text"]
    assert second["labels"]["alertname"] == "BuildFailed"
    assert second["labels"]["severity"] == "error"


async def test_duplicate_event_from_ci_retry_is_ignored(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with tocsin_worker(time_env.client, task_queue, tmp_path):
        ev = event("failure", "abcdef0", url="https://ci.example/runs/9")
        wid = await send_build_event(ops(time_env.client, task_queue), person("ci"), ev)
        await send_build_event(ops(time_env.client, task_queue), person("ci"), ev)
        await send_build_event(ops(time_env.client, task_queue), person("ci"), event("cancelled", "abcdef1"))
        state = await wait_seq(time_env.client.get_workflow_handle(wid), 2)
    assert state.seq == 2
    assert [r["message"]["title"].split(":")[0] for r in by_event(outbox(tmp_path))] == [
        "Build failed",
        "Build cancelled",
    ]


async def test_tracks_are_per_ci_workflow_name(time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path) -> None:
    async with tocsin_worker(time_env.client, task_queue, tmp_path):
        wid = await send_build_event(
            ops(time_env.client, task_queue), person("ci"), event("failure", "aaaaaaa", workflow="lint")
        )
        await send_build_event(
            ops(time_env.client, task_queue), person("ci"), event("success", "aaaaaaa", workflow="tests")
        )
        await send_build_event(
            ops(time_env.client, task_queue), person("ci"), event("success", "bbbbbbb", workflow="lint")
        )
        state = await wait_seq(time_env.client.get_workflow_handle(wid), 3)
    assert [n.alertname for n in state.notices] == ["BuildFailed", "BuildSucceeded", "BuildFixed"]


async def test_routes_by_labels_to_configured_receivers(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    config = write_config(
        {
            "channels": {"a": {"type": "console"}, "b": {"type": "console"}},
            "receivers": [
                {"name": "default", "channels": ["a"]},
                {"name": "lint-team", "channels": ["b"]},
                {"name": "quiet"},
            ],
            "route": {
                "receiver": "default",
                "routes": [
                    {"matchers": ['workflow="lint"'], "receiver": "lint-team", "continue": True},
                    {"matchers": ['alertname="BuildCancelled"'], "receiver": "quiet"},
                    {"matchers": ['kind="build"', 'severity=~"error|critical"'], "receiver": "default"},
                ],
            },
        }
    )
    async with tocsin_worker(time_env.client, task_queue, tmp_path, config):
        wid = await send_build_event(
            ops(time_env.client, task_queue), person("ci"), event("failure", "aaaaaaa", workflow="lint")
        )
        await send_build_event(ops(time_env.client, task_queue), person("ci"), event("cancelled", "aaaaaaa"))
        state = await wait_seq(time_env.client.get_workflow_handle(wid), 2)
    assert state.notices[0].receivers == ["lint-team", "default"]
    assert sorted(r["channel"] for r in outbox(tmp_path)) == ["a", "b"]
    assert state.notices[1].receivers == ["quiet"]
    assert state.notices[1].deliveries == []  # a receiver with no channels drops, as in Alertmanager


async def test_continue_as_new_keeps_state_and_numbering(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with tocsin_worker(time_env.client, task_queue, tmp_path):
        wid = f"pipeline/{REPO}/main"
        first = await time_env.client.start_workflow(
            PipelineWorkflow.run, PipelineInput(repo=REPO, branch="main", max_history=20), id=wid, task_queue=task_queue
        )
        handle = time_env.client.get_workflow_handle(wid)  # follows the newest run
        for i in range(8):
            await handle.signal(PipelineWorkflow.build_event, event("failure", f"{i:07x}"))
        state = await wait_seq(handle, 8)
        for _ in range(200):  # the run continues once its last audit journal batch is appended
            if state.runs > 1:
                break
            await asyncio.sleep(0.05)
            state = await wait_seq(handle, 8)
        desc = await handle.describe()
    assert state.runs > 1, "the entity should have continued-as-new with max_history=20"
    assert desc.run_id != first.run_id
    assert desc.status == WorkflowExecutionStatus.RUNNING
    assert state.tracks["ci"].consecutive_failures == 8
    keys = [r["key"] for r in by_event(outbox(tmp_path))]
    assert keys == [f"{wid}/event-{i}/console/console" for i in range(1, 9)]


async def test_silence_keeps_build_notifications_quiet_but_recorded(
    fresh_time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    time_env = fresh_time_env  # the silences store outlives the test: keep it off the shared server
    from operations.silences import add_silence

    async with tocsin_worker(time_env.client, task_queue, tmp_path):
        await add_silence(ops(time_env.client, task_queue), person("ops"), [f'repo="{REPO}"'], "1h", "repo migration")
        wid = await send_build_event(ops(time_env.client, task_queue), person("ci"), event("failure", "abcdef9"))
        state = await wait_seq(time_env.client.get_workflow_handle(wid), 1)
    assert state.notices[0].alertname == "BuildFailed" and state.notices[0].silenced_by
    assert state.notices[0].deliveries == [] and outbox(tmp_path) == []
    assert state.tracks["ci"].consecutive_failures == 1, "the failure still counts"
