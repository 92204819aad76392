"""A refusal by a workflow's state (acting on a resolved incident) is recorded like an authorization
refusal: handed to the door's refusal sink (the audit journal), with the actor and kind ``state``."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from operations import Refused
from operations.alerts import dispatch_alerts, fingerprint
from operations.auth import Refusal, set_refusal_sink
from operations.incidents import acknowledge, resolve
from tests.helpers import ops, person, tocsin_worker
from workflows.incident.models import Alert


async def test_acting_on_a_resolved_incident_is_a_recorded_refusal(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    labels = {"alertname": "StateRefusal", "service": f"svc-{task_queue}", "severity": "warning"}
    alert = Alert(fingerprint=fingerprint(labels), labels=labels, annotations={"summary": "x"})
    ctx = ops(time_env.client, task_queue)
    seen: list[Refusal] = []
    async with tocsin_worker(time_env.client, task_queue, tmp_path):
        [wid] = await dispatch_alerts(ctx, [alert], source="t")
        await resolve(ctx, person("alice"), wid, "done")
        set_refusal_sink(seen.append)
        try:
            with pytest.raises(Refused):
                await acknowledge(ctx, person("bob"), wid)
        finally:
            set_refusal_sink(None)
    assert len(seen) == 1, seen
    assert seen[0].actor.name == "bob" and seen[0].kind == "state" and seen[0].reason
