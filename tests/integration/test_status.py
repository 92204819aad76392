"""``tocsin status``: ``--service`` filters pipelines too, and ``--json`` times are ISO 8601."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime

from temporalio.testing import WorkflowEnvironment

from operations.builds import send_build_event
from operations.status import collect_status
from tests.helpers import address_of, cli, ops, person
from workflows.pipeline import BuildEvent


async def test_status_service_filters_pipelines_by_repository(dev_env: WorkflowEnvironment) -> None:
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    ctx = ops(dev_env.client, queue)
    tag = uuid.uuid4().hex[:6]
    for repo in (f"acme/payments-{tag}", f"acme/ledger-{tag}"):
        event = BuildEvent(repo=repo, branch="main", commit="abcdef1", status="started")
        await send_build_event(ctx, person("ci"), event)
    ids: list[str] = []
    for _ in range(100):
        report = await collect_status(ctx, f"payments-{tag}")
        ids = [p["id"] for p in report["pipelines"]]
        if ids:
            break
        await asyncio.sleep(0.1)
    assert ids == [f"pipeline/acme/payments-{tag}/main"]
    full = await collect_status(ctx, f"acme/ledger-{tag}")
    assert [p["id"] for p in full["pipelines"]] == [f"pipeline/acme/ledger-{tag}/main"]


async def test_status_json_times_are_iso_8601(dev_env: WorkflowEnvironment) -> None:
    done = cli("alert", "--name", "StatusJson", "--severity", "warning", address=address_of(dev_env.client))
    assert done.returncode == 0, done.stderr
    for _ in range(100):
        status = cli("status", "--json", address=address_of(dev_env.client))
        report = json.loads(status.stdout)
        if report["incidents"]:
            break
        await asyncio.sleep(0.1)
    created = report["incidents"][0]["created_at"]
    assert "T" in created and datetime.fromisoformat(created).tzinfo is not None
