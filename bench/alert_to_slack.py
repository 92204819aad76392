"""Alert in (Alertmanager webhook on the gateway) → Slack message out, against a raw one-activity workflow.

One process, one real Temporal dev server, one local fake Slack; the gateway
is served by uvicorn on a local port and receives real HTTP POSTs. Samples are
interleaved with the raw baseline (start workflow → one activity → the same
``chat.postMessage``). Each alert is a new group, so each sample starts a new
incident (``group_wait: 0s``).

    python -m bench.alert_to_slack [--samples N] [--warmup N]
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import yaml
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.worker import Worker

from activities.channels.render import slack_blocks, slack_fallback_text
from bench.common import report, run_cli, start_dev_server, wait_count
from bench.raw import RawSlack, RawSlackWorkflow
from operations.config import ConfigStore
from starters.gateway import create_app, server
from tests.fakes import FakeSlack
from tests.procs import free_port
from workers.main import ActivitySet, build_worker
from workers.settings import Settings
from workflows.policy.incidents import incident_message


async def main(samples: int, warmup: int) -> int:
    home = Path(tempfile.mkdtemp(prefix="tocsin-bench-"))
    with FakeSlack() as slack:
        config_path = home / "tocsin.yaml"
        config_path.write_text(
            yaml.safe_dump(
                {
                    # The fake has no rate limit: measure delivery latency, not Slack's 1 msg/s pacing.
                    "channels": {
                        "chat": {
                            "type": "slack",
                            "token": slack.token,
                            "channel": "#alerts",
                            "api_url": slack.url,
                            "rate_per_second": 1000,
                            "burst": 1000,
                        }
                    },
                    "receivers": [{"name": "chat", "channels": ["chat"]}],
                    "route": {"receiver": "chat", "group_by": ["alertname", "service"], "group_wait": "0s"},
                }
            )
        )
        env = await start_dev_server(home)
        client = env.client
        settings = replace(Settings(), task_queue="bench-tocsin", home=home, gateway_token="bench-token")
        store = ConfigStore(config_path)
        activities = ActivitySet(client, settings, store)
        raw = RawSlack(AsyncWebClient(token=slack.token, base_url=slack.url, retry_handlers=[]))
        sample = incident_message(
            incident="incident/x",
            status="notified",
            severity="critical",
            group_labels={"alertname": "HighErrorRate", "service": "payments"},
            alerts=[
                {
                    "status": "firing",
                    "labels": {"alertname": "HighErrorRate"},
                    "annotations": {"summary": "5xx above 5%"},
                }
            ],
            level=1,
        )
        payload = {"channel": "#alerts", "text": slack_fallback_text(sample), "blocks": slack_blocks(sample)}
        port = free_port()
        gateway = server(create_app(settings, client, store), "127.0.0.1", port)
        gateway.capture_signals = __import__("contextlib").nullcontext  # type: ignore[method-assign]
        tocsin: list[float] = []
        baseline: list[float] = []
        try:
            async with (
                build_worker(client, settings, activities.functions()),
                Worker(client, task_queue="bench-raw", workflows=[RawSlackWorkflow], activities=[raw.post]),
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer bench-token"}
                ) as http,
            ):
                serving = asyncio.create_task(gateway.serve())
                while not gateway.started:
                    await asyncio.sleep(0.01)
                count = 0
                run = uuid.uuid4().hex[:6]
                for i in range(warmup + samples):
                    t0 = time.perf_counter()
                    await client.start_workflow(
                        RawSlackWorkflow.run, payload, id=f"raw/{uuid.uuid4()}", task_queue="bench-raw"
                    )
                    count += 1
                    t_raw = await wait_count(slack, count) - t0
                    body = {
                        "version": "4",
                        "status": "firing",
                        "receiver": "tocsin",
                        "groupKey": f"g{i}",
                        "alerts": [
                            {
                                "status": "firing",
                                "labels": {
                                    "alertname": "HighErrorRate",
                                    "service": f"svc-{run}-{i}",
                                    "severity": "critical",
                                },
                                "annotations": {"summary": "5xx above 5%"},
                                "startsAt": "2026-11-22T00:00:00Z",
                                "endsAt": "0001-01-01T00:00:00Z",
                            }
                        ],
                    }
                    t0 = time.perf_counter()
                    resp = await http.post("/webhooks/alertmanager", json=body)
                    assert resp.status_code == 202, resp.text
                    count += 1
                    t_alert = await wait_count(slack, count) - t0
                    if i >= warmup:
                        baseline.append(t_raw * 1000)
                        tocsin.append(t_alert * 1000)
                gateway.should_exit = True
                await serving
        finally:
            await activities.aclose()
            await env.shutdown()

    report(
        "Alert in → Slack message out", samples, warmup, baseline, {"Alertmanager webhook → incident → Slack": tocsin}
    )
    return 0


if __name__ == "__main__":
    run_cli(main, __doc__ or "")
