"""The pipeline health report against a real dev server and worker (issue 14 item 7).

One Schedule per ``pipelines.reports`` entry, with the configured day, time and zone, kept in step with
the config (and deleted when its entry goes, digest schedules left alone); a triggered run delivers
``Pipeline health: <repo> (last 7 days)`` to the configured console receiver with the pipelines' figures;
``tocsin report`` prints the same figures (text and ``--json``), exits 2 naming ``--period`` or ``--repo``;
``GET /api/v1/report`` answers them too, and the CLI's remote client maps its errors back.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from operations import BadInput
from operations.auth import hash_token, new_token
from operations.builds import send_build_event
from operations.config import ConfigStore, load_config_file
from starters.cli.remote import Api
from starters.gateway import create_app
from tests.helpers import address_of, cli, ops, outbox, person, tocsin_worker
from workers.schedules import digest_schedule_id, ensure_schedules, health_schedule_id
from workers.settings import Settings
from workflows import pipeline
from workflows.config import PipelineReportConfig
from workflows.pipeline import BuildEvent, PipelineState
from workflows.policy.health_report import HealthReport

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T | None]], timeout: float = 60) -> T:
    """The probe's first truthy answer, polled until ``timeout`` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.2)


def config(repo: str, token: str, reports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "channels": {"chat": {"type": "console"}, "reports": {"type": "console"}, "night": {"type": "console"}},
        "receivers": [
            {"name": "chat", "channels": ["chat"]},
            {"name": "reports", "channels": ["reports"]},
            {"name": "night", "channels": ["night"], "digest": True, "digest_at": "07:00"},
        ],
        "route": {"receiver": "chat"},
        "pipelines": {
            "reports": reports
            if reports is not None
            else [
                {"repo": repo, "receiver": "reports", "weekday": "fri", "at": "16:30", "timezone": "Europe/Paris"},
                {"repo": repo, "receiver": "reports", "every": "daily", "at": "08:15"},
            ]
        },
        "users": [{"name": "carol", "roles": ["builder"], "tokens": [{"id": "t", "sha256": hash_token(token)}]}],
        "auth": {"allow_unverified": True},  # the CI events and the direct-mode CLI of the test
    }


async def _schedule_exists(client: Client, sid: str) -> bool:
    try:
        await client.get_schedule_handle(sid).describe()
    except RPCError:
        return False
    return True


async def test_one_schedule_per_report_entry_kept_in_step_with_the_config(
    dev_env: WorkflowEnvironment, task_queue: str, write_config
) -> None:  # type: ignore[no-untyped-def]
    repo = f"acme/pay-{uuid.uuid4().hex[:6]}"
    client = dev_env.client
    cfg = load_config_file(write_config(config(repo, new_token())))
    weekly, daily = (
        health_schedule_id(PipelineReportConfig.model_validate(r)) for r in config(repo, "")["pipelines"]["reports"]
    )
    assert weekly == f"report/health-{repo.replace('/', '-')}-weekly"
    assert daily == f"report/health-{repo.replace('/', '-')}-daily"

    ids = await ensure_schedules(client, cfg, task_queue)
    assert ids == sorted([digest_schedule_id("night"), weekly, daily])

    desc = await client.get_schedule_handle(weekly).describe()
    spec = desc.schedule.spec
    assert spec.time_zone_name == "Europe/Paris"
    ((cal,),) = [spec.calendars]
    assert [(r.start, r.end) for r in cal.day_of_week] == [(5, 5)], "Friday (0 is Sunday)"
    assert [r.start for r in cal.hour] == [16] and [r.start for r in cal.minute] == [30]
    action = desc.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.id == weekly and action.task_queue == task_queue
    (arg,) = action.args
    sent = json.loads(arg.data) if hasattr(arg, "data") else arg
    assert sent["kind"] == "pipeline-health" and sent["repo"] == repo and sent["receiver"] == "reports"
    assert sent["period"] == "7d"

    desc = await client.get_schedule_handle(daily).describe()
    ((cal,),) = [desc.schedule.spec.calendars]
    assert [(r.start, r.end) for r in cal.day_of_week] == [(0, 6)], "every day"
    assert [r.start for r in cal.hour] == [8] and [r.start for r in cal.minute] == [15]
    assert desc.schedule.spec.time_zone_name == "UTC"
    action = desc.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    (arg,) = action.args
    sent = json.loads(arg.data) if hasattr(arg, "data") else arg
    assert sent["period"] == "1d", "a daily report looks back one day unless told otherwise"

    # The weekly entry moves to Monday 09:00 and the daily one goes: updated and deleted, the digest kept.
    moved = config(repo, "", [{"repo": repo, "receiver": "reports", "weekday": "mon", "at": "09:00"}])
    cfg = load_config_file(write_config(moved))
    assert await ensure_schedules(client, cfg, task_queue) == sorted([digest_schedule_id("night"), weekly])
    ((cal,),) = [(await client.get_schedule_handle(weekly).describe()).schedule.spec.calendars]
    assert [(r.start, r.end) for r in cal.day_of_week] == [(1, 1)]
    assert [r.start for r in cal.hour] == [9]
    assert not await _schedule_exists(client, daily)
    assert await _schedule_exists(client, digest_schedule_id("night"))
    for sid in (weekly, digest_schedule_id("night")):
        await client.get_schedule_handle(sid).delete()


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    keys = ("builds", "successes", "failures", "success_rate", "median_build_seconds", "watched_failures")
    return {k: report[k] for k in keys}


EXPECTED = {
    "builds": 3,
    "successes": 2,
    "failures": 1,
    "success_rate": 0.6667,
    "median_build_seconds": 130.0,
    "watched_failures": 1,
}


async def test_report_runs_on_its_schedule_on_demand_and_over_the_api(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    repo = f"acme/pay-{uuid.uuid4().hex[:6]}"
    token = new_token()
    path = write_config(config(repo, token, [{"repo": repo, "receiver": "reports", "weekday": "mon"}]))
    cfg = load_config_file(path)
    client = dev_env.client
    (sid,) = [s for s in await ensure_schedules(client, cfg, task_queue) if s.startswith("report/health-")]
    ctx = ops(client, task_queue, cfg)
    wid = pipeline.pipeline_id(repo, "main")
    async with tocsin_worker(client, task_queue, tmp_path, path):
        for n, (status, seconds) in enumerate((("failure", 100.0), ("success", 120.0), ("success", 140.0))):
            event = BuildEvent(
                repo=repo, branch="main", commit=f"{n + 1:07x}abc", status=status, duration_seconds=seconds
            )
            await send_build_event(ctx, person("ci"), event)

        async def settled() -> PipelineState | None:
            state = await client.get_workflow_handle(wid).query(pipeline.QUERY_STATE, result_type=PipelineState)
            done = bool(state.notices) and state.notices[-1].seq >= 3 and not any(n.delivering for n in state.notices)
            return state if done and state.health.builds.recoveries else None

        state = await eventually(settled)
        (spell,) = state.health.builds.recoveries
        mttr = (spell.fixed_at - spell.failed_at).total_seconds()

        # The schedule's run: one message to the report receiver.
        await client.get_schedule_handle(sid).trigger()

        async def delivered() -> list[dict[str, Any]] | None:
            return [r for r in outbox(tmp_path) if r["channel"] == "reports"] or None

        (record,) = await eventually(delivered)
        message = record["message"]
        assert message["title"] == f"Pipeline health: {repo} (last 7 days)"
        assert message["labels"] == {"kind": "report", "alertname": "PipelineHealthReport", "repo": repo}
        assert message["severity"] == "warning", "2 of 3 builds passed"
        fields = {f["title"]: f["value"] for f in message["fields"]}
        assert fields["Success rate"] == "66.7% (2/3)"
        assert fields["Median build time"] == "2m10s"
        assert fields["Failures (watched)"] == "1"
        assert fields["MTTR (watched)"] != "—"
        assert "• main: 1 failure(s) in 3 build(s), MTTR" in message["text"]

        # On demand: the CLI (direct mode), text and JSON.
        env = {"TOCSIN_CONFIG": str(path)}
        address = address_of(client)
        done = await asyncio.to_thread(cli, "report", "--repo", repo, "--json", address=address, env=env)
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout)
        assert _figures(found) == EXPECTED
        assert found["branches"] == ["main"] and found["period"] == "7d"
        assert found["mttr_seconds"] == pytest.approx(mttr)
        done = await asyncio.to_thread(cli, "report", "--repo", repo, address=address, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"Pipeline health: {repo} (last 7 days)\n")
        assert "Success rate        66.7%" in done.stdout
        assert "• main: 1 failure(s) in 3 build(s)" in done.stdout
        done = await asyncio.to_thread(cli, "report", "--repo", repo, "--period", "soon", address=address, env=env)
        assert done.returncode == 2 and done.stderr.startswith("tocsin: --period: not a duration"), done.stderr
        nobody = f"acme/none-{uuid.uuid4().hex[:6]}"
        done = await asyncio.to_thread(cli, "report", "--repo", nobody, address=address, env=env)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == (
            f"tocsin: --repo: no pipeline of '{nobody}' is known (no build event has reached Tocsin)"
        )

        # Over the API, and the CLI's remote client on it.
        settings = replace(Settings(), task_queue=task_queue)
        app = create_app(settings, client, ConfigStore(path))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(transport=transport, base_url="http://gw", headers=headers) as http:
                answer = await http.get("/api/v1/report", params={"repo": repo})
                assert answer.status_code == 200, answer.text
                assert _figures(answer.json()) == EXPECTED
                bad = await http.get("/api/v1/report", params={"repo": repo, "period": "-1d"})
                assert bad.status_code == 422 and bad.json()["field"] == "period", bad.text
                unknown = await http.get("/api/v1/report", params={"repo": nobody})
                assert unknown.status_code == 422 and unknown.json()["field"] == "repo", unknown.text
                anonymous = await http.get("/api/v1/report", params={"repo": repo}, headers={"Authorization": ""})
                assert anonymous.status_code == 401
                schema = (await http.get("/api/v1/openapi.json")).json()
                assert "get" in schema["paths"]["/api/v1/report"]

                api = Api(http)
                report = await api.report(repo, "7d")
                assert isinstance(report, HealthReport) and report.builds == 3
                with pytest.raises(BadInput) as refused:
                    await api.report(repo, "0")
                assert refused.value.field == "--period"
    await client.get_schedule_handle(sid).delete()
