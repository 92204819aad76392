"""Verified identities in workflows (time-skipping server): four eyes on identities, approvers by
group, and the acting Actor in history and the audit trail — never a credential but its id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from operations import Refused, incidents
from operations.alerts import raise_alert
from operations.audit import _workflow_records
from operations.auth import hash_token, token_actor
from operations.deployments import approve, control, start_deployment
from operations.silences import add_silence
from tests.fakes.hooks import FakeHooks
from tests.helpers import ops, person, tocsin_worker
from tests.workflows.test_deployment_workflow import env_config, replay, request, state, until_stage, worker
from workflows.identity import Actor
from workflows.incident.models import IncidentState

CAROL_TOKEN = "tocsin_carol-secret-never-in-history"
BOB_TOKEN = "tocsin_bob-secret-never-in-history"
DAVE_TOKEN = "tocsin_dave-secret-never-in-history"
TOKENS = (CAROL_TOKEN, BOB_TOKEN, DAVE_TOKEN)


@pytest.fixture
def time_env(fresh_time_env: WorkflowEnvironment) -> WorkflowEnvironment:
    return fresh_time_env


@pytest.fixture
def hooks() -> Iterator[FakeHooks]:
    with FakeHooks() as fake:
        yield fake


@pytest.fixture
def service(task_queue: str) -> str:
    return f"svc-{task_queue}"


def users() -> list[dict[str, Any]]:
    return [
        {
            "name": "carol",
            "slack": "UCAROL",
            "roles": ["deployer:prod", "responder", "silencer"],
            "tokens": [{"id": "carol-laptop", "sha256": hash_token(CAROL_TOKEN)}],
        },
        {"name": "bob", "groups": ["sre"], "tokens": [{"id": "bob-phone", "sha256": hash_token(BOB_TOKEN)}]},
        {"name": "dave", "roles": ["approver:*"], "tokens": [{"id": "dave-ci", "sha256": hash_token(DAVE_TOKEN)}]},
    ]


def identity_config(hooks: FakeHooks, **prod: Any) -> dict[str, Any]:
    cfg = env_config(hooks, production=True, approvers=["carol", "sre", "slack-carol"], canary={"steps": [100]}, **prod)
    cfg["users"] = users()
    return cfg


def history_text(history: Any) -> str:
    """Every event of the history as raw protobuf bytes: payloads (JSON) appear verbatim, not base64."""
    return b"".join(event.SerializeToString() for event in history.events).decode("utf-8", "replace")


async def test_four_eyes_on_verified_identities_and_approvers_by_group(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    path = write_config(identity_config(hooks, required_approvals=2))
    ctx = ops(time_env.client, task_queue, path)
    carol, bob, dave = (token_actor(ctx.config, t, "api") for t in TOKENS)
    async with worker(time_env, task_queue, tmp_path, path):
        handle, _ = await start_deployment(ctx, carol, request(service, by="carol"))
        s = await until_stage(handle, "pending_approval")
        assert s.deployer == carol and "bob" in s.approvers and "dave" in s.approvers  # by group, by role
        with pytest.raises(Refused, match="four eyes: carol requested this deployment"):
            await approve(ctx, carol, handle.id)
        with pytest.raises(Refused, match="not verified: approvals in prod \\(production\\)"):
            await approve(ctx, person("bob"), handle.id)
        first = await approve(ctx, bob, handle.id, "lgtm")  # in sre, not listed by name
        second = await approve(ctx, dave, handle.id)  # approver:* role
        assert (first.approvals, second.approvals) == (1, 2)
        result = await handle.result()
        history = await handle.fetch_history()
        await replay(handle)
    assert result.outcome == "deployed"
    assert [(a.by, a.actor.credential if a.actor else None) for a in result.approvals] == [
        ("bob", "bob-phone"),
        ("dave", "dave-ci"),
    ]
    refused = [(e.actor, e.identity) for e in result.timeline if e.action == "approval_refused"]
    assert refused[0] == ("carol", carol)
    text = history_text(history)
    assert all(t not in text and hash_token(t) not in text for t in TOKENS)
    assert "carol-laptop" in text and "bob-phone" in text


async def test_four_eyes_recognises_the_deployer_by_her_slack_id(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    path = write_config(identity_config(hooks))
    ctx = ops(time_env.client, task_queue, path)
    carol = Actor(name="carol", verified=True, method="slack", credential="UCAROL", via="slack")
    other_name = Actor(name="slack-carol", verified=True, method="slack", credential="UCAROL", via="slack")
    async with worker(time_env, task_queue, tmp_path, path):
        handle, _ = await start_deployment(ctx, carol, request(service, by="carol"))
        await until_stage(handle, "pending_approval")
        with pytest.raises(Refused, match="four eyes: slack-carol \\(the same person as carol\\)"):
            await approve(ctx, other_name, handle.id)
        s = await state(handle)
        assert s.stage == "pending_approval" and s.approvals == []
        await control(ctx, carol, handle.id, "abort", "changed my mind")
        result = await handle.result()
    assert result.outcome == "rejected"
    aborted = [e for e in result.timeline if e.action == "aborted"]
    assert aborted and aborted[0].identity == carol


async def test_actor_of_incident_and_silence_actions_in_state_history_and_audit(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, service: str
) -> None:
    cfg = {
        "channels": {"console": {"type": "console"}},
        "receivers": [{"name": "oncall", "channels": ["console"]}],
        "route": {"receiver": "oncall", "group_by": ["alertname", "service"], "group_wait": "1s"},
        "users": users(),
    }
    path = write_config(cfg)
    ctx = ops(time_env.client, task_queue, path)
    carol = token_actor(ctx.config, CAROL_TOKEN, "api")
    async with tocsin_worker(time_env.client, task_queue, tmp_path, path):
        [wid] = await raise_alert(ctx, carol, "DiskFull", "critical", {"service": service})
        await time_env.sleep(timedelta(seconds=2))
        with pytest.raises(Refused, match="bob does not hold the role responder"):
            await incidents.acknowledge(ctx, token_actor(ctx.config, BOB_TOKEN, "api"), wid)
        await incidents.acknowledge(ctx, carol, wid, "mine")
        await incidents.snooze(ctx, carol, wid, timedelta(minutes=10))
        silence = await add_silence(ctx, carol, [f'service="{service}"'], "1h", "maintenance")
        handle = time_env.client.get_workflow_handle(wid)
        st = await handle.query("state", result_type=IncidentState)
        history = await handle.fetch_history()
        records = await _workflow_records(time_env.client, await handle.describe())
    assert silence.created_by_actor == carol
    acked = [e for e in st.timeline if e.action == "acknowledged"]
    assert acked and acked[0].actor == "carol" and acked[0].identity == carol
    assert [e.identity for e in st.timeline if e.action == "snoozed"] == [carol]
    text = history_text(history)
    assert CAROL_TOKEN not in text and hash_token(CAROL_TOKEN) not in text and "carol-laptop" in text
    ack = next(r for r in records if r["action"] == "acknowledge")
    assert ack["actor"] == "carol"
    assert ack["identity"] == {
        "name": "carol",
        "verified": True,
        "method": "token",
        "credential": "carol-laptop",
        "via": "api",
    }
    assert CAROL_TOKEN not in json.dumps(records)
