"""The raw-Temporal baseline: one workflow, one activity, the same Slack call."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from slack_sdk.web.async_client import AsyncWebClient


class RawSlack:
    """Holds one slack-sdk client, as a well-written raw worker would."""

    def __init__(self, client: AsyncWebClient):
        self.client = client

    @activity.defn(name="raw_post")
    async def post(self, payload: dict[str, Any]) -> str:
        resp = await self.client.chat_postMessage(**payload)
        return str(resp["ts"])


@workflow.defn(name="RawSlackWorkflow")
class RawSlackWorkflow:
    @workflow.run
    async def run(self, payload: dict[str, Any]) -> str:
        return await workflow.execute_activity(
            "raw_post", payload, start_to_close_timeout=timedelta(seconds=30), result_type=str
        )
