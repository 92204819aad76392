"""Slack ChatOps end to end: a real dev server, `tocsin worker`, `tocsin gateway` and the fake Slack.

Signed requests as Slack sends them reach ``/webhooks/slack/*``: carol (``deployer:prod``) deploys to
prod with ``/tocsin deploy``; her own Approve click is refused by four eyes, ephemerally; an unmapped
Slack user is refused; alice's Approve click approves (recorded with her Slack identity) and the
deployment goes out; the same click retried by Slack acts once. ``/tocsin incident critical …`` opens
an incident whose ladder an Acknowledge click stops; ``/tocsin status`` answers within 3 s and the
response_url gets Block Kit; Reject asks why in a modal (``views.open``) and its submission rejects;
the canary's Pause/Resume/Abort buttons steer a deployment for its deployer and refuse others.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from tests.fakes.hooks import FakeHooks
from tests.fakes.slack_inbound import FakeSlackInbound, form_body, interaction_body, signed
from tests.helpers import address_of, outbox
from tests.procs import TOCSIN, base_env, process, tocsin_gateway
from workflows.deployment import DeploymentState, DeployResult

SECRET = "slack-signing-secret-for-tests"
ALICE, CAROL, STRANGER = "U0ALICE01", "U0CAROL01", "U0NOBODY1"
LADDER = ("oncall", "senior", "cto")


def _config(path: Path, hooks_url: str) -> Path:
    config = {
        "channels": {name: {"type": "console"} for name in ("default", "deploys", *LADDER)},
        "receivers": [{"name": n, "channels": [n]} for n in ("default", "deploys", *LADDER)],
        "route": {
            "receiver": "default",
            "group_by": ["alertname", "service"],
            "group_wait": "1s",
            "group_interval": "2s",
            "routes": [{"matchers": ['severity="critical"'], "receiver": "oncall", "escalation": "fast"}],
        },
        "escalation_policies": {
            "fast": {"levels": [{"after": a, "receiver": n} for a, n in zip(("0s", "5s", "10s"), LADDER, strict=True)]}
        },
        "users": [
            {"name": "alice", "slack": ALICE, "roles": ["responder", "approver:prod"]},
            {
                "name": "carol",
                "slack": CAROL,
                "roles": ["deployer:prod", "deployer:stage", "approver:prod", "responder"],
            },
        ],
        "environments": {
            "prod": {
                "production": True,
                "required_approvals": 1,
                "four_eyes": True,
                "approval_timeout": "10m",
                "receiver": "deploys",
                "hooks": {"deploy": {"url": hooks_url + "/deploy"}, "health_deadline": "20s"},
            },
            "stage": {
                "required_approvals": 0,
                "receiver": "deploys",
                "canary": {"steps": [10, 50, 100], "bake": "20s"},
                "hooks": {
                    "deploy": {"url": hooks_url + "/deploy"},
                    "rollback": {"url": hooks_url + "/rollback"},
                    "health": [hooks_url + "/health"],
                    "health_deadline": "20s",
                },
            },
        },
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def stack(dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A worker and a gateway with the Slack door configured against the fake Slack."""
    tmp = tmp_path_factory.mktemp("slack-door")
    with FakeHooks() as hooks, FakeSlackInbound() as slack:
        env = base_env(
            TEMPORAL_ADDRESS=address_of(dev_env.client),
            TOCSIN_TASK_QUEUE=f"tq-{uuid.uuid4().hex[:8]}",
            TOCSIN_CONFIG=str(_config(tmp / "tocsin.yaml", hooks.url)),
            TOCSIN_HOME=str(tmp / ".tocsin"),
            TOCSIN_GATEWAY_TOKEN="gateway-token",
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_BOT_TOKEN=slack.token,
            SLACK_API_URL=slack.url,
        )
        with process([TOCSIN, "worker"], tmp, env, tmp / "worker.log"), tocsin_gateway(tmp, env) as url:
            yield {"url": url, "slack": slack, "home": tmp / ".tocsin"}


async def command(stack: dict[str, Any], user: str, text: str, name: str) -> httpx.Response:
    """``/tocsin <text>`` by ``user``; replies go to the response_url called ``name``."""
    body = form_body(
        command="/tocsin",
        text=text,
        user_id=user,
        user_name=user.lower(),
        trigger_id=f"trigger-{name}",
        response_url=stack["slack"].response_url(name),
    )
    async with httpx.AsyncClient(base_url=stack["url"], timeout=10) as http:
        return await http.post("/webhooks/slack/commands", content=body, headers=signed(SECRET, body))


def click_body(stack: dict[str, Any], user: str, action: str, value: str, name: str) -> bytes:
    return interaction_body(
        {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower()},
            "trigger_id": f"trigger-{name}",
            "response_url": stack["slack"].response_url(name),
            "channel": {"id": "C0DEPLOYS"},
            "actions": [{"action_id": action, "value": value, "action_ts": f"{time.time():.6f}", "type": "button"}],
        }
    )


async def post_click(stack: dict[str, Any], body: bytes, retry: int | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack["url"], timeout=10) as http:
        resp = await http.post("/webhooks/slack/interactions", content=body, headers=signed(SECRET, body, retry=retry))
    assert resp.status_code == 200 and resp.content == b"", resp.text
    return resp


async def reply(stack: dict[str, Any], name: str) -> dict[str, Any]:
    """The one reply on a response_url (after a moment, to see that no second one follows)."""
    [first] = await stack["slack"].await_responses(name, 1, timeout=20)
    await asyncio.sleep(0.5)
    assert stack["slack"].responses_to(name) == [first], "one reply only"
    return first


async def until_stage(dev_env: WorkflowEnvironment, wid: str, *stages: str) -> DeploymentState:
    deadline = time.monotonic() + 30
    state = None
    while time.monotonic() < deadline:
        try:
            state = await dev_env.client.get_workflow_handle(wid).query("state", result_type=DeploymentState)
            if state.stage in stages:
                return state
        except Exception:  # not started yet, or no worker answered yet
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"{wid} never reached {stages}: {state}")


async def test_buttons_approve_with_four_eyes_unmapped_refused_and_retries_act_once(
    dev_env: WorkflowEnvironment, stack: dict[str, Any]
) -> None:
    service = f"pay-{uuid.uuid4().hex[:6]}"
    wid = f"deploy/{service}/prod/1.2.3"
    resp = await command(stack, CAROL, f"deploy {service} prod 1.2.3", "deploy")
    assert resp.status_code == 200 and resp.json()["response_type"] == "ephemeral", resp.text
    started = await reply(stack, "deploy")
    assert started["response_type"] == "in_channel" and wid in started["text"], started
    await until_stage(dev_env, wid, "pending_approval")

    await post_click(stack, click_body(stack, CAROL, "tocsin_approve", wid, "carol-approves"))
    refused = await reply(stack, "carol-approves")
    assert refused["response_type"] == "ephemeral" and refused["replace_original"] is False
    assert refused["text"].startswith("Refused: four eyes: carol"), refused

    await post_click(stack, click_body(stack, STRANGER, "tocsin_approve", wid, "stranger-approves"))
    stranger = await reply(stack, "stranger-approves")
    assert stranger["response_type"] == "ephemeral"
    assert f"your Slack user {STRANGER}" in stranger["text"] and "users[].slack" in stranger["text"], stranger
    state = await until_stage(dev_env, wid, "pending_approval")
    assert state.approvals == []

    body = click_body(stack, ALICE, "tocsin_approve", wid, "alice-approves")
    await post_click(stack, body)
    await post_click(stack, body, retry=1)  # Slack's retry of the same click
    approved = await reply(stack, "alice-approves")
    assert approved["response_type"] == "ephemeral" and approved["text"].startswith(f"Approved `{wid}`"), approved
    result = await dev_env.client.get_workflow_handle(wid, result_type=DeployResult).result()
    assert result.outcome == "deployed", result
    final = await dev_env.client.get_workflow_handle(wid).query("state", result_type=DeploymentState)
    [approval] = final.approvals
    assert approval.by == "alice" and approval.actor is not None
    assert approval.actor.model_dump() == {
        "name": "alice",
        "verified": True,
        "method": "slack",
        "credential": ALICE,
        "via": "slack",
    }


def _sent(home: Path, wid: str) -> list[str]:
    return [r["channel"] for r in outbox(home) if r["key"].startswith(f"{wid}/rung-")]


async def test_incident_command_and_acknowledge_button_stop_the_ladder(
    dev_env: WorkflowEnvironment, stack: dict[str, Any]
) -> None:
    title = f"Checkout down {uuid.uuid4().hex[:6]}"
    resp = await command(stack, ALICE, f"incident critical {title}", "incident")
    assert resp.status_code == 200, resp.text
    raised = await reply(stack, "incident")
    found = re.search(r"`(incident/[^`]+)`", raised["text"])
    assert raised["response_type"] == "in_channel" and found, raised
    wid = found.group(1)
    deadline = time.monotonic() + 20
    while not _sent(stack["home"], wid) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert _sent(stack["home"], wid) == ["oncall"], outbox(stack["home"])

    await post_click(stack, click_body(stack, ALICE, "tocsin_ack", wid, "ack"))
    acked = await reply(stack, "ack")
    assert acked["response_type"] == "ephemeral" and acked["text"].startswith(f"Acknowledged `{wid}`"), acked
    await asyncio.sleep(7)  # past the second rung (5 s)
    assert _sent(stack["home"], wid) == ["oncall"], "the ladder stops on acknowledge"
    status = await dev_env.client.get_workflow_handle(wid).query("state")
    assert status["acknowledged_by"] == "alice", status


async def test_status_answers_within_three_seconds_and_replies_with_blocks(stack: dict[str, Any]) -> None:
    began = time.monotonic()
    resp = await command(stack, CAROL, "status", "status")
    assert time.monotonic() - began < 3, "Slack gives up after 3 s"
    assert resp.status_code == 200 and resp.json()["response_type"] == "ephemeral", resp.text
    answer = await reply(stack, "status")
    blocks = answer["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "Tocsin status"}}
    texts = [b["text"]["text"] for b in blocks[1:]]
    assert [t.split("*")[1] for t in texts] == ["Open incidents", "Running deployments", "Failing pipelines"], texts


async def test_reject_button_asks_why_in_a_modal_and_the_submission_rejects(
    dev_env: WorkflowEnvironment, stack: dict[str, Any]
) -> None:
    service = f"shop-{uuid.uuid4().hex[:6]}"
    wid = f"deploy/{service}/prod/2.0.0"
    await command(stack, CAROL, f"deploy {service} prod 2.0.0", "deploy-shop")
    await reply(stack, "deploy-shop")
    await until_stage(dev_env, wid, "pending_approval")
    slack: FakeSlackInbound = stack["slack"]
    before = len(slack.views)
    await post_click(stack, click_body(stack, ALICE, "tocsin_reject", wid, "alice-rejects"))
    deadline = time.monotonic() + 10
    while len(slack.views) == before and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    opened = slack.views[-1]
    assert opened["trigger_id"] == "trigger-alice-rejects" and wid in opened["view"]["private_metadata"]
    [call] = [c for c in slack.calls("views.open") if c.body.get("trigger_id") == "trigger-alice-rejects"]
    assert call.headers["authorization"] == f"Bearer {slack.token}"
    values = {"reason": {"reason_input": {"type": "plain_text_input", "value": "not during the sale"}}}
    submission = {
        "type": "view_submission",
        "user": {"id": ALICE, "username": "alice"},
        "view": {**opened["view"], "id": "V0REJECT1", "state": {"values": values}},
    }
    await post_click(stack, interaction_body(submission))
    rejected = await reply(stack, "alice-rejects")
    assert rejected["text"] == f"Rejected `{wid}`: not during the sale", rejected
    result = await dev_env.client.get_workflow_handle(wid, result_type=DeployResult).result()
    assert result.outcome == "rejected" and "not during the sale" in result.reason, result


async def test_canary_buttons_pause_resume_and_abort_for_the_deployer_only(
    dev_env: WorkflowEnvironment, stack: dict[str, Any]
) -> None:
    service = f"cart-{uuid.uuid4().hex[:6]}"
    wid = f"deploy/{service}/stage/3.1.0"
    await command(stack, CAROL, f"deploy {service} stage 3.1.0", "deploy-cart")
    await reply(stack, "deploy-cart")
    await until_stage(dev_env, wid, "canary")

    await post_click(stack, click_body(stack, ALICE, "tocsin_pause", wid, "alice-pauses"))
    assert (await reply(stack, "alice-pauses"))["text"] == "Refused: alice does not hold the role deployer:stage"
    await post_click(stack, click_body(stack, CAROL, "tocsin_pause", wid, "carol-pauses"))
    assert (await reply(stack, "carol-pauses"))["text"] == f"Paused `{wid}`."
    assert (await until_paused(dev_env, wid, True)).stage == "canary"
    await post_click(stack, click_body(stack, CAROL, "tocsin_resume", wid, "carol-resumes"))
    assert (await reply(stack, "carol-resumes"))["text"] == f"Resumed `{wid}`."
    await until_paused(dev_env, wid, False)
    await post_click(stack, click_body(stack, CAROL, "tocsin_abort", wid, "carol-aborts"))
    assert (await reply(stack, "carol-aborts"))["text"] == f"Aborted (rolling back) `{wid}`."
    result = await dev_env.client.get_workflow_handle(wid, result_type=DeployResult).result()
    assert result.outcome == "rolled_back", result


async def until_paused(dev_env: WorkflowEnvironment, wid: str, paused: bool) -> DeploymentState:
    deadline = time.monotonic() + 15
    while True:
        state = await dev_env.client.get_workflow_handle(wid).query("state", result_type=DeploymentState)
        if state.paused is paused or time.monotonic() > deadline:
            assert state.paused is paused, state
            return state
        await asyncio.sleep(0.2)
