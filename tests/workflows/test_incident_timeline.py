"""The incident's chat timeline and PagerDuty mirroring, against local fakes (time-skipping server)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from operations import incidents
from operations.alerts import dispatch_alerts, fingerprint
from tests.fakes import FakeSlack
from tests.fakes.pagerduty import FakePagerDuty
from tests.helpers import ops, person, tocsin_worker
from workflows.incident.models import Alert
from workflows.incident.workflow import IncidentWorkflow


async def until(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


async def test_one_slack_message_edited_with_a_thread_and_pagerduty_mirrored(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    with FakeSlack() as slack, FakePagerDuty() as pd:
        cfg = write_config(
            {
                "channels": {
                    "chat": {"type": "slack", "token": slack.token, "channel": "C0INCIDENTS", "api_url": slack.url},
                    "pager": {"type": "pagerduty", "routing_key": pd.routing_key, "api_url": pd.url},
                },
                "receivers": [{"name": "oncall", "channels": ["chat", "pager"]}],
                "route": {"receiver": "oncall", "group_by": ["alertname", "service"], "group_wait": "10s"},
            }
        )
        labels = {"alertname": "CriticalErrorRate", "service": f"pay-{task_queue}", "severity": "critical"}
        alert = Alert(fingerprint=fingerprint(labels), labels=labels, annotations={"summary": "5xx at 12%"})
        async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
            [wid] = await dispatch_alerts(ops(time_env.client, task_queue, cfg), [alert], source="t")
            await time_env.sleep(timedelta(seconds=11))
            await until(lambda: len(slack.messages) == 1 and len(pd.events) == 1)
            await incidents.acknowledge(ops(time_env.client, task_queue), person("alice", via="slack"), wid)
            await until(lambda: len(pd.events) == 2 and len(slack.messages) == 2)
            await incidents.resolve(ops(time_env.client, task_queue), person("alice"), wid, "fixed")
            final = await time_env.client.get_workflow_handle_for(IncidentWorkflow.run, wid).result()
        main, *replies = slack.messages
        posts = [r for r in slack.requests if r.method == "chat.postMessage"]
        updates = [r for r in slack.requests if r.method == "chat.update"]
        events = pd.events
    assert final.status == "resolved"
    # One top-level message per incident, edited in place; the story goes in its thread.
    assert [r.body.get("thread_ts") for r in posts] == [None, main["ts"], main["ts"]]
    assert [r.body["ts"] for r in updates] == [main["ts"], main["ts"]]
    assert main["blocks"][0]["text"]["text"].startswith("[RESOLVED]")
    assert [m["text"] for m in replies] == ["Acknowledged by alice", "Resolved by alice — fixed"]
    # PagerDuty: trigger → acknowledge → resolve, all with dedup_key = incident id.
    assert [(e["event_action"], e["dedup_key"]) for e in events] == [
        ("trigger", wid),
        ("acknowledge", wid),
        ("resolve", wid),
    ]
    assert events[0]["payload"]["severity"] == "critical"
