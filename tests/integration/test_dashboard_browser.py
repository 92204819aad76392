"""The web dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright; nothing is
downloaded): the real gateway served by uvicorn on a free port, against a real dev server and worker playing
``tests/dashboard_scenario.py``.

The page must render the scenario's data, draw the build-time chart, log no console error and raise no
page error, and refresh itself when a new build arrives; its actions show only once signed in with an API token, and then
acknowledge and approve as that identity. A screenshot is saved to
``$TOCSIN_TEST_ARTIFACTS/dashboard.png`` (default: ``build/test-artifacts/dashboard.png`` in the repository,
a folder git ignores).

A missing Chromium or Playwright fails the test with the way to install it: ``make test`` installs both
(``scripts/install-system-deps.sh`` and the ``test`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from temporalio.testing import WorkflowEnvironment

from operations.builds import send_build_event
from operations.config import ConfigStore
from operations.deployments import deployment_state
from starters.gateway import create_app, server
from tests.dashboard_scenario import TOKEN, Scenario, scenario
from tests.helpers import person
from tests.procs import free_port
from workers.settings import Settings
from workflows.pipeline import BuildEvent, pipeline_id

CHROMIUM = os.environ.get("TOCSIN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL = "run `make test` (or scripts/install-system-deps.sh: apt-get install chromium chromium-driver)"


ROOT = Path(__file__).resolve().parents[2]


def _artifacts() -> Path:
    folder = os.environ.get("TOCSIN_TEST_ARTIFACTS")
    path = Path(folder) if folder else ROOT / "build" / "test-artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.asynccontextmanager
async def _gateway(dev_env: WorkflowEnvironment, sc: Scenario) -> AsyncIterator[str]:
    """The real gateway app under uvicorn on a free loopback port; yields its URL."""
    home = sc.config.parent / "gateway"  # the gateway's own audit journal, beside the worker's
    settings = replace(Settings(), task_queue=sc.ctx.task_queue, gateway_token="browser-test-token", home=home)
    port = free_port()
    gw = server(create_app(settings, dev_env.client, ConfigStore(sc.config)), "127.0.0.1", port)
    gw.capture_signals = contextlib.nullcontext  # the test runner owns the signals
    task = asyncio.create_task(gw.serve())
    try:
        for _ in range(200):
            if gw.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert gw.started, "the gateway did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        gw.should_exit = True
        await task


@pytest.mark.timeout(300)  # a scenario, a browser and a self-refresh (every 15 s) on a busy machine
async def test_dashboard_in_headless_chromium(
    dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: the dashboard's browser test needs Debian's chromium; {INSTALL}")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: pip install -e '.[test]' (make test does)")

    shot = _artifacts() / "dashboard.png"
    async with (
        scenario(dev_env.client, tmp_path_factory.mktemp("dashboard-browser")) as sc,
        _gateway(dev_env, sc) as url,
        async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            page.on(
                "console",
                lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None,
            )
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url} {req.failure}"))

            resp = await page.goto(f"{url}/?repo={quote(sc.shop, safe='')}", wait_until="load")
            assert resp is not None and resp.status == 200
            await page.wait_for_selector("#trend-chart circle.point", timeout=15_000)

            main = page.locator(f'tr.pipeline[data-id="{pipeline_id(sc.shop, "main")}"]')
            assert await main.get_attribute("data-status") == "failing"
            assert (await main.locator(".pill").inner_text()).strip() == "failing"
            assert (await main.locator(".rate").inner_text()).startswith("67%")
            assert (await main.locator(".today").inner_text()).strip() == "1"
            assert (await main.locator(".avg").inner_text()).strip() == "1m15s"
            release = page.locator(f'tr.pipeline[data-id="{pipeline_id(sc.shop, "release/1.2")}"]')
            assert await release.get_attribute("data-status") == "passing"
            body = await page.inner_text("body")
            for text in (sc.shop, "release/1.2", "feature/docs", sc.alert, sc.service, "pending_approval", "v2.1"):
                assert text in body, text
            assert "c0ffee3" in await page.inner_text("#failures")

            chart: dict[str, Any] = await page.evaluate(
                """() => {
                    const svg = document.getElementById("trend-chart");
                    return {
                        points: svg.querySelectorAll("circle.point").length,
                        path: (svg.querySelector("path.line") || {getAttribute: () => ""}).getAttribute("d"),
                        sparks: Array.from(document.querySelectorAll("svg.spark path.line")).length,
                        title: document.getElementById("trend-title").textContent,
                    };
                }"""
            )
            assert chart["points"] == 3, chart  # main's three builds: the first pipeline with durations
            assert chart["path"].startswith("M") and chart["path"].count("L") == 2, chart
            assert chart["sparks"] == 2 and sc.shop in chart["title"], chart  # main and release/1.2
            assert await page.locator("button.act").count() == 2  # Acknowledge and Approve, in the markup
            assert await page.locator("button.act:visible").count() == 0  # read-only without signing in
            box = await page.locator("#trend-chart").bounding_box()
            assert box is not None and box["width"] > 100 and box["height"] > 100
            await page.screenshot(path=str(shot), full_page=True)
            print(f"dashboard screenshot: {shot}")

            # Click release/1.2's sparkline: the big chart follows.
            await release.locator("svg.spark").click()
            assert await page.locator("#trend-chart circle.point").count() == 1

            # The page refreshes itself: a green build on main turns its row green without a reload.
            fixed = BuildEvent(repo=sc.shop, branch="main", commit="c0ffee4", status="success", duration_seconds=45)
            await send_build_event(sc.ctx, person("ci"), fixed)
            await page.wait_for_selector(
                f'tr.pipeline[data-id="{pipeline_id(sc.shop, "main")}"][data-status="passing"]', timeout=60_000
            )
            assert await page.locator("#trend-chart circle.point").count() == 1  # still release/1.2's, kept selected

            # Signed in with alice's API token, the actions show and go through /api/v1 as alice.
            await page.click("#signin-open")
            await page.fill("#signin-token", TOKEN)
            await page.click("#signin button[type=submit]")
            await page.wait_for_selector("#who:has-text('signed in as alice')")
            await page.locator(f'button.act[data-act="ack"][data-id="{sc.incident}"]').click()
            await page.wait_for_selector("#action-state:has-text('Acknowledged')")
            await page.locator("tr.incident", has_text="by alice").wait_for(timeout=30_000)
            await page.locator(f'button.act[data-act="approve"][data-id="{sc.deployment}"]').click()
            await page.wait_for_selector("#action-state:has-text('Approved')")
            state = await deployment_state(sc.ctx, sc.deployment)
            assert [(a.by, a.actor.verified if a.actor else None) for a in state.approvals] == [("alice", True)]
            await page.locator(f'button.act[data-id="{sc.deployment}"]').wait_for(state="detached", timeout=30_000)
            await page.screenshot(path=str(shot.with_name("dashboard-signed-in.png")), full_page=True)
            await page.click("#signout")
            assert await page.locator("button.act:visible").count() == 0
            assert problems == [], problems
        finally:
            await browser.close()
    assert shot.exists() and shot.stat().st_size > 10_000
