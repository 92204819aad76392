"""Secrets are redacted at the door: none reaches workflow history (nor the console outbox).

Each test goes through an operation, as the CLI and the gateway do, against the time-skipping
server, then reads the workflow's whole history (every payload decoded: inputs, signals, updates,
activity inputs and results) and searches it for the secrets. ``audit export`` and the worker's
log are made from that history, so what is not in it cannot leak there either.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from operations import deployments, incidents
from operations.alerts import dispatch_alerts, fingerprint
from operations.builds import send_build_event, send_notification
from tests.helpers import ops, outbox, person, tocsin_worker
from workflows.deployment import DeployInput
from workflows.incident import Alert
from workflows.models import Action, Link, Message, MessageField
from workflows.pipeline import BuildEvent, TestFailure, TestSummary

PASSWORD = "hunter2-pw"
URL_PASSWORD = "ci-b0t-pw"
TOKEN = "tok-9f8e7d6c"
CRED_URL = f"https://ci-bot:{URL_PASSWORD}@ci.example.com/run/1?access_token={TOKEN}&page=2"
SECRETS = (PASSWORD, URL_PASSWORD, TOKEN)


def _decoded(node: Any, out: list[str]) -> None:
    """Every string of a history's JSON, with payload ``data`` (base64) decoded."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "data" and isinstance(value, str):
                try:
                    out.append(base64.b64decode(value).decode("utf-8", "replace"))
                except ValueError:
                    out.append(value)
            else:
                _decoded(value, out)
    elif isinstance(node, list):
        for item in node:
            _decoded(item, out)
    elif isinstance(node, str):
        out.append(node)


async def history_text(handle: WorkflowHandle[Any, Any]) -> str:
    """The workflow's history as searchable text (raw JSON plus every decoded payload)."""
    raw = (await handle.fetch_history()).to_json()
    texts: list[str] = [raw]
    _decoded(json.loads(raw), texts)
    return "\n".join(texts)


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


async def until(predicate: Any, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


async def test_build_event_url_author_and_failures_never_enter_history(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    event = BuildEvent(
        repo=f"acme/{task_queue}",
        branch="main",
        commit="4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        status="failure",
        url=CRED_URL,
        author=f"alice password={PASSWORD}",
        tests=TestSummary(
            total=3, failed=1, failures=[TestFailure(name="test_login", message=f"expected token={TOKEN}")]
        ),
    )
    async with tocsin_worker(time_env.client, task_queue, tmp_path):
        wid = await send_build_event(ops(time_env.client, task_queue), person("ci"), event)
        await until(lambda: len(outbox(tmp_path)) >= 1)
        history = await history_text(time_env.client.get_workflow_handle(wid))
    assert leaks(history) == [] and "REDACTED" in history
    sent = json.dumps(outbox(tmp_path))
    assert leaks(sent) == [] and "REDACTED" in sent
    assert "https://ci-bot:REDACTED@ci.example.com/run/1?access_token=REDACTED&page=2" in history


async def test_notification_text_links_and_buttons_never_enter_history(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    message = Message(
        title=f"Rotate password={PASSWORD}",
        text=f"dsn postgres://app:{URL_PASSWORD}@db/app",
        fields=[MessageField(title="Token", value=TOKEN)],
        links=[Link(text="run", url=CRED_URL)],
        actions=[Action(action_id="open", text="Open", url=CRED_URL)],
        labels={"alertname": "HighPasswd", "password_reset_latency": "5"},
    )
    async with tocsin_worker(time_env.client, task_queue, tmp_path):
        wid = await send_notification(ops(time_env.client, task_queue), person("ops"), "console", message)
        handle = time_env.client.get_workflow_handle(wid)
        await handle.result()
        history = await history_text(handle)
    assert leaks(history) == []
    assert "HighPasswd" in history and "password_reset_latency" in history  # no over-redaction
    [record] = outbox(tmp_path)
    assert leaks(json.dumps(record)) == []


async def test_deployment_reason_link_and_control_reason_never_enter_history(
    time_env: WorkflowEnvironment, task_queue: str
) -> None:
    ctx = ops(time_env.client, task_queue)
    request = DeployInput(
        service=f"svc-{task_queue}",
        env="dev",
        version="v1",
        by="dave",
        changes_url=CRED_URL,
        emergency=True,
        reason=f"hotfix, the old password={PASSWORD} leaked",
    )
    handle, started = await deployments.start_deployment(ctx, person("dave"), request)
    try:
        assert started
        await deployments.control(ctx, person("dave"), handle.id, "pause", reason=f"see token={TOKEN}")
        history = await history_text(handle)
    finally:
        try:
            await handle.terminate("test over")
        except RPCError:
            pass
    assert leaks(history) == [] and "REDACTED" in history


async def test_incident_note_never_enters_history(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    labels = {"alertname": "HighPasswd", "service": f"svc-{task_queue}", "severity": "warning"}
    alert = Alert(fingerprint=fingerprint(labels), labels=labels, starts_at=datetime.now(UTC))
    ctx = ops(time_env.client, task_queue)
    async with tocsin_worker(time_env.client, task_queue, tmp_path):
        [wid] = await dispatch_alerts(ctx, [alert], source="test")
        try:
            await incidents.acknowledge(ctx, person("alice"), wid, f"rotated password={PASSWORD} via {CRED_URL}")
            history = await history_text(time_env.client.get_workflow_handle(wid))
        finally:
            await time_env.client.get_workflow_handle(wid).terminate("test over")
    assert leaks(history) == [] and "REDACTED" in history and "HighPasswd" in history


async def test_alert_labels_annotations_and_generator_url_never_enter_history(
    fresh_time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    # Its own time-skipping server: workflows earlier tests left running (the deploy lock, the pipeline
    # entity) would otherwise hold up the group_wait skip below.
    time_env = fresh_time_env
    labels = {
        "alertname": "HighPasswd",
        "service": f"svc-{task_queue}",
        "severity": "warning",
        "password_reset_latency": "5",
        "dsn": f"postgres://app:{URL_PASSWORD}@db/app",
    }
    alert = Alert(
        fingerprint=fingerprint(labels),
        labels=labels,
        annotations={"summary": f"probe failed: password={PASSWORD}", "runbook_url": CRED_URL},
        starts_at=datetime.now(UTC),
        generator_url=f"http://prom.example.com/graph?g0.expr=up&g0.tab=1&token={TOKEN}",
    )
    ctx = ops(time_env.client, task_queue)
    async with tocsin_worker(time_env.client, task_queue, tmp_path):
        [wid] = await dispatch_alerts(ctx, [alert], source="test")
        handle = time_env.client.get_workflow_handle(wid)
        try:
            await time_env.sleep(timedelta(seconds=31))  # group_wait: the first notification goes out
            await until(lambda: len(outbox(tmp_path)) >= 1)
            history = await history_text(handle)
        finally:
            await handle.terminate("test over")
    assert leaks(history) == [] and "REDACTED" in history
    assert "HighPasswd" in history and "password_reset_latency" in history
    assert leaks(json.dumps(outbox(tmp_path))) == []
