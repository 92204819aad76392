"""``tocsin metrics`` direct and remote (``GET /api/v1/metrics``), and the gateway's ``/metrics``, on a seeded journal.

The audit journal under ``TOCSIN_HOME`` is filled with a known history (builds, three deployments of
``pay`` to prod — one rolled back —, an incident); the real CLI, the real gateway and its Prometheus
exposition must all tell the same figures. Bad input exits 2 naming the field (CLI) or answers 422
naming it (API).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from operations.auth import hash_token, new_token
from operations.journal import open_journal
from tests.helpers import address_of, cli
from tests.procs import base_env, tocsin_gateway
from workflows.audit import JournalEntry

NOW = datetime.now(UTC).replace(microsecond=0)


def history() -> list[JournalEntry]:
    rows: list[tuple[float, str, str, dict[str, Any]]] = [
        (300, "build.reported", "pipeline/acme/pay/main", {"repo": "acme/pay", "branch": "main", "commit": "aaaaaaa1", "status": "success", "duration_seconds": 100}),
        (290, "build.reported", "pipeline/acme/pay/main", {"repo": "acme/pay", "branch": "main", "commit": "aaaaaaa2", "status": "failure"}),
        (280, "build.reported", "pipeline/acme/pay/main", {"repo": "acme/pay", "branch": "main", "commit": "aaaaaaa2", "status": "success", "duration_seconds": 200}),
        (240, "deployment.requested", "deploy/pay/prod/1", {"service": "pay", "env": "prod", "version": "1", "commit": "aaaaaaa1"}),
        (200, "deployment.finished", "deploy/pay/prod/1", {"service": "pay", "env": "prod", "version": "1", "outcome": "deployed"}),
        (150, "deployment.requested", "deploy/pay/prod/2", {"service": "pay", "env": "prod", "version": "2", "commit": "aaaaaaa2"}),
        (140, "deployment.stage", "deploy/pay/prod/2", {"service": "pay", "env": "prod", "version": "2", "stage": "canary"}),
        (130, "deployment.finished", "deploy/pay/prod/2", {"service": "pay", "env": "prod", "version": "2", "outcome": "rolled_back"}),
        (100, "deployment.requested", "deploy/pay/prod/3", {"service": "pay", "env": "prod", "version": "3"}),
        (90, "deployment.finished", "deploy/pay/prod/3", {"service": "pay", "env": "prod", "version": "3", "outcome": "deployed"}),
        (60, "incident.state", "incident/x", {"event": "triggered", "status": "triggered", "service": "pay", "severity": "warning"}),
        (55, "incident.acknowledged", "incident/x", {"status": "acknowledged", "service": "pay", "severity": "warning"}),
        (40, "incident.resolved", "incident/x", {"status": "resolved", "service": "pay", "severity": "warning"}),
    ]  # fmt: skip
    return [
        JournalEntry(key=f"seed/{i}", time=NOW - timedelta(minutes=ago), action=a, object=o, detail=d)
        for i, (ago, a, o, d) in enumerate(rows)
    ]


@pytest.fixture(scope="module")
def stack(dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("metrics")
    token = new_token()
    config = {
        "channels": {"console": {"type": "console"}},
        "receivers": [{"name": "default", "channels": ["console"]}],
        "route": {"receiver": "default"},
        "users": [{"name": "carol", "roles": ["responder"], "tokens": [{"id": "t", "sha256": hash_token(token)}]}],
    }
    (tmp / "tocsin.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    async def seed() -> None:
        journal = await open_journal(None, tmp / ".tocsin")
        try:
            await journal.append(history())
        finally:
            await journal.close()

    asyncio.run(seed())
    env = base_env(
        TEMPORAL_ADDRESS=address_of(dev_env.client),
        TOCSIN_CONFIG=str(tmp / "tocsin.yaml"),
        TOCSIN_HOME=str(tmp / ".tocsin"),
        TOCSIN_GATEWAY_TOKEN="gw-token",
    )
    with tocsin_gateway(tmp, env) as url:
        yield {"env": env, "cwd": tmp, "url": url, "token": token}


def run(stack: dict[str, Any], *args: str, remote: bool = False) -> Any:
    env = dict(stack["env"])
    if remote:
        env.update(TOCSIN_URL=stack["url"], TOCSIN_TOKEN=stack["token"], TEMPORAL_ADDRESS="127.0.0.1:9")
    return cli("metrics", *args, env=env, cwd=stack["cwd"])


def check_pay(report: dict[str, Any]) -> None:
    (keys,) = report["dora"]
    assert (keys["service"], keys["env"], keys["deployments"], keys["changes"], keys["failed_changes"]) == (
        "pay", "prod", 2, 3, 1,
    )  # fmt: skip
    # lead times: 1 → 300-200 = 100 min (first build of aaaaaaa1), 3 → 100-90 = 10 min (no commit: its request)
    assert keys["lead_time_median_seconds"] == 55 * 60 and keys["lead_time_p90_seconds"] == 100 * 60
    assert keys["time_to_restore_median_seconds"] == 10 * 60  # canary 140 → rolled back 130
    assert abs(keys["change_failure_rate"] - 1 / 3) < 1e-9
    assert report["builds"]["success_rate"] == 2 / 3 and report["builds"]["duration_avg_seconds"] == 150
    assert report["incidents"]["mtta_seconds"] == 300 and report["incidents"]["mttr_seconds"] == 1200


def test_direct_json_and_text(stack: dict[str, Any]) -> None:
    done = run(stack, "--service", "pay", "--json")
    assert done.returncode == 0, done.stderr
    check_pay(json.loads(done.stdout))
    text = run(stack, "--env", "prod", "--last", "1")
    assert text.returncode == 0, text.stderr
    assert "pay in prod:" in text.stdout
    assert "median 10m, p90 10m (last 1 changes: time to production)" in text.stdout
    assert "33.3% (1/3 changes)" in text.stdout
    empty = run(stack, "--service", "nothing-here", "--json")
    assert json.loads(empty.stdout)["dora"] == []


@pytest.mark.parametrize(
    ("args", "field"),
    [(("--window", "soon"), "--window"), (("--window", "0s"), "--window"), (("--last", "0"), "--last")],
)
def test_bad_input_exits_2_naming_the_field(stack: dict[str, Any], args: tuple[str, ...], field: str) -> None:
    done = run(stack, *args)
    assert done.returncode == 2
    assert done.stderr.startswith(f"tocsin: {field}: ")


def test_remote_mode_tells_the_same(stack: dict[str, Any]) -> None:
    done = run(stack, "--service", "pay", "--json", remote=True)
    assert done.returncode == 0, done.stderr
    check_pay(json.loads(done.stdout))
    bad = run(stack, "--window", "soon", remote=True)
    assert bad.returncode == 2 and bad.stderr.startswith("tocsin: --window: "), bad.stderr


def test_api_answers_json_errors(stack: dict[str, Any]) -> None:
    url = stack["url"] + "/api/v1/metrics"
    assert httpx.get(url).status_code == 401
    auth = {"Authorization": f"Bearer {stack['token']}"}
    resp = httpx.get(url, params={"window": "forever"}, headers=auth)
    assert resp.status_code == 422 and resp.json()["field"] == "window"
    resp = httpx.get(url, params={"last": "0"}, headers=auth)
    assert resp.status_code == 422
    resp = httpx.get(url, params={"service": "pay", "window": "1d"}, headers=auth)
    assert resp.status_code == 200
    assert resp.json()["window"] == "1d" and resp.json()["dora"][0]["deployments"] == 2


def test_gateway_metrics_expose_the_journal(stack: dict[str, Any]) -> None:
    text = httpx.get(stack["url"] + "/metrics").text
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert found[("tocsin_deployments_total", (("env", "prod"), ("outcome", "deployed"), ("service", "pay")))] == 2
    assert found[("tocsin_rollbacks_total", (("env", "prod"), ("service", "pay")))] == 1
    assert found[("tocsin_dora_deployment_frequency_per_day", (("env", "prod"), ("service", "pay")))] == 2 / 30
    assert found[("tocsin_journal_last_seq", ())] == 13
