"""DeploymentWorkflow on the time-skipping server: approvals, expiry, reminders, canary, rollback.

The hooks, health endpoint and Prometheus API are a local fake
(``tests/fakes/hooks.py``); the visibility look-ups (incidents, pipelines,
last deploys) are swapped for a test double, since the time-skipping server
has no visibility store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from operations import BadInput, Refused
from operations.config import ConfigStore
from operations.deployments import approve, reject, start_deployment
from tests.fakes.hooks import FakeHooks
from tests.helpers import deployment_config, ops, outbox, person, settings_for
from workers.main import ActivitySet, build_worker
from workflows.deployment import (
    ContextRequest,
    ControlRequest,
    DeployContext,
    DeployInput,
    DeploymentState,
    DeployResult,
    RollbackRequest,
)
from workflows.deployment.workflow import DeploymentWorkflow
from workflows.models import DeliveryRecord, SendRequest


@pytest.fixture
def time_env(fresh_time_env: WorkflowEnvironment) -> WorkflowEnvironment:
    """Rollbacks raise incidents that outlive the test: each test gets its own time-skipping server."""
    return fresh_time_env


class FakeContext:
    """Double of the visibility look-ups: returns a fixed context, records requests."""

    def __init__(self, ctx: DeployContext | None = None):
        self.ctx = ctx or DeployContext(last_deploy_at=datetime(2024, 1, 1, tzinfo=UTC))
        self.requests: list[ContextRequest] = []

    @activity.defn(name="deploy_context")
    async def deployment_context(self, request: ContextRequest) -> DeployContext:
        self.requests.append(request)
        return self.ctx


@pytest.fixture
def hooks() -> Iterator[FakeHooks]:
    with FakeHooks() as fake:
        yield fake


def env_config(hooks: FakeHooks, **overrides: Any) -> dict[str, Any]:
    dev = {"required_approvals": 0, "canary": {"steps": [100]}}
    return deployment_config(hooks.url, bake="5m", extra_environments={"dev": dev}, **overrides)


class HeldSend:
    """The send activity, holding the messages ``hold`` picks until :attr:`release` is set."""

    def __init__(self, hold: Callable[[SendRequest], bool]):
        self.hold = hold
        self.real: Callable[[SendRequest], Awaitable[DeliveryRecord]] | None = None
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    @activity.defn(name="send_notification")
    async def send(self, request: SendRequest) -> DeliveryRecord:
        if self.hold(request) and not self.release.is_set():
            self.held.set()
            await self.release.wait()
        assert self.real is not None
        return await self.real(request)


@contextlib.asynccontextmanager
async def worker(
    env: WorkflowEnvironment,
    task_queue: str,
    home: Path,
    config: Path,
    context: FakeContext | None = None,
    send: HeldSend | None = None,
) -> AsyncIterator[FakeContext]:
    settings = settings_for(task_queue, home)
    acts = ActivitySet(env.client, settings, ConfigStore(config))
    fake = context or FakeContext()
    replaced = [acts.deployments.deployment_context] + ([acts.delivery.send] if send else [])
    functions = [f for f in acts.functions() if f not in replaced] + ([send.send] if send else [])
    if send is not None:
        send.real = acts.delivery.send
    try:
        async with build_worker(env.client, settings, [*functions, fake.deployment_context]):
            yield fake
    finally:
        await acts.aclose()


def request(service: str, env: str = "prod", by: str = "dave", **kw: Any) -> DeployInput:
    return DeployInput(service=service, env=env, version=kw.pop("version", "v1.2.3"), by=by, **kw)


async def state(handle: WorkflowHandle) -> DeploymentState:
    return await handle.query(DeploymentWorkflow.state)


async def until_stage(handle: WorkflowHandle, *stages: str, timeout: float = 15.0) -> DeploymentState:
    for _ in range(int(timeout / 0.05)):
        s = await state(handle)
        if s.stage in stages:
            return s
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached {stages}: {s.stage} {[(e.action, e.detail) for e in s.timeline]}")


ANYONE = person("ci")


async def replay(handle: WorkflowHandle) -> None:
    """The recorded history replays on today's code (determinism check)."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Replayer

    from workers.registry import WORKFLOWS, workflow_runner

    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=workflow_runner())
    await replayer.replay_workflow(await handle.fetch_history())


def actions(s: Any) -> list[str]:
    return [e.action for e in s.timeline]


@pytest.fixture
def service(task_queue: str) -> str:
    return f"svc-{task_queue}"


async def test_approved_deploy_walks_canary_and_passes_health(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    async with worker(time_env, task_queue, tmp_path, write_config(env_config(hooks))):
        handle, started = await start_deployment(
            ops(time_env.client, task_queue), ANYONE, request(service, commit="abc1234")
        )
        assert started and handle.id == f"deploy/{service}/prod/v1.2.3"
        s = await until_stage(handle, "pending_approval")
        assert s.required_approvals == 1 and s.risk is not None
        assert [g.name for g in s.gates] == ["freeze", "incidents", "pipeline"] and all(g.passed for g in s.gates)
        answer = await approve(ops(time_env.client, task_queue), person("alice"), handle.id, "lgtm")
        assert answer.approvals == 1 and answer.required == 1
        result = await handle.result()
    assert result.outcome == "deployed"
    assert [c.body["weight"] for c in hooks.calls_to("/deploy")] == [10, 50, 100]
    assert hooks.calls_to("/deploy")[0].body == {"service": service, "env": "prod", "version": "v1.2.3", "weight": 10}
    assert hooks.calls_to("/rollback") == [] and hooks.calls_to("/health")
    assert [(a.by, a.comment) for a in result.approvals] == [("alice", "lgtm")]
    assert "approved" in actions(result) and actions(result)[-1] == "deployed"
    # chat: one status message edited in place (console records every edit), with stable action ids
    box = [r for r in outbox(tmp_path) if r["channel"] == "deploy-chat"]
    await replay(handle)
    request_msg = box[0]["message"]
    assert [a["action_id"] for a in request_msg["actions"]] == ["tocsin_approve", "tocsin_reject"]
    assert "Risk" in request_msg["text"]
    assert box[-1]["message"]["title"].endswith("deployed")


async def test_four_eyes_unknown_approver_refused_and_n_of_m(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    cfg = env_config(hooks, required_approvals=2, canary={"steps": [100]})
    async with worker(time_env, task_queue, tmp_path, write_config(cfg)):
        handle, _ = await start_deployment(ops(time_env.client, task_queue), ANYONE, request(service, by="alice"))
        await until_stage(handle, "pending_approval")
        with pytest.raises(Refused, match="four eyes"):
            await approve(ops(time_env.client, task_queue), person("alice"), handle.id)
        with pytest.raises(Refused, match="mallory is not an approver"):
            await approve(ops(time_env.client, task_queue), person("mallory"), handle.id)
        first = await approve(ops(time_env.client, task_queue), person("bob"), handle.id)
        assert (first.approvals, first.required) == (1, 2)
        with pytest.raises(Refused, match="already approved"):
            await approve(ops(time_env.client, task_queue), person("bob"), handle.id)
        assert (await state(handle)).stage == "pending_approval"
        await approve(ops(time_env.client, task_queue), person("carol"), handle.id)
        result = await handle.result()
        await replay(handle)
        with pytest.raises(Refused):
            await approve(ops(time_env.client, task_queue), person("carol"), handle.id)
    assert result.outcome == "deployed"
    refused = [(e.actor, e.action) for e in result.timeline if e.action.endswith("refused")]
    assert refused == [("alice", "approval_refused"), ("mallory", "approval_refused"), ("bob", "approval_refused")]


async def test_rejection_ends_rejected(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    async with worker(time_env, task_queue, tmp_path, write_config(env_config(hooks))):
        handle, _ = await start_deployment(ops(time_env.client, task_queue), ANYONE, request(service))
        await until_stage(handle, "pending_approval")
        with pytest.raises(BadInput, match="reason"):
            await reject(ops(time_env.client, task_queue), person("bob"), handle.id, "")
        with pytest.raises(Refused, match="not an approver"):
            await reject(ops(time_env.client, task_queue), person("eve"), handle.id, "no")
        await reject(ops(time_env.client, task_queue), person("bob"), handle.id, "freeze week")
        result = await handle.result()
    assert result.outcome == "rejected" and "bob" in result.reason and "freeze week" in result.reason
    assert hooks.calls_to("/deploy") == []


async def test_approval_expires_after_timeout_with_reminders(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    async with worker(time_env, task_queue, tmp_path, write_config(env_config(hooks))):
        handle, _ = await start_deployment(ops(time_env.client, task_queue), ANYONE, request(service))
        await until_stage(handle, "pending_approval")
        started = datetime.now(UTC)
        result = await handle.result()  # time skips through 2h in well under a second
    assert (datetime.now(UTC) - started) < timedelta(seconds=20)
    assert result.outcome == "expired"
    reminders = [e for e in result.timeline if e.action == "reminder"]
    assert len(reminders) == 3  # at 30m, 1h, 1h30m of a 2h window
    gaps = [(b.at - a.at) for a, b in zip(reminders, reminders[1:], strict=False)]
    assert all(abs(gap - timedelta(minutes=30)) < timedelta(seconds=1) for gap in gaps), gaps
    expired_at = result.timeline[-1].at
    requested_at = next(e.at for e in result.timeline if e.action == "requested")
    assert timedelta(hours=2) <= expired_at - requested_at < timedelta(hours=2, minutes=1)
    posts = [r for r in outbox(tmp_path) if r["channel"] == "deploy-chat" and "Reminder" in r["message"]["title"]]
    assert len(posts) == 3


async def test_pause_resume_and_abort_roll_back(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    cfg = env_config(hooks, required_approvals=0, canary={"steps": [10, 50, 100], "bake": "10m"})
    async with worker(time_env, task_queue, tmp_path, write_config(cfg)):
        handle, _ = await start_deployment(ops(time_env.client, task_queue), ANYONE, request(service))
        await until_stage(handle, "canary")
        await handle.signal(DeploymentWorkflow.pause, ControlRequest(by="carol", reason="looking at logs"))
        for _ in range(100):
            if (await state(handle)).paused:
                break
            await asyncio.sleep(0.05)
        await time_env.sleep(timedelta(hours=3))  # paused: the bake timer does not run out
        s = await state(handle)
        assert s.paused and s.weight == 10 and [c.body["weight"] for c in hooks.calls_to("/deploy")] == [10]
        await handle.signal(DeploymentWorkflow.resume, ControlRequest(by="carol"))
        await time_env.sleep(timedelta(minutes=11))
        for _ in range(100):
            if (await state(handle)).weight == 50:
                break
            await asyncio.sleep(0.05)
        await handle.signal(DeploymentWorkflow.abort, ControlRequest(by="carol", reason="latency up"))
        result = await handle.result()
        await replay(handle)
    assert result.outcome == "rolled_back" and "latency up" in result.reason
    assert [c.body["weight"] for c in hooks.calls_to("/deploy")] == [10, 50]
    assert hooks.calls_to("/rollback")[0].body["by"] == "carol"
    who = [(e.actor, e.action) for e in result.timeline if e.actor == "carol"]
    assert who[:3] == [("carol", "paused"), ("carol", "resumed"), ("carol", "aborted")]
    raised = [e for e in result.timeline if e.action == "incident_raised"]
    assert raised and raised[0].detail.startswith("incident/"), "a rollback raises an incident"
    alerts = [
        r
        for r in outbox(tmp_path)
        if r["message"]["severity"] == "critical" and r["message"]["title"].startswith("Rolled back")
    ]
    assert len(alerts) == 1


async def test_rollback_signal_and_promote(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    cfg = env_config(hooks, required_approvals=0, canary={"steps": [10, 50, 100], "bake": "1h"})
    async with worker(time_env, task_queue, tmp_path, write_config(cfg)):
        promoted, _ = await start_deployment(ops(time_env.client, task_queue), ANYONE, request(service))
        await until_stage(promoted, "canary")
        await promoted.signal(DeploymentWorkflow.promote, ControlRequest(by="bob", reason="hotfix"))
        assert (await promoted.result()).outcome == "deployed"
        assert [c.body["weight"] for c in hooks.calls_to("/deploy")] == [10, 100]
        second, _ = await start_deployment(ops(time_env.client, task_queue), ANYONE, request(service, version="v2"))
        await until_stage(second, "canary")
        await second.signal(
            DeploymentWorkflow.rollback,
            RollbackRequest(by="tocsin:incident/x", reason="HighErrorRate fired", source="incident/x"),
        )
        result = await second.result()
    assert result.outcome == "rolled_back" and "incident/x" in result.reason


async def test_health_failure_rolls_back(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    hooks.health_status = 503
    cfg = env_config(hooks, required_approvals=0, canary={"steps": [100]})
    async with worker(time_env, task_queue, tmp_path, write_config(cfg)):
        handle, _ = await start_deployment(ops(time_env.client, task_queue), ANYONE, request(service))
        result = await handle.result()
    assert result.outcome == "rolled_back"
    assert "health check failed" in result.reason and "503" in result.reason
    assert len(hooks.calls_to("/health")) >= 2  # retried until the deadline
    assert hooks.calls_to("/rollback")


async def test_metric_breach_rolls_back(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    hooks.query_values = {"errors_total": 7.5, "latency": 0.2}
    analysis = {
        "prometheus_url": hooks.url,
        "interval": "1m",
        "count": 3,
        "failure_limit": 1,
        "metrics": [
            {"name": "errors", "query": 'sum(rate(errors_total{service="{service}"}[1m]))', "max": 1},
            {"name": "latency", "query": "latency_p99", "max": 0.5},
        ],
    }
    cfg = env_config(hooks, required_approvals=0, canary={"steps": [20, 100], "bake": "2m", "analysis": analysis})
    async with worker(time_env, task_queue, tmp_path, write_config(cfg)):
        handle, _ = await start_deployment(ops(time_env.client, task_queue), ANYONE, request(service))
        result = await handle.result()
    assert result.outcome == "rolled_back"
    assert "canary analysis failed at 20%" in result.reason and "errors=7.5" in result.reason
    queries = [c.body["query"][0] for c in hooks.calls if c.path == "/api/v1/query"]
    assert f'sum(rate(errors_total{{service="{service}"}}[1m]))' in queries  # template filled
    assert len([q for q in queries if "errors_total" in q]) == 2  # failure_limit 1: the 2nd failure ends it
    assert [c.body["weight"] for c in hooks.calls_to("/deploy")] == [20]


async def test_inconclusive_metrics_pause_then_resume_passes(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    hooks.query_values = {"errors_total": None}  # empty result
    analysis = {
        "prometheus_url": hooks.url,
        "interval": "30s",
        "count": 2,
        "metrics": [{"name": "errors", "query": "errors_total", "max": 1}],
    }
    cfg = env_config(hooks, required_approvals=0, canary={"steps": [50, 100], "bake": "1m", "analysis": analysis})
    async with worker(time_env, task_queue, tmp_path, write_config(cfg)):
        handle, _ = await start_deployment(ops(time_env.client, task_queue), ANYONE, request(service))
        for _ in range(200):
            s = await state(handle)
            if s.paused:
                break
            await time_env.sleep(timedelta(seconds=30))
        assert s.paused and s.weight == 50 and s.last_measurement.outcome == "inconclusive"
        assert "empty result" in s.last_measurement.summary()
        hooks.query_values = {"errors_total": 0}
        await handle.signal(DeploymentWorkflow.resume, ControlRequest(by="bob", reason="metrics back"))
        result = await handle.result()
        await replay(handle)
    assert result.outcome == "deployed"
    assert "analysis_passed" in actions(result)
    paused = [r for r in outbox(tmp_path) if "inconclusive" in r["message"]["title"]]
    assert paused and paused[0]["message"]["severity"] == "warning"


async def test_gates_block_and_emergency_overrides(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    ctx = FakeContext(
        DeployContext(open_critical_incidents=["incident/abc"], pipeline_green=True, pipeline_detail="ci: success")
    )
    cfg = env_config(hooks, required_approvals=0, canary={"steps": [100]})
    async with worker(time_env, task_queue, tmp_path, write_config(cfg), ctx):
        blocked, _ = await start_deployment(ops(time_env.client, task_queue), ANYONE, request(service))
        result = await blocked.result()
        assert result.outcome == "rejected" and "incidents gate" in result.reason
        assert [(g.name, g.passed) for g in result.gates] == [
            ("freeze", True),
            ("incidents", False),
            ("pipeline", True),
        ]
        emergency, _ = await start_deployment(
            ops(time_env.client, task_queue),
            ANYONE,
            request(service, version="v9", emergency=True, reason="fix for incident/abc"),
        )
        fixed = await emergency.result()
        ctx.ctx = DeployContext(pipeline_green=False, pipeline_detail="ci: failure")
        red, _ = await start_deployment(
            ops(time_env.client, task_queue), ANYONE, request(service, version="v10", emergency=True, reason="again")
        )
        red_result = await red.result()
    assert fixed.outcome == "deployed" and fixed.emergency
    assert [g.overridden for g in fixed.gates] == [False, True, False]
    assert "emergency" in actions(fixed)
    assert any(r["message"]["title"].startswith("[EMERGENCY]") for r in outbox(tmp_path))
    assert red_result.outcome == "rejected" and "pipeline gate" in red_result.reason


async def test_freeze_window_blocks_prod(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    cfg = env_config(hooks, required_approvals=0, freeze=["always"], canary={"steps": [100]})
    cfg["time_intervals"] = [
        {"name": "always", "time_intervals": [{"times": [{"start_time": "00:00", "end_time": "24:00"}]}]}
    ]
    async with worker(time_env, task_queue, tmp_path, write_config(cfg)):
        handle, _ = await start_deployment(ops(time_env.client, task_queue), ANYONE, request(service))
        result = await handle.result()
    assert result.outcome == "rejected" and "freeze gate: inside freeze window always" in result.reason


async def test_risk_above_threshold_needs_one_more_approval(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    ctx = FakeContext(DeployContext(recent_rollbacks=2, recent_pipeline_failures=4))
    cfg = env_config(hooks, risk_extra_approval_above=3, canary={"steps": [100]})
    async with worker(time_env, task_queue, tmp_path, write_config(cfg), ctx):
        handle, _ = await start_deployment(ops(time_env.client, task_queue), ANYONE, request(service, change_size=5000))
        s = await until_stage(handle, "pending_approval")
        assert s.required_approvals == 2 and s.risk is not None and s.risk.score > 3
        assert {f.name for f in s.risk.factors} >= {"environment", "change size", "pipeline", "rollbacks"}
        await approve(ops(time_env.client, task_queue), person("bob"), handle.id)
        await approve(ops(time_env.client, task_queue), person("carol"), handle.id)
        assert (await handle.result()).outcome == "deployed"


async def test_lock_is_taken_when_approved_not_before(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    """A forgotten approval holds up no one: deployments queue for the lock once approved."""
    cfg = env_config(hooks, canary={"steps": [100]})
    async with worker(time_env, task_queue, tmp_path, write_config(cfg)):
        ctx = ops(time_env.client, task_queue)
        forgotten, _ = await start_deployment(ctx, ANYONE, request(service, version="v1"))
        await until_stage(forgotten, "pending_approval")
        later, _ = await start_deployment(ctx, ANYONE, request(service, version="v2"))
        await until_stage(later, "pending_approval")  # not queued behind v1's approval
        await approve(ctx, person("bob"), later.id)
        result = await later.result()
        assert result.outcome == "deployed"
        assert (await state(forgotten)).stage == "pending_approval"
        await approve(ctx, person("bob"), forgotten.id)
        first = await forgotten.result()
        await replay(forgotten)
    assert first.outcome == "deployed"
    assert actions(first).index("lock_acquired") > actions(first).index("approval_complete")
    assert [c.body["version"] for c in hooks.calls_to("/deploy")] == ["v2", "v1"]


async def test_one_deployment_at_a_time_wait_and_refuse(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    cfg = env_config(hooks, required_approvals=0, canary={"steps": [10, 100], "bake": "1h"})
    cfg["environments"]["staging"] = {**cfg["environments"]["prod"], "concurrency": "refuse"}
    async with worker(time_env, task_queue, tmp_path, write_config(cfg)):
        ctx = ops(time_env.client, task_queue)
        first, _ = await start_deployment(ctx, ANYONE, request(service, version="v1"))
        await until_stage(first, "canary")
        second, _ = await start_deployment(ctx, ANYONE, request(service, version="v2"))
        assert (await until_stage(second, "queued")).stage == "queued"
        await first.signal(DeploymentWorkflow.promote, ControlRequest(by="bob"))
        assert (await first.result()).outcome == "deployed"
        await until_stage(second, "canary")
        await second.signal(DeploymentWorkflow.abort, ControlRequest(by="bob", reason="one is enough"))
        assert (await second.result()).outcome == "rolled_back"

        held, _ = await start_deployment(ctx, ANYONE, request(service, env="staging", version="v1"))
        await until_stage(held, "canary")
        refused, _ = await start_deployment(ctx, ANYONE, request(service, env="staging", version="v2"))
        refused_result = await refused.result()
        assert refused_result.outcome == "rejected" and "in progress" in refused_result.reason
        await held.signal(DeploymentWorkflow.promote, ControlRequest(by="bob"))
        await held.result()


async def test_dev_environment_without_approval_or_hook_is_recorded_only(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    async with worker(time_env, task_queue, tmp_path, write_config(env_config(hooks))):
        handle, _ = await start_deployment(ops(time_env.client, task_queue), ANYONE, request(service, env="dev"))
        result = await handle.result()
    assert result.outcome == "deployed" and "approval_skipped" in actions(result)
    # dev has no deploy hook: nothing was deployed, and nothing says it is live
    assert result.recorded_only and result.reason.startswith("recorded only (no deploy hook)"), result.reason
    assert "live" not in result.reason and hooks.calls_to("/deploy") == []
    said = [r["message"] for r in outbox(tmp_path)]
    assert said[-1]["title"].endswith("to dev: recorded only (no deploy hook)"), said[-1]["title"]
    assert all("live" not in m["title"] + m.get("text", "") for m in said)
    assert any(m["title"].endswith("Canary at 100%, recorded only (no deploy hook)") for m in said)


async def test_production_without_deploy_hook_is_refused(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    cfg = env_config(hooks, required_approvals=0, production=True, canary={"steps": [100]})
    del cfg["environments"]["prod"]["hooks"]["deploy"]
    async with worker(time_env, task_queue, tmp_path, write_config(cfg)) as _:
        with pytest.raises(BadInput) as refused:
            await start_deployment(ops(time_env.client, task_queue, write_config(cfg)), ANYONE, request(service))
        assert refused.value.field == "--env" and "hooks.deploy" in refused.value.message
        # started past the operation (an older client, the Temporal UI): the workflow's gate refuses it
        handle = await time_env.client.start_workflow(
            "DeploymentWorkflow",
            request(service),
            id=f"deploy/{service}/prod/v1.2.3",
            task_queue=task_queue,
            result_type=DeployResult,
        )
        result = await handle.result()
        await replay(handle)
    assert result.outcome == "rejected" and "deploy-hook gate" in result.reason, result.reason
    assert [(g.name, g.passed) for g in result.gates][-1] == ("deploy-hook", False)
    assert hooks.calls_to("/deploy") == []


async def test_rollback_asked_as_it_finishes_is_carried_out(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, hooks: FakeHooks, service: str
) -> None:
    """`tocsin rollback` right as a deployment ends deployed (chat still being told) is not ignored."""
    cfg = env_config(hooks, required_approvals=0, canary={"steps": [100]})
    send = HeldSend(lambda r: r.receiver == "deploys" and r.message.title.endswith(": deployed"))
    async with worker(time_env, task_queue, tmp_path, write_config(cfg), send=send):
        handle, _ = await start_deployment(ops(time_env.client, task_queue), ANYONE, request(service))
        await asyncio.wait_for(send.held.wait(), 30)
        assert (await state(handle)).outcome == "deployed"
        await handle.signal(DeploymentWorkflow.rollback, RollbackRequest(by="frank", reason="errors", source="cli"))
        for _ in range(100):
            if "rollback_requested" in actions(await state(handle)):
                break
            await asyncio.sleep(0.05)
        send.release.set()
        result = await handle.result()
        history = await handle.fetch_history()
        await replay(handle)
    assert result.outcome == "rolled_back" and "errors" in result.reason, actions(result)
    assert hooks.calls_to("/rollback")[0].body["by"] == "frank"
    assert statuses(history)[-1] == "rolled_back"
    assert "lock_acquired" in actions(result)[actions(result).index("rollback_requested") :]


def statuses(history: Any) -> list[str]:
    """The ``TocsinStatus`` values a history upserted, in order."""
    from temporalio.api.enums.v1 import EventType
    from temporalio.converter import decode_typed_search_attributes

    from workflows import search

    out = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            attrs = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            status = decode_typed_search_attributes(attrs).get(search.STATUS)
            if status:
                out.append(status)
    return out


# ---------------------------------------------------------------- the activities on their own (httpx seam)


def mock_activities(handler: Any) -> Any:
    import httpx

    from activities.deployments import DeploymentActivities

    return DeploymentActivities(client=None, http=httpx.AsyncClient(transport=httpx.MockTransport(handler)))  # type: ignore[arg-type]


async def test_hook_failures_are_classified(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from workflows.deployment import HookCall

    seen: list[httpx.Request] = []
    answers = iter(
        [
            httpx.Response(200, text="ok"),
            httpx.Response(503),
            httpx.Response(400, text="bad weight"),
            httpx.Response(429, headers={"Retry-After": "7"}),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    acts = mock_activities(handler)
    env = ActivityEnvironment()
    monkeypatch.setenv("DEPLOY_TOKEN", "s3cret")
    call = HookCall(
        url="http://deployer.test/${HOOK_PATH:-deploy}",
        payload={"weight": 10},
        headers={"Authorization": "Bearer ${DEPLOY_TOKEN}"},
        idempotency_key="deploy/x/1",
    )
    assert (await env.run(acts.call_hook, call)).status == 200
    assert str(seen[0].url) == "http://deployer.test/deploy"
    assert seen[0].headers["Authorization"] == "Bearer s3cret" and seen[0].headers["Idempotency-Key"] == "deploy/x/1"
    with pytest.raises(ApplicationError) as retry:
        await env.run(acts.call_hook, call)
    assert not retry.value.non_retryable and "503" in retry.value.message
    with pytest.raises(ApplicationError) as final:
        await env.run(acts.call_hook, call)
    assert final.value.non_retryable and "bad weight" in final.value.message
    with pytest.raises(ApplicationError) as paced:
        await env.run(acts.call_hook, call)
    assert not paced.value.non_retryable and paced.value.next_retry_delay == timedelta(seconds=7)
    monkeypatch.delenv("DEPLOY_TOKEN")
    with pytest.raises(ApplicationError) as missing:
        await env.run(acts.call_hook, call)
    assert missing.value.non_retryable and missing.value.type == "MissingSecret"


async def test_prometheus_readings_errors_are_inconclusive() -> None:
    import httpx

    from workflows.deployment import MetricQuery, MetricsRequest

    def vector(*values: str) -> dict[str, Any]:
        return {
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, v]} for v in values]},
        }

    bodies = {
        "one": (200, vector("0.25")),
        "empty": (200, vector()),
        "two": (200, vector("1", "2")),
        "nan": (200, vector("NaN")),
        "scalar": (200, {"status": "success", "data": {"resultType": "scalar", "result": [0, "3"]}}),
        "bad": (400, {"status": "error", "errorType": "bad_data", "error": "parse error"}),
    }

    def handler(request: httpx.Request) -> httpx.Response:
        query = request.url.params["query"]
        if query == "down":
            raise httpx.ConnectError("refused")
        status, body = bodies[query]
        return httpx.Response(status, json=body)

    acts = mock_activities(handler)
    names = ["one", "empty", "two", "nan", "scalar", "bad", "down"]
    result = await acts.query_metrics(
        MetricsRequest(prometheus_url="http://prom.test/", queries=[MetricQuery(name=n, query=n) for n in names])
    )
    got = {r.name: (r.value, r.error) for r in result.readings}
    assert got["one"] == (0.25, None) and got["scalar"] == (3.0, None)
    assert got["empty"] == (None, "empty result")
    assert "2 series" in got["two"][1] and got["nan"][1] == "NaN"
    assert "bad_data: parse error" in got["bad"][1] and "unreachable" in got["down"][1]


async def test_slack_progress_is_one_message_edited_plus_thread_replies(
    time_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    write_config,
    hooks: FakeHooks,
    service: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.fakes.slack import FakeSlack

    with FakeSlack(token="xoxb-deploy-token") as slack:
        monkeypatch.setenv("SLACK_BOT_TOKEN", slack.token)
        cfg = env_config(hooks, canary={"steps": [25, 100], "bake": "1m"})
        cfg["channels"]["deploy-chat"] = {
            "type": "slack",
            "token": "${SLACK_BOT_TOKEN}",
            "channel": "#deploys",
            "api_url": slack.url,
        }
        async with worker(time_env, task_queue, tmp_path, write_config(cfg)):
            handle, _ = await start_deployment(ops(time_env.client, task_queue), ANYONE, request(service))
            await until_stage(handle, "pending_approval")
            await approve(ops(time_env.client, task_queue), person("bob"), handle.id, "go")
            assert (await handle.result()).outcome == "deployed"
        posts = slack.calls("chat.postMessage")
        updates = slack.calls("chat.update")
    top = [p for p in posts if not p.body.get("thread_ts")]
    replies = [p for p in posts if p.body.get("thread_ts")]
    assert len(top) == 1, [p.body.get("text") for p in top]  # the status message, posted once
    ts = slack.messages[0]["ts"]
    buttons = [el["action_id"] for b in top[0].body["blocks"] if b["type"] == "actions" for el in b["elements"]]
    assert buttons == ["tocsin_approve", "tocsin_reject"]
    assert updates and {u.body["ts"] for u in updates} == {ts}  # every stage edits that message
    assert "deployed" in updates[-1].body["text"]
    assert {r.body["thread_ts"] for r in replies} == {ts}
    assert any("Approved by bob" in r.body["text"] for r in replies)
    assert any("Canary at 25%" in r.body["text"] for r in replies)
