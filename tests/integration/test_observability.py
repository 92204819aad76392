"""Every Grafana panel returns data for a scripted scenario, through a real Prometheus.

A real `tocsin worker` (``--metrics-port``) and `tocsin gateway` run against a dev server and share
one audit journal; a real Prometheus (Debian's ``/usr/bin/prometheus``) scrapes both every second
with ``deploy/prometheus/tocsin-rules.yml`` loaded. The scenario, through Tocsin's operations (what the
CLI and the API call): builds (success, failure, one still running, with durations and queue
times), a deployment approved by someone else that goes live and is then rolled back, an incident
acknowledged and resolved, and a notification to a webhook on a closed port (retried, then
dead-lettered). Then every panel query of
``deploy/grafana/tocsin.json`` is evaluated through Prometheus's HTTP API as Grafana would (stat:
instant query; timeseries: range query over the last minutes), with Grafana's variables
substituted: none may fail, none may be empty or only NaN. ``tocsin metrics --json`` shows the same
deployment's DORA keys.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from operations import Actor, Context, OperationError
from operations.alerts import raise_alert
from operations.builds import send_build_event, send_notification
from operations.deployments import approve, rollback, start_deployment
from operations.incidents import acknowledge, resolve
from operations.journal import open_journal
from operations.metrics import collect_metrics
from tests.fakes.hooks import FakeHooks
from tests.helpers import address_of, cli, ops
from tests.procs import TOCSIN, base_env, free_port, process, tocsin_gateway, wait_http
from workflows.deployment import DeployInput
from workflows.models import Message
from workflows.pipeline import BuildEvent

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "tocsin.json"
RULES = ROOT / "deploy" / "prometheus" / "tocsin-rules.yml"
TOKEN = "observability-token"
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "5s", "$__range": "1h", "${datasource}": "", "$datasource": ""}


def prometheus_binary() -> str:
    found = "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else shutil.which("prometheus")
    if found is None:
        pytest.fail("prometheus is not installed: run `bash scripts/install-system-deps.sh`", pytrace=False)
    return found


@pytest.fixture
def hooks() -> Iterator[FakeHooks]:
    with FakeHooks() as fake:
        yield fake


def write_config(tmp: Path, hooks: FakeHooks) -> Path:
    closed = free_port()  # nothing listens there: every send is refused
    config = {
        "channels": {
            "console": {"type": "console"},
            "hook": {"type": "webhook", "url": f"http://127.0.0.1:{closed}/hook", "secret": "${HOOK_SECRET}", "timeout": 1},
        },
        "receivers": [
            {"name": "default", "channels": ["console"]},
            {"name": "hooks", "channels": ["hook"], "give_up_after": "4s"},
        ],
        "route": {"receiver": "default", "group_by": ["alertname", "service"], "group_wait": "0s"},
        "environments": {
            "prod": {
                "approvers": ["alice"],
                "required_approvals": 1,
                "approval_timeout": "10m",
                "receiver": "default",
                "canary": {"steps": [100], "bake": "0s"},
                "hooks": {"deploy": {"url": hooks.url + "/deploy"}, "rollback": {"url": hooks.url + "/rollback"}},
            }
        },
    }  # fmt: skip
    path = tmp / "tocsin.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def stack(dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, hooks: FakeHooks) -> Iterator[dict[str, Any]]:
    """Worker, gateway and a Prometheus scraping both (rules loaded, evaluated every second)."""
    env = base_env(
        TEMPORAL_ADDRESS=address_of(dev_env.client),
        TOCSIN_TASK_QUEUE=task_queue,
        TOCSIN_CONFIG=str(write_config(tmp_path, hooks)),
        TOCSIN_HOME=str(tmp_path / ".tocsin"),
        TOCSIN_GATEWAY_TOKEN=TOKEN,
        HOOK_SECRET="hook-secret",
    )
    metrics_port, prom_port = free_port(), free_port()
    rules = tmp_path / "tocsin-rules.yml"
    rules.write_text(RULES.read_text().replace("interval: 30s", "interval: 1s"))
    with (
        process([TOCSIN, "worker", "--metrics-port", str(metrics_port)], tmp_path, env, tmp_path / "worker.log"),
        tocsin_gateway(tmp_path, env) as gateway,
    ):
        scrape = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {"job_name": "tocsin-worker", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]},
                {"job_name": "tocsin-gateway", "static_configs": [{"targets": [gateway.removeprefix("http://")]}]},
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(scrape))
        args = [
            prometheus_binary(),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
        ]
        with process(args, tmp_path, base_env(), tmp_path / "prometheus.log"):
            prometheus = f"http://127.0.0.1:{prom_port}"
            wait_http(f"{prometheus}/-/ready", timeout=60)
            yield {
                "env": env,
                "cwd": tmp_path,
                "gateway": gateway,
                "prometheus": prometheus,
                "client": dev_env.client,
                "task_queue": task_queue,
                "config": Path(env["TOCSIN_CONFIG"]),
            }


async def tocsin(stack: dict[str, Any], *args: str) -> str:
    done = await asyncio.to_thread(cli, *args, env=stack["env"], cwd=stack["cwd"], timeout=120)
    assert done.returncode == 0, f"tocsin {' '.join(args)}: {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip()


async def poll(check: Any, what: str, timeout: float = 60, step: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(step)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


async def query(
    http: httpx.AsyncClient, prometheus: str, expr: str, ranged: bool, since: float | None = None
) -> list[dict[str, Any]]:
    """Grafana's way: an instant query for a stat, a range query for a time series (from ``since``, as a
    dashboard's time range covering the scenario; default the last 3 minutes)."""
    now = time.time()
    if ranged:
        start = min(since, now - 180) if since is not None else now - 180
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{now:.3f}", "step": "5"}
        resp = await http.get(f"{prometheus}/api/v1/query_range", params=params)
    else:
        resp = await http.get(f"{prometheus}/api/v1/query", params={"query": expr, "time": f"{now:.3f}"})
    body = resp.json()
    assert resp.status_code == 200 and body["status"] == "success", f"{expr}: {resp.status_code} {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def has_numbers(result: list[dict[str, Any]]) -> bool:
    values = [v for r in result for _, v in (r.get("values") or [r["value"]])]
    return any(math.isfinite(float(v)) for v in values)


def panel_queries() -> list[tuple[str, str, bool]]:
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in GRAFANA_VARS.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"{panel['title']}: unsubstituted variable in {expr}"
            out.append((f"{panel['title']} [{target['refId']}]", expr, panel["type"] == "timeseries"))
    return out


def person(name: str) -> Actor:
    return Actor(name=name, verified=False, method="unverified", via="cli")


async def scenario(ctx: Context, seen: Any, service: str) -> dict[str, str]:
    """Builds, a deployment approved by someone else going live, then an incident on the service and a
    notification to a closed port.

    Each build starts before it ends and the deployment waits for its approval, as in life: Prometheus
    scrapes the series at 0 in between (``seen``), so ``increase()`` counts the outcomes.
    """
    repo, ci = f"acme/{service}", person("ci")

    async def report(
        branch: str, commit: str, status: str, duration: float | None = None, queued: float | None = None
    ) -> None:
        event = BuildEvent(repo=repo, branch=branch, commit=commit, status=status, workflow="ci",
                           duration_seconds=duration, queued_seconds=queued)  # fmt: skip
        await send_build_event(ctx, ci, event)

    for branch, commit in (("main", "c1c1c1c1"), ("dev", "c2c2c2c2"), ("feature", "c3c3c3c3")):
        await report(branch, commit, "started")
    await seen(f'tocsin_builds_total{{repo="{repo}",branch="dev",status="failure"}}')
    await report("main", "c1c1c1c1", "success", 95.0, 4.0)
    await report("dev", "c2c2c2c2", "failure", 40.0, 12.0)
    request = DeployInput(service=service, env="prod", version="1.0.0", by="bob", commit="c1c1c1c1")
    handle, _ = await start_deployment(ctx, person("bob"), request)
    await seen(f'tocsin_deployment_lead_time_seconds_count{{service="{service}"}}')

    async def approved() -> bool:
        try:
            await approve(ctx, person("alice"), handle.id)
        except OperationError:
            return False  # not awaiting approval yet
        return True

    await poll(approved, "the approval")
    await asyncio.wait_for(handle.result(), timeout=60)  # live, and the run is over
    (incident,) = await raise_alert(ctx, person("carol"), "CheckoutDown", "critical", {"service": service}, "down")
    await send_notification(ctx, person("ci"), "hooks", Message(title="to a closed port"))
    return {"deployment": handle.id, "incident": incident}


async def dora(home: Path, service: str) -> dict[str, Any]:
    journal = await open_journal(None, home)
    try:
        return await collect_metrics(journal, service=service)
    finally:
        await journal.close()


@pytest.mark.timeout(180)  # about 25 s alone; a dev server, two processes and a Prometheus on a busy machine
async def test_every_dashboard_panel_has_data_from_a_real_prometheus(stack: dict[str, Any], hooks: FakeHooks) -> None:
    prometheus = stack["prometheus"]
    service = f"shop{uuid.uuid4().hex[:6]}"
    started = time.time()  # the time series panels look back to here, however long the scenario took
    async with httpx.AsyncClient(timeout=10) as http:

        async def targets_up() -> bool:
            result = await query(http, prometheus, "up", ranged=False)
            return {r["metric"]["job"]: r["value"][1] for r in result} == {"tocsin-worker": "1", "tocsin-gateway": "1"}

        await poll(targets_up, "Prometheus scraping the worker and the gateway")
        ctx = ops(stack["client"], stack["task_queue"], stack["config"])

        async def seen(expr: str) -> None:
            async def there() -> bool:
                return bool(await query(http, prometheus, expr, ranged=False))

            await poll(there, expr)

        ids = await scenario(ctx, seen, service)
        home = stack["cwd"] / ".tocsin"

        outcome = await rollback(ctx, person("bob"), service, "prod", "errors up")
        assert outcome.action != "nothing", outcome
        await acknowledge(ctx, person("alice"), ids["incident"])
        await resolve(ctx, person("alice"), ids["incident"], "rolled back")

        async def rolled_back() -> bool:
            keys = (await dora(home, service))["dora"][0]
            return bool(keys["failed_changes"] == 1 and keys["restored"] == 1)

        await poll(rolled_back, "the rollback in the journal")
        report = json.loads(await tocsin(stack, "metrics", "--service", service, "--json"))  # the real CLI
        keys = report["dora"][0]
        assert (keys["service"], keys["env"], keys["changes"], keys["deployments"]) == (service, "prod", 1, 1)
        assert keys["change_failure_rate"] == 1.0 and keys["lead_time_changes"] == 1
        assert report["incidents"]["mtta_seconds"] is not None and report["incidents"]["mttr_seconds"] is not None
        assert hooks.calls_to("/deploy") and hooks.calls_to("/rollback")

        queries = panel_queries()
        assert len(queries) >= 30

        async def all_panels() -> list[str]:
            missing = []
            for title, expr, ranged in queries:
                if not has_numbers(await query(http, prometheus, expr, ranged, since=started - 60)):
                    missing.append(title)
            return missing

        async def none_missing() -> bool:
            return not await all_panels()

        try:
            await poll(none_missing, "every panel to have data", timeout=60, step=1)
        except AssertionError:
            pytest.fail(f"panels without data: {await all_panels()}", pytrace=False)

        # the figures are the scenario's, not just any
        builds = await query(
            http, prometheus, f'sum by (status) (max without (instance, job) (tocsin_builds_total{{repo="acme/{service}"}}))', False
        )  # fmt: skip
        assert {r["metric"]["status"]: float(r["value"][1]) for r in builds} == {
            "started": 3, "success": 1, "failure": 1, "timed_out": 0, "cancelled": 0,
        }  # fmt: skip

        async def both_count_the_rollback() -> bool:  # worker and gateway each recount it from the journal
            rollbacks = await query(http, prometheus, f'tocsin_rollbacks_total{{service="{service}"}}', False)
            return {r["metric"]["job"]: float(r["value"][1]) for r in rollbacks} == {
                "tocsin-worker": 1, "tocsin-gateway": 1,
            }  # fmt: skip

        await poll(both_count_the_rollback, "the rollback counted by the worker and the gateway", timeout=20)
        rules = (await http.get(f"{prometheus}/api/v1/rules")).json()["data"]["groups"]
        assert {g["name"] for g in rules} == {"tocsin-recording", "tocsin-cicd", "tocsin-health"}
        assert all(r["health"] == "ok" for g in rules for r in g["rules"]), [
            (r["name"], r.get("lastError")) for g in rules for r in g["rules"] if r["health"] != "ok"
        ]
        ratio = await query(http, prometheus, f'tocsin:build_success_ratio:rate1h{{repo="acme/{service}"}}', False)
        # one success, one failure: 0.5, give or take rate()'s extrapolation at the ends of two young series
        [value] = [float(r["value"][1]) for r in ratio]
        assert value == pytest.approx(0.5, abs=0.1), value
        assert re.fullmatch(r"deploy/\S+/prod/1\.0\.0", ids["deployment"])
