"""Gateway: /healthz follows Temporal's health; /metrics is Prometheus exposition."""

from __future__ import annotations

import socket
from dataclasses import replace

import httpx
from temporalio.testing import WorkflowEnvironment

from starters.gateway import create_app
from workers.settings import Settings
from workers.temporal import connect


async def _get(app, path: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.get(path)


async def test_healthz_200_when_temporal_answers(dev_env: WorkflowEnvironment) -> None:
    resp = await _get(create_app(Settings(), dev_env.client), "/healthz")
    assert resp.status_code == 200 and resp.json()["status"] == "ok"


async def test_healthz_503_when_temporal_is_down() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    settings = replace(Settings(), address=address)
    app = create_app(settings)  # connects lazily, so the gateway starts while Temporal is down
    resp = await _get(app, "/healthz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["status"] == "unavailable" and body["temporal"] == address and body["reason"]


async def test_metrics_exposition(dev_env: WorkflowEnvironment) -> None:
    app = create_app(Settings(), dev_env.client)
    await _get(app, "/healthz")
    resp = await _get(app, "/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    assert 'tocsin_gateway_requests_total{route="/healthz",status="200"}' in resp.text


async def test_unknown_route_is_json_404() -> None:
    resp = await _get(create_app(Settings(), await connect(Settings(), lazy=True)), "/nope")
    assert resp.status_code == 404 and resp.json() == {"error": "Not Found", "field": None}


async def test_requests_are_counted_by_route_template_and_status(dev_env: WorkflowEnvironment) -> None:
    """Matched routes by template, unmatched and refused-before-routing requests as ``unmatched``, 413s too."""
    app = create_app(replace(Settings(), gateway_max_body="1KiB", gateway_token="t"), dev_env.client)

    def count(text: str, route: str, status: str) -> float:
        line = f'tocsin_gateway_requests_total{{route="{route}",status="{status}"}} '
        return next((float(x.split(" ")[-1]) for x in text.splitlines() if x.startswith(line)), 0.0)

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            before = (await client.get("/metrics")).text
            assert (await client.get("/nope")).status_code == 404
            big = await client.post("/webhooks/alertmanager", content=b"{" + b" " * 2048 + b"}")
            assert big.status_code == 413
            assert (await client.post("/webhooks/alertmanager", json={})).status_code == 401
            after = (await client.get("/metrics")).text
    for route, status in [("unmatched", "404"), ("unmatched", "413"), ("/webhooks/alertmanager", "401")]:
        assert count(after, route, status) == count(before, route, status) + 1, (route, status)
