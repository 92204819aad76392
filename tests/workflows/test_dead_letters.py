"""Dead channels on the time-skipping server: nothing waits behind them, what fails is dead-lettered.

A receiver whose Slack refuses connections: later pipeline events are still
classified at once; after the receiver's ``give_up_after`` the message is
recorded as a dead letter (state query), counted in
``tocsin_dead_letters_total`` and told to the ``dead_letter`` receiver
(default: the console).
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from operations.builds import send_build_event
from tests.helpers import ops, outbox, person, tocsin_worker
from workers.registry import WORKFLOWS, workflow_runner
from workflows.config import Config, validate_references
from workflows.models import Message
from workflows.notify.models import NotifyInput
from workflows.notify.workflow import NotifyWorkflow
from workflows.pipeline.models import BuildEvent, PipelineInput, PipelineState
from workflows.pipeline.workflow import PipelineWorkflow


def refused_url() -> str:
    """An ``api_url`` nothing listens on: every call is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/"


def dead_slack(**receiver: Any) -> dict[str, Any]:
    return {
        "channels": {"slack": {"type": "slack", "token": "xoxb-dead", "channel": "#ci", "api_url": refused_url()}},
        "receivers": [{"name": "builds", "channels": ["slack"], "give_up_after": "10m", **receiver}],
        "route": {"receiver": "builds"},
    }


async def replays(history: WorkflowHistory) -> None:
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=workflow_runner())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, str(result.replay_failure)[:3000]


def dead_letter_count(receiver: str, channel: str) -> float:
    return REGISTRY.get_sample_value("tocsin_dead_letters_total", {"receiver": receiver, "channel": channel}) or 0.0


def event(repo: str, status: str, commit: str) -> BuildEvent:
    return BuildEvent(repo=repo, branch="main", commit=commit, status=status)  # type: ignore[arg-type]


async def poll(handle: Any, ready: Any, timeout: float = 20) -> PipelineState:
    """Query ``state`` until ``ready(state)`` (wall-clock bound)."""
    deadline = time.monotonic() + timeout
    state: PipelineState | None = None
    while time.monotonic() < deadline:
        state = await handle.query(PipelineWorkflow.state, rpc_timeout=timedelta(seconds=5))
        if ready(state):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"pipeline state never got there: {state}")


async def test_dead_slack_never_stalls_the_pipeline_and_dead_letters_to_the_console(
    fresh_time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    env = fresh_time_env  # time is skipped by hand: keep other tests' timers off this server
    repo = f"acme/dead-{uuid.uuid4().hex[:6]}"
    before = dead_letter_count("builds", "slack")
    async with tocsin_worker(env.client, task_queue, tmp_path, write_config(dead_slack())):
        wid = await send_build_event(ops(env.client, task_queue), person("ci"), event(repo, "failure", "1111111"))
        await send_build_event(ops(env.client, task_queue), person("ci"), event(repo, "success", "2222222"))
        handle = env.client.get_workflow_handle(wid)

        started = time.monotonic()
        state = await poll(handle, lambda s: s.seq >= 2)
        assert time.monotonic() - started < 15, "the success waited behind the failure's delivery"
        assert [n.alertname for n in state.notices] == ["BuildFailed", "BuildFixed"]
        assert state.notices[0].delivering, "the failure's delivery is still retrying"
        assert state.tracks["ci"].consecutive_failures == 0
        assert state.dead_letters == []

        await env.sleep(timedelta(minutes=11))  # past give_up_after (10m)
        state = await poll(handle, lambda s: s.dead_letter_count >= 2 and not any(n.delivering for n in s.notices))
        box = outbox(tmp_path)
        await replays(await handle.fetch_history())

    letters = {d.step: d for d in state.dead_letters}
    failed = letters["event-1/builds"]
    assert (failed.receiver, failed.channel, failed.workflow_id) == ("builds", "slack", wid)
    assert failed.title == f"Build failed: {repo}@main (ci)"
    assert failed.error.startswith("gave up after 10m: ")
    assert letters["event-2/builds"].title.startswith("Build fixed")
    assert [r.outcome for r in state.notices[0].deliveries] == ["failed"]
    assert dead_letter_count("builds", "slack") - before == 2

    told = {r["key"]: r for r in box}
    notice = told[f"{wid}/event-1/builds/dead-letter"]
    assert notice["message"]["title"] == f"Not delivered: Build failed: {repo}@main (ci)"
    assert "builds → slack" in notice["message"]["text"]
    assert f"{wid}/event-2/builds/dead-letter" in told
    assert len(box) == 2, "only the dead-letter notices reach the console (the receiver has no console)"


async def test_dead_letter_receiver_is_told_and_its_own_failure_never_loops(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    config = dead_slack(give_up_after="2m")
    config["channels"]["ops-console"] = {"type": "console"}
    config["channels"]["ops-slack"] = dict(config["channels"]["slack"])
    config["receivers"] += [
        {"name": "ops", "channels": ["ops-console"]},
        {"name": "ops-dead", "channels": ["ops-slack"], "give_up_after": "2m"},
    ]
    for target, expect_channel in (("ops", "ops-console"), ("ops-dead", "console")):
        config["dead_letter"] = target
        async with tocsin_worker(time_env.client, task_queue, tmp_path, write_config(config)):
            handle = await time_env.client.start_workflow(
                NotifyWorkflow.run,
                NotifyInput(receiver="builds", message=Message(title=f"to {target}")),
                id=f"notify/{uuid.uuid4()}",
                task_queue=task_queue,
            )
            result = await handle.result()  # time skips while the result is awaited
            await replays(await handle.fetch_history())
        assert [(d.channel, d.outcome) for d in result.deliveries] == [("slack", "failed")]
        assert [(d.receiver, d.channel, d.step) for d in result.dead_letters] == [("builds", "slack", "notify")]
        [told] = [r for r in outbox(tmp_path) if r["message"]["title"] == f"Not delivered: to {target}"]
        assert told["channel"] == expect_channel
        assert told["key"].startswith(f"{handle.id}/notify/dead-letter")


async def test_unknown_receiver_is_dead_lettered_with_the_built_in_config(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with tocsin_worker(time_env.client, task_queue, tmp_path):  # no config file: the built-in default
        handle = await time_env.client.start_workflow(
            NotifyWorkflow.run,
            NotifyInput(receiver="nobody", message=Message(title="lost")),
            id=f"notify/{uuid.uuid4()}",
            task_queue=task_queue,
        )
        result = await handle.result()
    assert [(d.receiver, d.channel, d.error) for d in result.dead_letters] == [
        ("nobody", "", "unknown receiver 'nobody'")
    ]
    [told] = outbox(tmp_path)
    assert told["message"]["title"] == "Not delivered: lost" and told["channel"] == "console"


def test_give_up_after_and_dead_letter_are_validated() -> None:
    base: dict[str, Any] = {"channels": {"c": {"type": "console"}}, "route": {"receiver": "r"}}
    default = Config.model_validate({**base, "receivers": [{"name": "r", "channels": ["c"]}]})
    assert default.receivers[0].give_up_after == "1h"
    for bad in ("0s", "soon"):
        with pytest.raises(ValidationError, match="give_up_after"):
            Config.model_validate({**base, "receivers": [{"name": "r", "give_up_after": bad}]})
    with pytest.raises(ValidationError, match="longer than failover_after"):
        Config.model_validate(
            {**base, "receivers": [{"name": "r", "channels": ["c"], "backup": ["c"], "give_up_after": "20s"}]}
        )
    config = Config.model_validate({**base, "receivers": [{"name": "r", "channels": ["c"]}], "dead_letter": "nope"})
    assert [(i.path, i.message) for i in validate_references(config) if i.level == "error"] == [
        ("dead_letter", "unknown receiver 'nope'")
    ]
    used = Config.model_validate(
        {**base, "receivers": [{"name": "r", "channels": ["c"]}, {"name": "dl"}], "dead_letter": "dl"}
    )
    assert validate_references(used) == [], "the dead_letter receiver counts as used"


async def test_continue_as_new_waits_for_in_flight_deliveries_and_drops_none(
    fresh_time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    env = fresh_time_env
    repo = f"acme/can-{uuid.uuid4().hex[:6]}"
    config = dead_slack()
    config["channels"]["console"] = {"type": "console"}
    config["receivers"][0]["channels"] = ["slack", "console"]
    config["pipelines"] = {"health": {"trends": {"failures_per_day": 100, "success_rate_min_builds": 100}}}
    wid = f"pipeline/{repo}/main"
    async with tocsin_worker(env.client, task_queue, tmp_path, write_config(config)):
        first = await env.client.start_workflow(
            PipelineWorkflow.run,
            PipelineInput(repo=repo, branch="main", max_history=20),
            id=wid,
            task_queue=task_queue,
        )
        handle = env.client.get_workflow_handle(wid)  # follows the newest run
        for i in range(5):
            await handle.signal(PipelineWorkflow.build_event, event(repo, "failure", f"{i:07x}"))
        state = await poll(handle, lambda s: s.seq >= 5)
        assert state.runs == 1, "continue-as-new waits while deliveries are in flight"
        assert any(n.delivering for n in state.notices)

        await env.sleep(timedelta(minutes=11))
        # Five retry ladders end and the flow continues as new: under the full suite's load the
        # time-skipping server took over 20 s of wall clock for the last of them.
        state = await poll(handle, lambda s: s.runs > 1 and s.dead_letter_count >= 5, timeout=90)
        desc = await handle.describe()
        box = outbox(tmp_path)
        history = await env.client.get_workflow_handle(wid, run_id=first.result_run_id).fetch_history()
    await replays(history)  # the concurrent deliveries and dead letters replay deterministically
    assert desc.run_id != first.result_run_id
    assert sorted(d.step for d in state.dead_letters) == [f"event-{i}/builds" for i in range(1, 6)]
    assert not any(n.delivering for n in state.notices)
    keys = {r["key"] for r in box}
    for i in range(1, 6):
        assert f"{wid}/event-{i}/builds/console" in keys, "the console delivery of every event went out"
    assert sum(1 for r in box if r["message"]["title"].startswith("Not delivered")) == 5
