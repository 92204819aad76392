"""Rollback triggers: a CriticalErrorRate alert for service S in env E rolls back what S/E has going out
(a running canary), else the last deployment that went out."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from operations.alerts import dispatch_alerts, fingerprint
from operations.deployments import approve, start_deployment
from tests.fakes.hooks import FakeHooks
from tests.helpers import ops, person, tocsin_worker
from workflows.deployment import DeployInput
from workflows.deployment.workflow import DeploymentWorkflow
from workflows.incident.models import Alert
from workflows.incident.workflow import IncidentWorkflow


async def test_rollback_trigger_alert_rolls_back_the_running_deployment(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    service = f"orders-{uuid.uuid4().hex[:6]}"
    with FakeHooks() as hooks:
        hook_cfg = {"deploy": {"url": hooks.url + "/deploy"}, "rollback": {"url": hooks.url + "/rollback"}}
        path = write_config(
            {
                "channels": {"log": {"type": "console"}},
                "receivers": [{"name": "ops", "channels": ["log"]}],
                "route": {"receiver": "ops", "group_by": ["alertname", "service"], "group_wait": "0s"},
                "rollback_triggers": ["CriticalErrorRate", "CriticalP95Latency"],
                "environments": {
                    "stage": {
                        "required_approvals": 0,
                        "receiver": "ops",
                        "canary": {"steps": [10, 100], "bake": "1h"},
                        "hooks": hook_cfg,
                    }
                },
            }
        )
        client = dev_env.client
        async with tocsin_worker(client, task_queue, tmp_path, path):
            handle, _ = await start_deployment(
                ops(client, task_queue, path),
                person("dave"),
                DeployInput(service=service, env="stage", version="v2", by="dave"),
            )
            for _ in range(300):
                st = await handle.query(DeploymentWorkflow.state)
                if st.stage == "canary" and st.weight == 10:
                    break
                await asyncio.sleep(0.05)
            assert st.stage == "canary", st.stage
            labels = {"alertname": "CriticalErrorRate", "severity": "critical", "service": service, "env": "stage"}
            [incident] = await dispatch_alerts(
                ops(client, task_queue, path), [Alert(fingerprint=fingerprint(labels), labels=labels)], source="test"
            )
            result = await asyncio.wait_for(handle.result(), timeout=60)
            inc = await client.get_workflow_handle_for(IncidentWorkflow.run, incident).query(IncidentWorkflow.state)
    assert result.outcome == "rolled_back"
    rollback = [e for e in result.timeline if e.action == "rollback"]
    assert rollback and rollback[0].actor == f"tocsin:{incident}" and "CriticalErrorRate" in rollback[0].detail
    assert hooks.calls_to("/rollback")[0].body["service"] == service
    assert any(e.action == "rollback requested" and "signalled" in e.detail for e in inc.timeline)


async def test_rollback_trigger_rolls_back_what_is_live_not_a_pending_approval(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    """The alert is about the live version: a deployment still waiting for approval is left alone."""
    service = f"orders-{uuid.uuid4().hex[:6]}"
    with FakeHooks() as hooks:
        hook_cfg = {"deploy": {"url": hooks.url + "/deploy"}, "rollback": {"url": hooks.url + "/rollback"}}
        path = write_config(
            {
                "channels": {"log": {"type": "console"}},
                "receivers": [{"name": "ops", "channels": ["log"]}],
                "route": {"receiver": "ops", "group_by": ["alertname", "service"], "group_wait": "0s"},
                "rollback_triggers": ["CriticalErrorRate"],
                "environments": {
                    "stage": {
                        "approvers": ["alice"],
                        "required_approvals": 1,
                        "receiver": "ops",
                        "canary": {"steps": [100]},
                        "hooks": hook_cfg,
                    }
                },
            }
        )
        client = dev_env.client
        ctx = ops(client, task_queue, path)
        async with tocsin_worker(client, task_queue, tmp_path, path):
            live, _ = await start_deployment(
                ctx, person("dave"), DeployInput(service=service, env="stage", version="v1", by="dave")
            )
            pending, _ = await start_deployment(
                ctx, person("dave"), DeployInput(service=service, env="stage", version="v2", by="dave")
            )
            for handle in (live, pending):
                for _ in range(300):
                    if (await handle.query(DeploymentWorkflow.state)).stage == "pending_approval":
                        break
                    await asyncio.sleep(0.05)
            await approve(ctx, person("alice"), live.id)
            assert (await live.result()).outcome == "deployed"
            labels = {"alertname": "CriticalErrorRate", "severity": "critical", "service": service, "env": "stage"}
            await dispatch_alerts(ctx, [Alert(fingerprint=fingerprint(labels), labels=labels)], source="test")
            back = client.get_workflow_handle_for(DeploymentWorkflow.run, f"{live.id}/rollback")
            result = None
            for _ in range(300):
                try:
                    result = await asyncio.wait_for(back.result(), timeout=60)
                    break
                except RPCError:  # not started yet
                    await asyncio.sleep(0.1)
            still = await pending.query(DeploymentWorkflow.state)
            await pending.terminate("test over")
    assert result is not None and result.outcome == "rolled_back" and result.version == "v1"
    assert [c.body["version"] for c in hooks.calls_to("/rollback")] == ["v1"]
    assert still.stage == "pending_approval" and still.outcome is None
