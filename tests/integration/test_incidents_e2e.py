"""Incidents end to end on a real dev server: gateway webhooks (a real Alertmanager too), CLI actions,
PagerDuty mirroring, a worker killed mid-ladder, and an alert storm."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import signal
import subprocess
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from tests.helpers import address_of, cli, outbox
from tests.procs import TOCSIN, alertmanager_binary, base_env, free_port, process, tocsin_gateway, wait_http
from workflows.incident.workflow import IncidentWorkflow

TOKEN = "gw-secret-token"
PD_SECRET = "pd-webhook-secret"


def write(path: Path, data: dict) -> Path:  # type: ignore[type-arg]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def incident_config(
    tmp: Path, *, group_wait: str = "1s", levels: tuple[str, ...] = ("0s", "3s", "6s", "9s"), **extra: object
) -> Path:
    names = ["oncall", "senior", "cto", "emergency"]
    return write(
        tmp / "tocsin.yaml",
        {
            "channels": {n: {"type": "console"} for n in ["default", *names]},
            "receivers": [{"name": "default", "channels": ["default"]}, *({"name": n, "channels": [n]} for n in names)],
            "route": {
                "receiver": "default",
                "group_by": ["alertname", "service"],
                "group_wait": group_wait,
                "group_interval": "2s",
                "routes": [{"matchers": ['severity="critical"'], "receiver": "oncall", "escalation": "fast"}],
            },
            "escalation_policies": {
                "fast": {"levels": [{"after": a, "receiver": n} for a, n in zip(levels, names, strict=False)]}
            },
            **extra,
        },
    )


@pytest.fixture
def stack(dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str):  # type: ignore[no-untyped-def]
    """A real `tocsin worker` and `tocsin gateway` against the dev server, with a console config."""
    config = incident_config(tmp_path)
    metrics_port = free_port()
    env = base_env(
        TEMPORAL_ADDRESS=address_of(dev_env.client),
        TOCSIN_TASK_QUEUE=task_queue,
        TOCSIN_CONFIG=str(config),
        TOCSIN_HOME=str(tmp_path / ".tocsin"),
        TOCSIN_GATEWAY_TOKEN=TOKEN,
        PAGERDUTY_WEBHOOK_SECRET=PD_SECRET,
    )
    with (
        process([TOCSIN, "worker", "--metrics-port", str(metrics_port)], tmp_path, env, tmp_path / "worker.log"),
        tocsin_gateway(tmp_path, env) as url,
    ):
        yield {
            "url": url,
            "env": env,
            "home": tmp_path / ".tocsin",
            "config": config,
            "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
        }


def am_payload(alerts: list[dict], status: str = "firing") -> dict:  # type: ignore[type-arg]
    return {
        "version": "4",
        "groupKey": '{}:{alertname="x"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "tocsin",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://am",
        "alerts": alerts,
    }


def am_alert(name: str, service: str, severity: str = "critical", status: str = "firing") -> dict:  # type: ignore[type-arg]
    return {
        "status": status,
        "labels": {"alertname": name, "service": service, "severity": severity},
        "annotations": {"summary": f"{name} on {service}"},
        "startsAt": "2026-11-22T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom/graph",
        "fingerprint": "",
    }


async def wait_for(predicate, timeout: float = 30, step: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(step)
    raise AssertionError("timed out")


def sent(home: Path, wid: str, prefix: str = "rung-") -> list[str]:
    return [r["channel"] for r in outbox(home) if r["key"].startswith(f"{wid}/{prefix}")]


async def test_webhook_auth_and_bad_input(stack) -> None:  # type: ignore[no-untyped-def]
    url = stack["url"] + "/webhooks/alertmanager"
    async with httpx.AsyncClient() as http:
        body = am_payload([am_alert("X", "svc")])
        assert (await http.post(url, json=body)).status_code == 401
        assert (await http.post(url, json=body, headers={"Authorization": "Bearer wrong"})).status_code == 401
        resp = await http.post(url, content=b"{not json", headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status_code == 400 and resp.json() == {"error": "body is not JSON", "field": None}
        resp = await http.post(url, json={"version": "3", "alerts": []}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status_code == 422 and resp.json()["error"].startswith("not an Alertmanager webhook")
        assert {d["field"] for d in resp.json()["details"]} >= {"version", "status", "alerts"}
        basic = base64.b64encode(f"alertmanager:{TOKEN}".encode()).decode()
        resp = await http.post(url, json=body, headers={"Authorization": f"Basic {basic}"})
        assert resp.status_code == 202 and resp.json()["alerts"] == 1


async def test_webhook_drives_incident_and_cli_actions(dev_env: WorkflowEnvironment, stack) -> None:  # type: ignore[no-untyped-def]
    service = f"pay-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient() as http:
        body = am_payload([am_alert("HighErrorRate", service)])
        first = (await http.post(stack["url"] + "/webhooks/alertmanager", json=body, headers=headers)).json()
        again = (await http.post(stack["url"] + "/webhooks/alertmanager", json=body, headers=headers)).json()
    [wid] = first["incidents"]
    assert again["incidents"] == [wid], "a retried webhook lands on the same incident"
    await wait_for(lambda: _has(stack["home"], wid, 2))
    query = (
        f"TocsinKind = 'incident' AND TocsinSeverity = 'critical' AND TocsinService = '{service}' "
        "AND TocsinStatus IN ('triggered', 'notified', 'acknowledged')"
    )

    async def open_critical() -> list[str]:
        return [wf.id async for wf in dev_env.client.list_workflows(query)]

    assert await wait_for(open_critical) == [wid], "the Temporal UI lists open critical incidents by query"
    env = {"TOCSIN_TASK_QUEUE": stack["env"]["TOCSIN_TASK_QUEUE"]}
    done = await asyncio.to_thread(
        cli, "ack", wid, "--by", "alice", "--note", "looking", address=address_of(dev_env.client), env=env
    )
    assert done.returncode == 0 and done.stdout.strip() == f"{wid}: acknowledged", done.stderr
    levels_at_ack = sent(stack["home"], wid)
    await asyncio.sleep(7)
    assert sent(stack["home"], wid) == levels_at_ack, "the ladder stops on acknowledge"
    done = await asyncio.to_thread(
        cli, "resolve", wid, "--by", "alice", "--note", "fixed", address=address_of(dev_env.client), env=env
    )
    assert done.returncode == 0, done.stderr
    final = await dev_env.client.get_workflow_handle_for(IncidentWorkflow.run, wid).result()
    assert final.resolved_by == "alice" and final.acknowledged_by == "alice"
    done = await asyncio.to_thread(cli, "ack", wid, "--by", "bob", address=address_of(dev_env.client), env=env)
    assert done.returncode == 1 and "refused" in done.stderr and "resolved" in done.stderr
    done = await asyncio.to_thread(
        cli, "ack", "incident/nope", "--by", "bob", address=address_of(dev_env.client), env=env
    )
    assert done.returncode == 2 and "no incident incident/nope" in done.stderr
    status = await asyncio.to_thread(cli, "status", "--json", address=address_of(dev_env.client), env=env)
    report = json.loads(status.stdout)
    assert report["mttr_seconds"]["count"] >= 1 and report["mtta_seconds"]["count"] >= 1


async def _has(home: Path, wid: str, n: int) -> bool:
    return len(sent(home, wid)) >= n


async def test_resolved_webhook_resolves_and_tells_everyone(dev_env: WorkflowEnvironment, stack) -> None:  # type: ignore[no-untyped-def]
    service = f"db-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient() as http:
        resp = await http.post(
            stack["url"] + "/webhooks/alertmanager", json=am_payload([am_alert("DiskFull", service)]), headers=headers
        )
        [wid] = resp.json()["incidents"]
        await wait_for(lambda: _has(stack["home"], wid, 2))
        await http.post(
            stack["url"] + "/webhooks/alertmanager",
            json=am_payload([am_alert("DiskFull", service, status="resolved")], "resolved"),
            headers=headers,
        )
    final = await dev_env.client.get_workflow_handle_for(IncidentWorkflow.run, wid).result()
    assert final.status == "resolved" and final.resolved_by == "alertmanager"
    notified = set(sent(stack["home"], wid))
    told = set(sent(stack["home"], wid, "resolved-"))
    assert notified and told == notified
    metrics = httpx.get(stack["metrics"]).text
    assert 'tocsin_incident_mttr_seconds_count{service="' + service + '",severity="critical"} 1.0' in metrics


async def test_pagerduty_webhook_signature_and_mirroring(dev_env: WorkflowEnvironment, stack) -> None:  # type: ignore[no-untyped-def]
    done = await asyncio.to_thread(
        cli,
        "alert",
        "--name",
        "Latency",
        "--severity",
        "critical",
        "--service",
        f"api-{uuid.uuid4().hex[:6]}",
        address=address_of(dev_env.client),
        env={"TOCSIN_TASK_QUEUE": stack["env"]["TOCSIN_TASK_QUEUE"], "TOCSIN_CONFIG": str(stack["config"])},
    )
    assert done.returncode == 0, done.stderr
    wid = done.stdout.strip()
    body = json.dumps(
        {
            "event": {
                "id": "01",
                "event_type": "incident.acknowledged",
                "resource_type": "incident",
                "occurred_at": "2026-11-22T00:00:00Z",
                "agent": {"type": "user_reference", "summary": "Pat Oncall"},
                "data": {"type": "incident", "id": "Q1", "incident_key": wid},
            }
        }
    ).encode()
    good = "v1=" + hmac.new(PD_SECRET.encode(), body, hashlib.sha256).hexdigest()
    url = stack["url"] + "/webhooks/pagerduty"
    async with httpx.AsyncClient() as http:
        assert (await http.post(url, content=body, headers={"X-PagerDuty-Signature": "v1=deadbeef"})).status_code == 403
        assert (await http.post(url, content=body)).status_code == 403
        bad_body = b"[]"
        sig = "v1=" + hmac.new(PD_SECRET.encode(), bad_body, hashlib.sha256).hexdigest()
        assert (await http.post(url, content=bad_body, headers={"X-PagerDuty-Signature": sig})).status_code == 400
        resp = await http.post(url, content=body, headers={"X-PagerDuty-Signature": f"v1=00ff,{good}"})
    assert resp.status_code == 200 and resp.json() == {"status": "acknowledged", "incident": wid}
    state = await dev_env.client.get_workflow_handle_for(IncidentWorkflow.run, wid).query(IncidentWorkflow.state)
    assert state.acknowledged_by == "pagerduty:Pat Oncall"


async def test_worker_killed_mid_ladder_loses_and_doubles_nothing(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str
) -> None:
    config = incident_config(tmp_path)
    env = base_env(
        TEMPORAL_ADDRESS=address_of(dev_env.client),
        TOCSIN_TASK_QUEUE=task_queue,
        TOCSIN_CONFIG=str(config),
        TOCSIN_HOME=str(tmp_path / ".tocsin"),
    )
    home = tmp_path / ".tocsin"
    worker = subprocess.Popen(
        [TOCSIN, "worker"], cwd=tmp_path, env=env, stdout=(tmp_path / "w1.log").open("wb"), stderr=subprocess.STDOUT
    )
    try:
        done = await asyncio.to_thread(
            cli,
            "alert",
            "--name",
            "Outage",
            "--severity",
            "critical",
            "--service",
            "core",
            address=address_of(dev_env.client),
            env={"TOCSIN_TASK_QUEUE": task_queue, "TOCSIN_CONFIG": str(config)},
        )
        wid = done.stdout.strip()
        await wait_for(lambda: _has(home, wid, 1))
        worker.send_signal(signal.SIGKILL)  # crash: no graceful shutdown
        worker.wait()
        await asyncio.sleep(8)  # L2 (3s) and L3 (6s) fire while no worker runs
        assert sent(home, wid) == ["oncall"]
    finally:
        if worker.poll() is None:
            worker.kill()
    with process([TOCSIN, "worker"], tmp_path, env, tmp_path / "w2.log"):
        await wait_for(lambda: _has(home, wid, 4), timeout=40)
        await asyncio.sleep(3)
    per_level = Counter(r["key"].split("/")[2] for r in outbox(home) if r["key"].startswith(f"{wid}/rung-"))
    assert per_level == {"rung-0": 1, "rung-1": 1, "rung-2": 1, "rung-3": 1}
    assert sent(home, wid) == ["oncall", "senior", "cto", "emergency"]


async def test_real_alertmanager_fires_and_resolves(dev_env: WorkflowEnvironment, stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    am_port, cluster_port = free_port(), free_port()
    am_config = write(
        tmp_path / "alertmanager.yml",
        {
            "route": {
                "receiver": "tocsin",
                "group_by": ["alertname", "service"],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "tocsin",
                    "webhook_configs": [
                        {
                            "url": stack["url"] + "/webhooks/alertmanager",
                            "send_resolved": True,
                            "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}},
                        }
                    ],
                }
            ],
        },
    )
    args = [
        alertmanager_binary(),
        f"--config.file={am_config}",
        f"--storage.path={tmp_path / 'am'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        f"--cluster.listen-address=127.0.0.1:{cluster_port}",
        "--cluster.peer-timeout=1s",
        "--log.level=warn",
    ]
    service = f"checkout-{uuid.uuid4().hex[:6]}"
    labels = {"alertname": "CriticalErrorRate", "service": service, "severity": "critical"}
    with process(args, tmp_path, base_env(), tmp_path / "am.log"):
        api = f"http://127.0.0.1:{am_port}/api/v2"
        wait_http(f"http://127.0.0.1:{am_port}/-/ready")
        now = datetime.now(UTC)
        async with httpx.AsyncClient() as http:
            resp = await http.post(
                f"{api}/alerts",
                json=[
                    {
                        "labels": labels,
                        "annotations": {"summary": "5xx above 5%"},
                        "startsAt": now.isoformat(),
                        "endsAt": (now + timedelta(minutes=10)).isoformat(),
                        "generatorURL": "http://prometheus/graph",
                    }
                ],
            )
            assert resp.status_code == 200

            async def incident() -> list[str]:
                found = [
                    wf.id
                    async for wf in dev_env.client.list_workflows(
                        f"TocsinKind = 'incident' AND TocsinService = '{service}'"
                    )
                ]
                return found

            [wid] = await wait_for(incident, timeout=40)
            await wait_for(lambda: _has(stack["home"], wid, 1), timeout=30)
            # Resolve it the way Prometheus does: the same alert with endsAt in the past.
            resp = await http.post(
                f"{api}/alerts",
                json=[
                    {
                        "labels": labels,
                        "annotations": {"summary": "5xx above 5%"},
                        "startsAt": now.isoformat(),
                        "endsAt": datetime.now(UTC).isoformat(),
                        "generatorURL": "http://prometheus/graph",
                    }
                ],
            )
            assert resp.status_code == 200
            final = await asyncio.wait_for(
                dev_env.client.get_workflow_handle_for(IncidentWorkflow.run, wid).result(), timeout=60
            )
    assert final.status == "resolved" and final.resolved_by == "alertmanager"
    assert final.alerts and all(a.status == "resolved" for a in final.alerts.values())
    assert "oncall" in sent(stack["home"], wid, "resolved-")


async def test_alert_storm_is_grouped_and_nothing_is_lost(dev_env: WorkflowEnvironment, stack) -> None:  # type: ignore[no-untyped-def]
    """1,000 alerts in 100 groups (5 names x 20 services), posted as Alertmanager does: one webhook per group."""
    run = uuid.uuid4().hex[:6]
    groups: dict[tuple[str, str], list[dict]] = {}  # type: ignore[type-arg]
    for i in range(1000):
        name, service = f"Alert{i % 5}", f"storm-{run}-{(i // 5) % 20}"
        alert = am_alert(name, service, severity="warning") | {"fingerprint": f"{run}-{i}"}
        alert["labels"] = {**alert["labels"], "instance": f"host-{i}"}
        groups.setdefault((name, service), []).append(alert)
    assert len(groups) == 100 and sum(map(len, groups.values())) == 1000
    headers = {"Authorization": f"Bearer {TOKEN}"}
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=10)) as http:

        async def post(batch: list[dict]) -> None:  # type: ignore[type-arg]
            resp = await http.post(stack["url"] + "/webhooks/alertmanager", json=am_payload(batch), headers=headers)
            statuses[resp.status_code] += 1

        await asyncio.gather(*(post(batch) for batch in groups.values()))
    print(f"storm: 1000 alerts in 100 webhooks accepted in {time.monotonic() - started:.1f}s")
    assert statuses == {202: 100}, statuses

    async def counted() -> int | bool:
        ids = [
            wf.id
            async for wf in dev_env.client.list_workflows(
                f"TocsinKind = 'incident' AND TocsinService STARTS_WITH 'storm-{run}-'"
            )
        ]
        if len(ids) < 100:
            return False
        total = 0
        for wid in ids:
            st = await dev_env.client.get_workflow_handle_for(IncidentWorkflow.run, wid).query(IncidentWorkflow.state)
            total += len(st.alerts)
        return total if total == 1000 else False

    assert await wait_for(counted, timeout=120, step=1) == 1000, "every alert is in exactly one incident"
