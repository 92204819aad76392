"""The web dashboard's view, its JSON and HTML routes, and the badges, against a real dev server and worker.

The scenario (``tests/dashboard_scenario.py``): ``acme/shop-<tag>`` ``main`` builds twice green then red,
``release/1.2`` once green, ``feature/docs`` has only started; an incident is open on ``shop-<tag>`` and a
deployment of it waits for approval.
"""

from __future__ import annotations

import asyncio
import re
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from operations.builds import send_build_event
from operations.config import ConfigStore
from operations.dashboard import collect_dashboard, pipeline_badge
from starters.gateway import create_app
from tests.dashboard_scenario import CI_URL, Scenario, row, scenario
from tests.dashboard_scenario import TOKEN as TOKEN_ALICE
from tests.helpers import ops, person
from workers.settings import Settings
from workflows.pipeline import BuildEvent, TestOutcome, TestSummary, pipeline_id

TOKEN = "dashboard-test-gateway-token"

pytestmark = pytest.mark.timeout(240)  # the module's scenario is played in its first test's setup


@pytest.fixture(scope="module")
async def sc(dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scenario]:
    async with scenario(dev_env.client, tmp_path_factory.mktemp("dashboard")) as played:
        yield played


@pytest.fixture
async def gateway(dev_env: WorkflowEnvironment, sc: Scenario) -> AsyncIterator[httpx.AsyncClient]:
    """The real gateway app (with a webhook token set) over httpx's ASGI transport."""
    home = sc.config.parent / "gateway"  # the gateway's own audit journal, beside the worker's
    settings = replace(Settings(), task_queue=sc.ctx.task_queue, gateway_token=TOKEN, home=home)
    app = create_app(settings, dev_env.client, ConfigStore(sc.config))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            yield client


async def test_view_model_of_the_scenario(sc: Scenario) -> None:
    view = await collect_dashboard(sc.ctx, sc.shop)
    assert [p.id for p in view.pipelines] == [
        pipeline_id(sc.shop, "main"),  # failing first
        pipeline_id(sc.shop, "feature/docs"),  # then unknown
        pipeline_id(sc.shop, "release/1.2"),  # then passing
    ]
    main = row(view, sc.shop, "main")
    assert main.status == "failing" and main.answered and not main.building
    assert main.consecutive_failures == 1 and main.red_since is not None
    assert main.builds_7d == 3 and main.success_rate_7d == pytest.approx(2 / 3)
    assert main.failures_today == 1
    assert main.avg_build_seconds == pytest.approx(75.0)
    assert [(p.seconds, p.status) for p in main.trend] == [(60.0, "success"), (75.0, "success"), (90.0, "failure")]
    assert main.trend[0].at <= main.trend[1].at <= main.trend[2].at
    assert main.last_commit == "c0ffee3" and main.last_url == f"{CI_URL}/3" and main.last_duration_seconds == 90.0

    release = row(view, sc.shop, "release/1.2")
    assert release.status == "passing" and release.success_rate_7d == 1.0 and release.failures_today == 0
    assert [p.seconds for p in release.trend] == [30.0] and release.failures == []

    docs = row(view, sc.shop, "feature/docs")
    assert docs.status == "unknown" and docs.building and docs.trend == [] and docs.success_rate_7d is None

    [failure] = view.recent_failures
    assert (failure.repo, failure.branch, failure.commit, failure.workflow) == (sc.shop, "main", "c0ffee3", "ci")
    assert failure.url == f"{CI_URL}/3" and not failure.flaky

    [incident] = [i for i in view.incidents if i.id == sc.incident]
    assert incident.title == sc.alert and incident.service == sc.service and incident.severity == "error"
    assert incident.level == 1 and incident.status in ("notified", "triggered")
    assert incident.age_seconds is not None and incident.age_seconds >= 0
    assert view.incidents == [i for i in view.incidents if i.service == sc.service]  # filtered by the repo's service

    [deployment] = view.deployments
    assert (deployment.id, deployment.service, deployment.env, deployment.version) == (
        sc.deployment,
        sc.service,
        "staging",
        "v2.1",
    )
    assert deployment.stage == "pending_approval" and deployment.weight == 0 and deployment.answered
    assert view.unanswered == 0 and view.truncated == []


async def test_unfiltered_view_holds_the_scenario_among_other_workflows(sc: Scenario) -> None:
    view = await collect_dashboard(sc.ctx)
    ids = {p.id for p in view.pipelines}
    assert {pipeline_id(sc.shop, b) for b in ("main", "release/1.2", "feature/docs")} <= ids
    assert row(view, sc.shop, "main").status == "failing"
    assert sc.incident in {i.id for i in view.incidents} and sc.deployment in {d.id for d in view.deployments}
    by_short_name = await collect_dashboard(sc.ctx, sc.service)  # shop-<tag>: the repository's last part
    assert {p.id for p in by_short_name.pipelines} == {
        pipeline_id(sc.shop, b) for b in ("main", "release/1.2", "feature/docs")
    }


async def test_a_pipeline_whose_worker_is_gone_is_shown_unanswered_not_waited_for(
    dev_env: WorkflowEnvironment,
) -> None:
    ctx = ops(dev_env.client, f"tq-nobody-{uuid.uuid4().hex[:6]}")  # no worker polls this queue
    repo = f"acme/stuck-{uuid.uuid4().hex[:6]}"
    await send_build_event(ctx, person("ci"), BuildEvent(repo=repo, branch="main", commit="abc1234", status="failure"))
    try:
        deadline = asyncio.get_running_loop().time() + 30
        view = await collect_dashboard(ctx, repo, timeout=1.0)
        while not view.pipelines and asyncio.get_running_loop().time() < deadline:  # visibility lags a start
            await asyncio.sleep(0.2)
            view = await collect_dashboard(ctx, repo, timeout=1.0)
        [stuck] = view.pipelines
        assert stuck.id == pipeline_id(repo, "main") and not stuck.answered and stuck.status == "unknown"
        assert view.unanswered == 1
        assert await pipeline_badge(ctx, repo, "main", timeout=1.0) == "unknown"
    finally:
        await dev_env.client.get_workflow_handle(pipeline_id(repo, "main")).terminate("test over")


async def test_page_renders_the_scenario_without_login(gateway: httpx.AsyncClient, sc: Scenario) -> None:
    resp = await gateway.get("/", params={"repo": sc.shop})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    html = resp.text
    for text in (sc.shop, "release/1.2", "feature/docs", sc.alert, sc.service, "pending_approval", "v2.1", "c0ffee3"):
        assert text in html, text
    assert f'href="{CI_URL}/3"' in html
    assert re.search(r'data-status="failing"', html) and 'data-status="passing"' in html
    assert "67%" in html  # 2 of 3 builds in 7 days
    assert "/static/dashboard.js" in html
    for asset in ("/static/dashboard.js", "/static/dashboard.css"):
        got = await gateway.get(asset)
        assert got.status_code == 200 and got.content, asset
    # /api/v1 itself still wants credentials
    assert (await gateway.get("/api/v1/status")).status_code == 401


async def test_json_view_is_the_same_model(gateway: httpx.AsyncClient, sc: Scenario) -> None:
    resp = await gateway.get("/api/v1/dashboard", params={"repo": sc.shop})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    main = next(p for p in body["pipelines"] if p["branch"] == "main")
    assert main["status"] == "failing" and [p["seconds"] for p in main["trend"]] == [60.0, 75.0, 90.0]
    assert datetime.fromisoformat(body["generated_at"]).tzinfo is not None
    assert [d["id"] for d in body["deployments"]] == [sc.deployment]
    assert (await gateway.get("/api/v1/dashboard", params={"repo": "x" * 201})).json()["field"] == "repo"


async def test_me_names_the_token_and_refuses_without_one(gateway: httpx.AsyncClient) -> None:
    resp = await gateway.get("/api/v1/dashboard/me", headers={"Authorization": f"Bearer {TOKEN_ALICE}"})
    assert resp.status_code == 200 and resp.json() == {"name": "alice", "verified": True, "method": "token"}
    for headers in ({}, {"Authorization": "Bearer tocsin_not-a-token"}):
        refused = await gateway.get("/api/v1/dashboard/me", headers=headers)
        assert refused.status_code == 401 and refused.json()["error"], refused.text
        assert refused.headers["www-authenticate"].startswith("Bearer")


async def _badge(gateway: httpx.AsyncClient, path: str) -> tuple[httpx.Response, str]:
    resp = await gateway.get(f"/badge/{path}")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "image/svg+xml"
    assert resp.headers["cache-control"] == "max-age=60" and resp.headers["etag"]
    found = re.search(r"<title>build: (\w+)</title>", resp.text)
    assert found, resp.text
    return resp, found.group(1)


async def test_badges_passing_failing_unknown(gateway: httpx.AsyncClient, sc: Scenario) -> None:
    resp, status = await _badge(gateway, f"{sc.shop}/main.svg")
    assert status == "failing" and 'fill="#e05d44"' in resp.text
    _, status = await _badge(gateway, f"{sc.shop}/release/1.2.svg")  # a branch with a slash
    assert status == "passing"
    _, status = await _badge(gateway, f"{sc.shop}/feature/docs.svg")  # started, nothing finished yet
    assert status == "unknown"
    resp, status = await _badge(gateway, f"acme/never-built-{sc.tag}/main.svg")
    assert status == "unknown" and 'fill="#9f9f9f"' in resp.text


async def test_badge_etag_answers_304(gateway: httpx.AsyncClient, sc: Scenario) -> None:
    resp, _ = await _badge(gateway, f"{sc.shop}/main.svg")
    again = await gateway.get(f"/badge/{sc.shop}/main.svg", headers={"If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == resp.headers["etag"]
    other = await gateway.get(f"/badge/{sc.shop}/release/1.2.svg", headers={"If-None-Match": resp.headers["etag"]})
    assert other.status_code == 200 and other.headers["etag"] != resp.headers["etag"]


async def test_bad_badge_paths_are_json_4xx(gateway: httpx.AsyncClient) -> None:
    for path, status in (("/badge/onlyrepo.svg", 404), ("/badge/acme/shop/main.png", 404), ("/badge/.svg", 404)):
        resp = await gateway.get(path)
        assert resp.status_code == status and resp.json()["field"] == "path", (path, resp.text)
    resp = await gateway.get("/badge/" + "r" * 300 + "/" + "b" * 200 + ".svg")
    assert resp.status_code == 422 and resp.json()["field"] == "path"


async def test_temporal_down_page_503_badge_unknown(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    app = create_app(replace(Settings(), address=address, gateway_token=TOKEN, home=tmp_path))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
            page = await client.get("/")
            assert page.status_code == 503 and "Temporal unavailable" in page.text
            assert page.headers["content-type"].startswith("text/html")
            api = await client.get("/api/v1/dashboard")
            assert api.status_code == 503 and api.json()["error"].startswith("Temporal unavailable")
            badge = await client.get("/badge/acme/shop/main.svg")
            assert badge.status_code == 200 and "<title>build: unknown</title>" in badge.text


def _run(repo: str, commit: str, status: str, n: int, a: str) -> BuildEvent:
    outcomes = [
        TestOutcome(nodeid="tests.Checkout::test_pay", outcome=a),
        TestOutcome(nodeid="tests.Cart::t", outcome="passed"),
    ]  # type: ignore[arg-type]
    failed = sum(1 for o in outcomes if o.failed)
    tests = TestSummary(total=2, failed=failed, outcomes=outcomes)
    return BuildEvent(repo=repo, branch="main", commit=commit, status=status, url=f"{CI_URL}/{n}", tests=tests)  # type: ignore[arg-type]


async def test_badge_flaky_after_a_build_that_failed_on_a_flaky_test_only(
    dev_env: WorkflowEnvironment, gateway: httpx.AsyncClient, sc: Scenario
) -> None:
    repo = f"acme/flaky-{sc.tag}"
    ci = person("ci")
    # The same commit fails then passes: the test is flaky; the next failure on it alone is a flaky build.
    for event in (
        _run(repo, "f1", "failure", 1, "failed"),
        _run(repo, "f1", "success", 2, "passed"),
        _run(repo, "f2", "failure", 3, "failed"),
    ):
        await send_build_event(sc.ctx, ci, event)
    try:
        status = ""
        for _ in range(200):
            _, status = await _badge(gateway, f"{repo}/main.svg")
            if status == "flaky":
                break
            await asyncio.sleep(0.1)
        assert status == "flaky"
        resp, _ = await _badge(gateway, f"{repo}/main.svg")
        assert 'fill="#fe7d37"' in resp.text
        view = await collect_dashboard(sc.ctx, repo)
        [flaky] = view.recent_failures[:1]
        assert flaky.commit == "f2" and flaky.flaky
    finally:
        await dev_env.client.get_workflow_handle(pipeline_id(repo, "main")).terminate("test over")
