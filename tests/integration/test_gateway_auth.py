"""The gateway fails closed: no ``TOCSIN_GATEWAY_TOKEN``, no unauthenticated webhooks (issue 10, item 8).

``tocsin gateway`` refuses to start without a token unless ``--insecure-no-auth`` is given, which
it says loudly at start and on every unauthenticated webhook it accepts; ``create_app`` refuses
webhooks when no token is configured unless the insecure setting is on.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from operations.config import ConfigStore
from starters.gateway import create_app
from tests.helpers import address_of
from tests.procs import TOCSIN, base_env, free_port, process, wait_http
from workers.settings import Settings

TOKEN = "s3cret-gateway-token"


def am_body(name: str = "GatewayAuthTest") -> dict[str, Any]:
    """A minimal Alertmanager webhook (payload version 4)."""
    return {
        "version": "4",
        "status": "firing",
        "receiver": "tocsin",
        "alerts": [{"status": "firing", "labels": {"alertname": name, "severity": "warning"}}],
    }


async def _post(app: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.post("/webhooks/alertmanager", json=am_body(), headers=headers or {})


def _settings(task_queue: str, **changes: Any) -> Settings:
    return replace(Settings(), task_queue=task_queue, gateway_token=None, **changes)


async def test_create_app_without_token_refuses_webhooks(dev_env: WorkflowEnvironment, task_queue: str) -> None:
    app = create_app(_settings(task_queue), dev_env.client, ConfigStore())
    resp = await _post(app)
    assert resp.status_code == 401
    assert "TOCSIN_GATEWAY_TOKEN" in resp.json()["error"]


async def test_create_app_insecure_accepts_and_warns_on_each_webhook(
    dev_env: WorkflowEnvironment, task_queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(_settings(task_queue, gateway_insecure_no_auth=True), dev_env.client, ConfigStore())
    with caplog.at_level(logging.WARNING, logger="tocsin.gateway"):
        resp = await _post(app)
    assert resp.status_code == 202, resp.text
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("INSECURE" in w and "start" in w for w in warnings), warnings
    assert any("unauthenticated" in w.lower() and "webhook" in w.lower() for w in warnings), warnings


async def test_token_is_required_by_bearer_or_basic(dev_env: WorkflowEnvironment, task_queue: str) -> None:
    settings = replace(Settings(), task_queue=task_queue, gateway_token=TOKEN)
    app = create_app(settings, dev_env.client, ConfigStore())
    assert (await _post(app)).status_code == 401
    assert (await _post(app, {"Authorization": "Bearer nope"})).status_code == 401
    assert (await _post(app, {"Authorization": f"Bearer {TOKEN}"})).status_code == 202
    basic = base64.b64encode(f"alertmanager:{TOKEN}".encode()).decode()
    assert (await _post(app, {"Authorization": f"Basic {basic}"})).status_code == 202
    # the insecure setting never weakens a configured token
    app = create_app(replace(settings, gateway_insecure_no_auth=True), dev_env.client, ConfigStore())
    assert (await _post(app)).status_code == 401


def test_gateway_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    env = base_env(TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    env.pop("TOCSIN_GATEWAY_TOKEN", None)
    try:
        done = subprocess.run(
            [TOCSIN, "gateway", "--port", str(free_port())],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the gateway started without TOCSIN_GATEWAY_TOKEN")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "TOCSIN_GATEWAY_TOKEN" in lines[0] and "--insecure-no-auth" in lines[0]
    # an empty token is no token
    env["TOCSIN_GATEWAY_TOKEN"] = ""
    done = subprocess.run(
        [TOCSIN, "gateway", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "TOCSIN_GATEWAY_TOKEN" in done.stderr


def test_gateway_insecure_no_auth_starts_loudly(dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str) -> None:
    env = base_env(
        TEMPORAL_ADDRESS=address_of(dev_env.client), TOCSIN_TASK_QUEUE=task_queue, TOCSIN_HOME=str(tmp_path / "home")
    )
    env.pop("TOCSIN_GATEWAY_TOKEN", None)
    port = free_port()
    log = tmp_path / "gateway.log"
    with process([TOCSIN, "gateway", "--port", str(port), "--insecure-no-auth"], tmp_path, env, log):
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/healthz")
        assert "INSECURE" in log.read_text(), log.read_text()
        resp = httpx.post(f"{url}/webhooks/alertmanager", json=am_body("InsecureGateway"), timeout=10)
        assert resp.status_code == 202, resp.text
        deadline = time.monotonic() + 5
        while "unauthenticated webhook" not in log.read_text().lower() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "unauthenticated webhook" in log.read_text().lower(), log.read_text()
