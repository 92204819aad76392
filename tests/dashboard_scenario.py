"""The dashboard tests' scenario: builds on two branches (one failing), a started-only pipeline, an open
incident and a deployment waiting for approval, all through the real operations, on a real dev server with
a real Tocsin worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from temporalio.client import Client
from temporalio.service import RPCError

from operations import Context
from operations.alerts import raise_alert
from operations.auth import hash_token, new_token
from operations.builds import send_build_event
from operations.dashboard import Dashboard, PipelineView, collect_dashboard
from operations.deployments import start_deployment
from tests.helpers import ops, person, tocsin_worker
from workflows.deployment import DeployInput
from workflows.pipeline import BuildEvent, pipeline_id

CI_URL = "https://ci.example.test/runs"


@dataclass
class Scenario:
    """What was sent, and the names to look for."""

    ctx: Context
    config: Path
    tag: str
    shop: str
    """``acme/shop-<tag>``: ``main`` has two successes then a failure; ``release/1.2`` one success;
    ``feature/docs`` only a ``started`` event."""
    service: str
    """``shop-<tag>``: the incident's and the deployment's service."""
    alert: str
    incident: str = ""
    deployment: str = ""
    durations: list[float] = field(default_factory=lambda: [60.0, 75.0, 90.0])
    """Of ``shop/main``'s three builds, in order."""

    def ids(self) -> list[str]:
        return [
            pipeline_id(self.shop, "main"),
            pipeline_id(self.shop, "release/1.2"),
            pipeline_id(self.shop, "feature/docs"),
            self.incident,
            self.deployment,
        ]


TOKEN = new_token()
"""alice's API token (``users`` in the scenario's config): a responder, and an approver of staging."""


def _config(home: Path) -> Path:
    path = home / "tocsin.yaml"
    data = {
        "users": [
            {"name": "alice", "roles": ["responder"], "tokens": [{"id": "dashboard", "sha256": hash_token(TOKEN)}]}
        ],
        "auth": {"allow_unverified": True},  # the scenario's CI and people act unverified, as the direct CLI does
        "channels": {"console": {"type": "console"}},
        "receivers": [{"name": "default", "channels": ["console"]}],
        "route": {
            "receiver": "default",
            "group_by": ["alertname", "service"],
            "group_wait": "0s",
            "escalation": "default",
        },
        "escalation_policies": {"default": {"levels": [{"after": "0m", "receiver": "default"}]}},
        "environments": {"staging": {"approvers": ["alice"], "required_approvals": 1, "approval_timeout": "2h"}},
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


async def _builds(sc: Scenario) -> None:
    ci = person("ci")
    statuses = ["success", "success", "failure"]
    for n, (status, seconds) in enumerate(zip(statuses, sc.durations, strict=True), start=1):
        event = BuildEvent(
            repo=sc.shop,
            branch="main",
            commit=f"c0ffee{n}",
            status=status,  # type: ignore[arg-type]
            url=f"{CI_URL}/{n}",
            duration_seconds=seconds,
        )
        await send_build_event(sc.ctx, ci, event)
    release = BuildEvent(repo=sc.shop, branch="release/1.2", commit="beef001", status="success", duration_seconds=30)
    await send_build_event(sc.ctx, ci, release)
    started = BuildEvent(repo=sc.shop, branch="feature/docs", commit="d0c5001", status="started")
    await send_build_event(sc.ctx, ci, started)


def _ready(view: Dashboard, sc: Scenario) -> bool:
    rows = {p.id: p for p in view.pipelines}
    main = rows.get(pipeline_id(sc.shop, "main"))
    release = rows.get(pipeline_id(sc.shop, "release/1.2"))
    docs = rows.get(pipeline_id(sc.shop, "feature/docs"))
    return (
        main is not None
        and main.status == "failing"
        and len(main.trend) == len(sc.durations)
        and release is not None
        and release.status == "passing"
        and len(release.trend) == 1
        and docs is not None
        and docs.building
        and any(i.id == sc.incident and i.level >= 1 for i in view.incidents)
        and any(d.id == sc.deployment and d.stage == "pending_approval" for d in view.deployments)
    )


async def settled(sc: Scenario, timeout: float = 60) -> Dashboard:
    """The dashboard (of the scenario's repositories only) once every event has been processed."""
    deadline = time.monotonic() + timeout
    view = await collect_dashboard(sc.ctx, sc.shop)
    while not _ready(view, sc):
        if time.monotonic() > deadline:
            raise AssertionError(f"the scenario did not settle in {timeout}s: {view.model_dump_json(indent=1)}")
        await asyncio.sleep(0.2)
        view = await collect_dashboard(sc.ctx, sc.shop)
    return view


def row(view: Dashboard, repo: str, branch: str) -> PipelineView:
    [found] = [p for p in view.pipelines if p.id == pipeline_id(repo, branch)]
    return found


@contextlib.asynccontextmanager
async def scenario(client: Client, home: Path) -> AsyncIterator[Scenario]:
    """Run a worker, play the scenario, wait until the dashboard shows it; clean its workflows up after."""
    tag = uuid.uuid4().hex[:6]
    config = _config(home)
    queue = f"tq-dash-{tag}"
    ctx = ops(client, queue, config)
    sc = Scenario(
        ctx=ctx,
        config=config,
        tag=tag,
        shop=f"acme/shop-{tag}",
        service=f"shop-{tag}",
        alert=f"ShopCheckoutDown{tag}",
    )
    async with tocsin_worker(client, queue, home, config):
        try:
            await _builds(sc)
            [sc.incident] = await raise_alert(
                ctx, person("ops"), sc.alert, "error", {"service": sc.service}, summary="checkout answers 500"
            )
            handle, _ = await start_deployment(
                ctx, person("dave"), DeployInput(service=sc.service, env="staging", version="v2.1", by="dave")
            )
            sc.deployment = handle.id
            await settled(sc)
            yield sc
        finally:
            for wid in sc.ids():
                if wid:
                    with contextlib.suppress(RPCError):
                        await client.get_workflow_handle(wid).terminate("dashboard test over")
