"""The worker's sandbox (``workers.registry.workflow_runner``) catches non-determinism in workflow code.

The workflows below live in this module, which the sandbox re-imports for each
run like any Tocsin workflow module (``tests`` is a package on the path), so
what they call is restricted exactly as in ``workflows/``.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import datetime

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():
    import pytest
    from temporalio.testing import WorkflowEnvironment

    from workers.registry import PASSTHROUGH, workflow_runner

OWN_PACKAGES = {"workflows", "activities", "workers", "operations", "starters"}


@workflow.defn(name="SandboxReadsClock")
class ReadsClock:
    """Reads the host's clock: must fail its workflow task."""

    @workflow.run
    async def run(self) -> str:
        return datetime.now().isoformat()


@workflow.defn(name="SandboxRollsDice")
class RollsDice:
    """Uses the process-wide random generator: must fail its workflow task."""

    @workflow.run
    async def run(self) -> float:
        return random.random()


@workflow.defn(name="SandboxWorkflowClock")
class WorkflowClock:
    """The deterministic way: ``workflow.now()`` and ``workflow.random()``."""

    @workflow.run
    async def run(self) -> str:
        return f"{workflow.now().isoformat()} {workflow.random().random()}"


CONTRACTS = {
    "workflows.config",
    "workflows.environments",
    "workflows.models",
    "workflows.identity",
    "workflows.users",
    "workflows.audit",
    "workflows.search",
}


def test_flows_are_not_passed_through() -> None:
    """Only contracts and pure policy of Tocsin's own code pass through; every flow module stays sandboxed."""
    from workers.registry import WORKFLOWS

    passed = set(workflow_runner().restrictions.passthrough_modules)
    assert set(PASSTHROUGH) <= passed
    flows = {cls.__module__ for cls in WORKFLOWS} | {
        "workflows.delivery",
        "workflows.timer",
        "workflows.incident.muting",
    }
    own = {name for name in passed if name.split(".")[0] in OWN_PACKAGES}
    leaked = {name for name in own for flow in flows if flow == name or flow.startswith(name + ".")}
    assert not leaked, f"workflow code must stay sandboxed: {sorted(leaked)}"
    assert all(n.endswith(".models") or n.startswith("workflows.policy") or n in CONTRACTS for n in own), own


async def first_task_failure(client: Client, handle: WorkflowHandle, timeout: float = 15.0) -> str:
    """The failure message of the workflow's first failed workflow task."""
    for _ in range(int(timeout / 0.1)):
        async for event in client.get_workflow_handle(handle.id).fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                return event.workflow_task_failed_event_attributes.failure.message
        await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.id}: no workflow task failed within {timeout}s")


@pytest.mark.parametrize(("defn", "restricted"), [(ReadsClock, "datetime.datetime.now"), (RollsDice, "random.random")])
async def test_nondeterministic_call_fails_the_workflow_task(
    time_env: WorkflowEnvironment, task_queue: str, defn: type, restricted: str
) -> None:
    client = time_env.client
    async with Worker(
        client, task_queue=task_queue, workflows=[defn, WorkflowClock], workflow_runner=workflow_runner()
    ):
        handle = await client.start_workflow(
            defn.run,
            id=f"sandbox-{uuid.uuid4().hex[:8]}",  # type: ignore[attr-defined]
            task_queue=task_queue,
        )
        try:
            message = await first_task_failure(client, handle)
        finally:
            await handle.terminate("test over")
        control = await client.execute_workflow(
            WorkflowClock.run, id=f"sandbox-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
    assert f"Cannot access {restricted}" in message, message
    assert control  # the same worker and sandbox run deterministic workflow code
