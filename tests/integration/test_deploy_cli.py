"""Deployments end to end: the real `tocsin` CLI and a real `tocsin worker` against a dev server.

Approval by someone other than the deployer walks the canary (exit 0);
self-approval and unknown approvers are refused (exit 2); a rejection ends
the deployment (exit 4); `tocsin rollback` aborts a running rollout (exit 3)
or rolls back the last one that went out (a rejected one never did);
`tocsin deploy pause|resume|promote|abort` steer a canary; an environment
without a deploy hook is "recorded only"; `tocsin audit export` shows who did
what in a valid sha256 chain.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from operations.audit import verify_chain
from tests.fakes.hooks import FakeHooks
from tests.helpers import address_of, cli
from tests.procs import TOCSIN, base_env, process
from workflows.deployment.workflow import DeploymentWorkflow


@pytest.fixture
def hooks() -> Iterator[FakeHooks]:
    with FakeHooks() as fake:
        yield fake


@pytest.fixture
def stack(dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, hooks: FakeHooks) -> Iterator[dict[str, Any]]:
    """A console config with prod/dev environments and a real `tocsin worker`."""
    hook_cfg = {
        "deploy": {"url": hooks.url + "/deploy"},
        "rollback": {"url": hooks.url + "/rollback"},
        "health": [hooks.url + "/health"],
        "health_deadline": "20s",
    }
    config = {
        "channels": {"console": {"type": "console"}},
        "receivers": [{"name": "deploys", "channels": ["console"]}],
        "route": {"receiver": "deploys", "group_by": ["alertname", "service"]},
        "environments": {
            "prod": {
                "approvers": ["alice", "bob", "dave"],
                "required_approvals": 1,
                "four_eyes": True,
                "approval_timeout": "10m",
                "receiver": "deploys",
                "canary": {"steps": [50, 100], "bake": "1s"},
                "hooks": hook_cfg,
            },
            "stage": {"required_approvals": 0, "canary": {"steps": [10, 100], "bake": "1h"}, "hooks": hook_cfg},
            "dev": {"required_approvals": 0},
            "live": {"production": True, "required_approvals": 0},
        },
    }
    path = tmp_path / "tocsin.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = base_env(
        TEMPORAL_ADDRESS=address_of(dev_env.client),
        TOCSIN_TASK_QUEUE=task_queue,
        TOCSIN_CONFIG=str(path),
        TOCSIN_HOME=str(tmp_path / ".tocsin"),
    )
    with process([TOCSIN, "worker"], tmp_path, env, tmp_path / "worker.log"):
        yield {"env": env, "service": f"shop-{uuid.uuid4().hex[:6]}", "cwd": tmp_path}


def run(stack: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return cli(*args, env=stack["env"], cwd=stack["cwd"])


async def arun(stack: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run, stack, *args)


class Deploy:
    """`tocsin deploy --wait` running in the background."""

    def __init__(self, stack: dict[str, Any], *args: str):
        self.proc = subprocess.Popen(
            [TOCSIN, "deploy", *args, "--wait"],
            env=stack["env"],
            cwd=stack["cwd"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started = time.monotonic()
        assert self.proc.stdout is not None
        self.id = self.proc.stdout.readline().strip()
        self.first_line_after = time.monotonic() - started

    async def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        out, err = await asyncio.to_thread(self.proc.communicate, timeout=timeout)
        return self.proc.returncode, out, err


async def until_stage(dev_env: WorkflowEnvironment, wid: str, *stages: str, timeout: float = 30) -> Any:
    handle = dev_env.client.get_workflow_handle(wid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = await handle.query(DeploymentWorkflow.state)
            if state.stage in stages:
                return state
        except Exception:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"{wid} never reached {stages}")


async def test_approved_by_another_walks_the_canary_refusals_and_audit(
    dev_env: WorkflowEnvironment, stack: dict[str, Any], hooks: FakeHooks
) -> None:
    svc = stack["service"]
    deploy = Deploy(
        stack,
        "--service",
        svc,
        "--env",
        "prod",
        "--version",
        "v1.0.0",
        "--by",
        "dave",
        "--commit",
        "abc1234",
        "--changes-url",
        "https://git.example/compare/v0...v1",
    )
    assert deploy.id == f"deploy/{svc}/prod/v1.0.0"
    assert deploy.first_line_after < 15
    await until_stage(dev_env, deploy.id, "pending_approval")

    self_approval = await arun(stack, "approve", deploy.id, "--by", "dave")
    assert self_approval.returncode == 2 and "four eyes" in self_approval.stderr
    stranger = await arun(stack, "approve", deploy.id, "--by", "mallory", "--comment", "looks fine")
    assert stranger.returncode == 2 and "mallory is not an approver" in stranger.stderr
    ok = await arun(stack, "approve", deploy.id, "--by", "alice", "--comment", "ship it")
    assert ok.returncode == 0, ok.stderr
    assert "approved by alice (1/1 approvals)" in ok.stdout

    code, out, err = await deploy.finish()
    assert code == 0, err
    assert out.strip() == ""  # the id was the only line on stdout (read above)
    assert "stage: canary" in err and "deployed" in err
    assert [c.body["weight"] for c in hooks.calls_to("/deploy")] == [50, 100]
    late = await arun(stack, "approve", deploy.id, "--by", "bob")
    assert late.returncode == 2

    # a rejected one, then the audit trail
    second = Deploy(stack, "--service", svc, "--env", "prod", "--version", "v1.1.0", "--by", "dave")
    await until_stage(dev_env, second.id, "pending_approval")
    no_reason = await arun(stack, "reject", second.id, "--by", "bob", "--reason", " ")
    assert no_reason.returncode == 2
    rejected = await arun(stack, "reject", second.id, "--by", "bob", "--reason", "not during the sale")
    assert rejected.returncode == 0, rejected.stderr
    code, _, err = await second.finish()
    assert code == 4 and "not during the sale" in err

    export = await arun(stack, "audit", "export", "--service", svc)
    assert export.returncode == 0, export.stderr
    lines = export.stdout.splitlines()
    assert verify_chain(lines) is None
    records = [json.loads(line) for line in lines]
    assert {r["kind"] for r in records} == {"deployment"}
    first = [r for r in records if r["workflow_id"] == deploy.id and "journal" in r]  # sealed when it happened
    people = [
        (r["actor"], r["action"])
        for r in first
        if r["action"] in ("deployment.requested", "refused", "deployment.approved")
    ]
    assert people == [
        ("dave", "deployment.requested"),
        ("dave", "refused"),
        ("mallory", "refused"),
        ("alice", "deployment.approved"),
    ]
    assert "four eyes" in json.dumps(
        next(r["detail"] for r in first if r["actor"] == "dave" and r["action"] == "refused")
    )
    assert "ship it" in json.dumps(next(r["detail"] for r in first if r["actor"] == "alice"))
    stages = [r["detail"]["stage"] for r in first if r["action"] == "deployment.stage" and "stage" in r["detail"]]
    assert stages[0] == "checking" and stages[-1] == "deployed" and "pending_approval" in stages
    reject_line = next(r for r in records if r["action"] == "deployment.rejected")
    assert reject_line["actor"] == "bob" and "not during the sale" in json.dumps(reject_line["detail"])
    assert reject_line["identity"]["name"] == "bob"
    seqs = [r["journal"]["seq"] for r in records if "journal" in r]
    assert seqs == sorted(seqs)
    approvals = await arun(
        stack, "audit", "export", "--service", svc, "--actor", "alice", "--action", "deployment.approved"
    )
    assert [json.loads(line)["workflow_id"] for line in approvals.stdout.splitlines()] == [deploy.id], approvals.stderr

    # tampering shows: change who approved, and the chain breaks on the next line
    tampered = [line.replace('"actor":"alice"', '"actor":"bob"') for line in lines]
    broken_at = next(i for i, line in enumerate(lines, 1) if '"actor":"alice"' in line) + 1
    assert verify_chain(tampered) == broken_at
    path = stack["cwd"] / "audit.jsonl"
    path.write_text("\n".join(tampered) + "\n")
    check = await arun(stack, "audit", "verify", str(path))
    assert check.returncode == 2 and f"line {broken_at}" in check.stderr
    path.write_text(export.stdout)
    assert (await arun(stack, "audit", "verify", str(path))).returncode == 0

    # the journal outlives Temporal's retention: the workflow deleted, its records are still exported
    await dev_env.client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=dev_env.client.namespace, workflow_execution=WorkflowExecution(workflow_id=deploy.id)
        )
    )
    deadline = asyncio.get_running_loop().time() + 180  # deletion is asynchronous; slow on a busy server
    while asyncio.get_running_loop().time() < deadline:
        try:
            await dev_env.client.get_workflow_handle(deploy.id).describe()
        except RPCError:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"{deploy.id} was not deleted")
    after = await arun(stack, "audit", "export", "--service", svc, "--action", "deployment.approved")
    assert after.returncode == 0, after.stderr
    assert [json.loads(line)["actor"] for line in after.stdout.splitlines()] == ["alice"]
    live = await arun(stack, "audit", "verify")
    assert live.returncode == 0 and "chain intact" in live.stdout, live.stderr


async def test_rollback_aborts_running_then_rolls_back_last(
    dev_env: WorkflowEnvironment, stack: dict[str, Any], hooks: FakeHooks
) -> None:
    svc = stack["service"]
    running = Deploy(stack, "--service", svc, "--env", "stage", "--version", "v2", "--by", "erin")
    await until_stage(dev_env, running.id, "canary")
    done = await arun(
        stack, "rollback", "--service", svc, "--env", "stage", "--by", "frank", "--reason", "p99 latency doubled"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == running.id and "signalled" in done.stderr
    code, _, err = await running.finish()
    assert code == 3 and "p99 latency doubled" in err
    assert hooks.calls_to("/rollback")[0].body["by"] == "frank"

    # nothing running and the latest is rolled back: nothing to do
    nothing = await arun(stack, "rollback", "--service", svc, "--env", "stage", "--by", "frank", "--reason", "x")
    assert nothing.returncode == 1 and "nothing to roll back" in nothing.stderr

    # the last one deployed: a rollback run is started
    promoted = Deploy(stack, "--service", svc, "--env", "stage", "--version", "v3", "--by", "erin")
    await until_stage(dev_env, promoted.id, "canary")
    await dev_env.client.get_workflow_handle(promoted.id).signal(
        "promote", {"by": "erin", "reason": "bake is too long for a test"}
    )
    code, _, _ = await promoted.finish()
    assert code == 0
    back = await arun(stack, "rollback", "--service", svc, "--env", "stage", "--by", "frank", "--reason", "bad data")
    assert back.returncode == 0, back.stderr
    assert back.stdout.strip() == f"{promoted.id}/rollback"
    result = await dev_env.client.get_workflow_handle_for(DeploymentWorkflow.run, back.stdout.strip()).result()
    assert result.outcome == "rolled_back" and result.version == "v3"
    assert [c.body["reason"] for c in hooks.calls_to("/rollback")][-1] == "bad data"


def test_bad_input_exits_2(stack: dict[str, Any]) -> None:
    svc = stack["service"]
    base = ["deploy", "--service", svc, "--version", "v1", "--by", "dave"]
    emergency = run(stack, *base, "--env", "prod", "--emergency")
    assert emergency.returncode == 2 and "--reason" in emergency.stderr
    unknown = run(stack, *base, "--env", "moon")
    assert unknown.returncode == 2 and "unknown environment 'moon'" in unknown.stderr
    commit = run(stack, *base, "--env", "prod", "--commit", "not-a-sha")
    assert commit.returncode == 2 and "--commit" in commit.stderr
    since = run(stack, "audit", "export", "--since", "last tuesday")
    assert since.returncode == 2 and "--since" in since.stderr


async def test_gates_read_pipelines_and_incidents_from_temporal(
    dev_env: WorkflowEnvironment, stack: dict[str, Any], hooks: FakeHooks
) -> None:
    svc = stack["service"]
    try:
        await _gates_scenario(dev_env, stack, svc)
    finally:
        # entity workflows outlive this test's worker: end them so later tests never query them
        async for wf in dev_env.client.list_workflows(f"TocsinService='{svc}' AND ExecutionStatus='Running'"):
            await dev_env.client.get_workflow_handle(wf.id).terminate("test over")


async def _gates_scenario(dev_env: WorkflowEnvironment, stack: dict[str, Any], svc: str) -> None:
    build = await arun(
        stack,
        "build",
        "--repo",
        svc,
        "--branch",
        "main",
        "--commit",
        "cafe1234",
        "--status",
        "success",
        "--author",
        "carol",
    )
    assert build.returncode == 0, build.stderr
    green = Deploy(stack, "--service", svc, "--env", "prod", "--version", "v5", "--by", "dave", "--commit", "cafe1234")
    state = await until_stage(dev_env, green.id, "pending_approval")
    gates = {g.name: (g.passed, g.detail) for g in state.gates}
    assert gates["pipeline"][0] and gates["pipeline"][1].startswith("green")
    assert gates["incidents"] == (True, "no open critical incident")
    await arun(stack, "reject", green.id, "--by", "dave", "--reason", "withdrawn")  # the deployer may withdraw
    assert (await green.finish())[0] == 4

    alert = await arun(stack, "alert", "--name", "CheckoutDown", "--severity", "critical", "--service", svc)
    assert alert.returncode == 0, alert.stderr
    incident = alert.stdout.strip()
    query = f"TocsinKind='incident' AND TocsinService='{svc}'"
    for _ in range(100):
        if (await dev_env.client.count_workflows(query)).count:
            break
        await asyncio.sleep(0.1)
    blocked = Deploy(stack, "--service", svc, "--env", "prod", "--version", "v6", "--by", "dave")
    code, _, err = await blocked.finish()
    assert code == 4 and "incidents gate" in err and incident in err

    hotfix = Deploy(
        stack,
        "--service",
        svc,
        "--env",
        "prod",
        "--version",
        "v7",
        "--by",
        "dave",
        "--emergency",
        "--reason",
        f"fix for {incident}",
    )
    state = await until_stage(dev_env, hotfix.id, "pending_approval")
    assert state.emergency and [g.overridden for g in state.gates] == [False, True, False]
    await arun(stack, "approve", hotfix.id, "--by", "bob")
    assert (await hotfix.finish())[0] == 0

    export = await arun(stack, "audit", "export", "--service", svc, "--since", "1h")
    records = [json.loads(line) for line in export.stdout.splitlines()]
    assert verify_chain(export.stdout.splitlines()) is None
    assert {"deployment", "pipeline", "incident"} <= {r["kind"] for r in records}
    assert any(r["kind"] == "pipeline" and r["actor"] == "carol" for r in records)
    # sealed in the journal when it happened: the emergency request and its override of the incidents gate
    hot = [r for r in records if r["workflow_id"] == hotfix.id]
    assert any(r["action"] == "deployment.requested" and r["detail"]["emergency"] is True for r in hot), hot
    assert any(r["action"] == "deployment.gate" and r["detail"]["gate"] == "emergency" for r in hot), hot


async def test_rollback_after_a_rejected_deployment_rolls_back_the_last_that_went_out(
    dev_env: WorkflowEnvironment, stack: dict[str, Any], hooks: FakeHooks
) -> None:
    svc = stack["service"]
    out = Deploy(stack, "--service", svc, "--env", "prod", "--version", "v1", "--by", "dave")
    await until_stage(dev_env, out.id, "pending_approval")
    assert (await arun(stack, "approve", out.id, "--by", "alice")).returncode == 0
    assert (await out.finish())[0] == 0
    rejected = Deploy(stack, "--service", svc, "--env", "prod", "--version", "v2", "--by", "dave")
    await until_stage(dev_env, rejected.id, "pending_approval")
    assert (await arun(stack, "reject", rejected.id, "--by", "bob", "--reason", "not today")).returncode == 0
    assert (await rejected.finish())[0] == 4

    back = await arun(stack, "rollback", "--service", svc, "--env", "prod", "--by", "bob", "--reason", "v1 leaks")
    assert back.returncode == 0, back.stderr
    assert back.stdout.strip() == f"{out.id}/rollback"
    result = await dev_env.client.get_workflow_handle_for(DeploymentWorkflow.run, back.stdout.strip()).result()
    assert result.outcome == "rolled_back" and result.version == "v1"
    assert hooks.calls_to("/rollback")[-1].body["version"] == "v1"
    # what went out last is rolled back now: a second rollback (a retried CI step) does nothing
    again = await arun(stack, "rollback", "--service", svc, "--env", "prod", "--by", "bob", "--reason", "v1 leaks")
    assert again.returncode == 1 and "nothing to roll back" in again.stderr and "rolled back" in again.stderr
    assert len(hooks.calls_to("/rollback")) == 1


async def test_deploy_controls_from_the_cli(
    dev_env: WorkflowEnvironment, stack: dict[str, Any], hooks: FakeHooks
) -> None:
    svc = stack["service"]
    canary = Deploy(stack, "--service", svc, "--env", "stage", "--version", "v1", "--by", "erin")
    await until_stage(dev_env, canary.id, "canary")
    paused = await arun(stack, "deploy", "pause", canary.id, "--by", "frank", "--reason", "checking logs")
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.strip() == f"{canary.id}: pause sent by frank"
    handle = dev_env.client.get_workflow_handle_for(DeploymentWorkflow.run, canary.id)
    for _ in range(100):
        if (await handle.query(DeploymentWorkflow.state)).paused:
            break
        await asyncio.sleep(0.1)
    twice = await arun(stack, "deploy", "pause", canary.id, "--by", "frank")
    assert twice.returncode == 2 and "paused already" in twice.stderr, twice.stderr
    assert (await arun(stack, "deploy", "resume", canary.id, "--by", "frank")).returncode == 0
    promoted = await arun(stack, "deploy", "promote", canary.id, "--by", "gina", "--reason", "hotfix")
    assert promoted.returncode == 0, promoted.stderr
    code, _, err = await canary.finish()
    assert code == 0, err
    result = await handle.result()
    steered = [(e.actor, e.action) for e in result.timeline if e.actor in ("frank", "gina")]
    assert steered == [("frank", "paused"), ("frank", "resumed"), ("gina", "promoted")], steered
    late = await arun(stack, "deploy", "abort", canary.id, "--by", "frank")
    assert late.returncode == 2 and "finished" in late.stderr, late.stderr
    unknown = await arun(stack, "deploy", "resume", f"deploy/{svc}/stage/nope", "--by", "frank")
    assert unknown.returncode == 2 and "nope" in unknown.stderr

    aborted = Deploy(stack, "--service", svc, "--env", "stage", "--version", "v2", "--by", "erin")
    await until_stage(dev_env, aborted.id, "canary")
    assert (
        await arun(stack, "deploy", "abort", aborted.id, "--by", "frank", "--reason", "wrong build")
    ).returncode == 0
    code, _, err = await aborted.finish()
    assert code == 3 and "wrong build" in err
    mixed = await arun(stack, "deploy", "--service", svc, "abort", aborted.id, "--by", "frank")
    assert mixed.returncode == 2 and mixed.stderr.startswith("tocsin: --service:")


async def test_no_deploy_hook_is_recorded_only_and_production_needs_one(
    dev_env: WorkflowEnvironment, stack: dict[str, Any], hooks: FakeHooks
) -> None:
    svc = stack["service"]
    recorded = Deploy(stack, "--service", svc, "--env", "dev", "--version", "v1", "--by", "erin")
    code, _, err = await recorded.finish()
    assert code == 0, err
    assert err.strip().splitlines()[-1].startswith("recorded only (no deploy hook):"), err
    assert "stage: recorded only (no deploy hook)" in err and "live" not in err
    assert hooks.calls_to("/deploy") == []
    refused = await arun(stack, "deploy", "--service", svc, "--env", "live", "--version", "v1", "--by", "erin")
    assert refused.returncode == 2 and refused.stderr.startswith("tocsin: --env:"), refused.stderr
    assert "production: true" in refused.stderr and "hooks.deploy" in refused.stderr
    missing = await arun(stack, "deploy", "--service", svc, "--env", "dev", "--version", "v1")
    assert missing.returncode == 2 and missing.stderr.startswith("tocsin: --by:")
