"""The raw-Temporal baseline's worker, in its own process, as a user's raw worker would run.

It registers the one-activity Slack workflow of :mod:`bench.raw` (the latency floor) and the
trivial entity of :mod:`bench.raw_entity` (the ingest floor: signal-with-start of it is what a raw
Temporal client does per alert). Runs until SIGTERM/SIGINT.

    python -m bench.raw_worker --address HOST:PORT --task-queue QUEUE --slack-url URL
    (the fake Slack's token comes from RAW_SLACK_TOKEN)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

from slack_sdk.web.async_client import AsyncWebClient
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench.raw import RawSlack, RawSlackWorkflow
from bench.raw_entity import RawEntityWorkflow


async def main(address: str, task_queue: str, slack_url: str) -> None:
    """Poll ``task_queue`` until SIGTERM/SIGINT."""
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    raw = RawSlack(AsyncWebClient(token=os.environ.get("RAW_SLACK_TOKEN", ""), base_url=slack_url, retry_handlers=[]))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(
        client, task_queue=task_queue, workflows=[RawSlackWorkflow, RawEntityWorkflow], activities=[raw.post]
    ):
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--slack-url", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.address, args.task_queue, args.slack_url))
