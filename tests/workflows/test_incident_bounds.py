"""An incident stays bounded whatever arrives: 10,000 alerts x 15 labels, re-sent, then resolved.

Issue 10, item 1: with every alert (resolved ones too) and one timeline entry per alert change
kept in its state, a big group's continue-as-new input went over Temporal's 2 MB limit and the
incident was stuck for good (no resolve notice, ``ack`` failing, ``state`` timing out).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from operations import Context, incidents
from operations.alerts import dispatch_alerts, fingerprint
from tests.helpers import ops, outbox, person, tocsin_worker
from workers.registry import WORKFLOWS, workflow_runner
from workflows.incident.models import Alert
from workflows.incident.workflow import IncidentWorkflow

ALERTS = 10_000
LABELS = 15
BATCH = 500
LIMIT = 512 * 1024
"""The most bytes the state (query answer, result, each continue-as-new input) may take here."""


def config(write_config):  # type: ignore[no-untyped-def]
    return write_config(
        {
            "channels": {"oncall": {"type": "console"}, "default": {"type": "console"}},
            "receivers": [{"name": "default", "channels": ["default"]}, {"name": "oncall", "channels": ["oncall"]}],
            "route": {
                "receiver": "default",
                "group_by": ["alertname", "service"],
                "group_wait": "30s",
                "group_interval": "1m",
                "routes": [{"matchers": ['severity="critical"'], "receiver": "oncall"}],
            },
        }
    )


def storm(service: str, status: str = "firing") -> list[Alert]:
    """One group: ``ALERTS`` alerts with ``LABELS`` labels each."""
    alerts = []
    for i in range(ALERTS):
        labels = {"alertname": "DiskFull", "service": service, "severity": "critical", "instance": f"host-{i:05}"}
        labels.update({f"label_{j:02}": f"value-{j}-{i:05}" for j in range(LABELS - len(labels))})
        alerts.append(
            Alert(
                fingerprint=fingerprint(labels),
                status=status,  # type: ignore[arg-type]
                labels=labels,
                annotations={"summary": f"disk full on host-{i:05}", "description": "the disk is 99% full"},
                generator_url="http://prometheus/graph?g0.expr=disk",
            )
        )
    return alerts


async def send(ctx: Context, alerts: list[Alert]) -> list[str]:
    """As Alertmanager would post them: in webhooks of ``BATCH`` alerts."""
    ids: set[str] = set()
    for i in range(0, len(alerts), BATCH):
        ids.update(await dispatch_alerts(ctx, alerts[i : i + BATCH], source="alertmanager:am"))
    return sorted(ids)


def size(value: object) -> int:
    """Bytes of a value as Temporal carries it (the pydantic data converter's payload)."""
    return len(pydantic_data_converter.payload_converter.to_payloads([value])[0].data)


async def runs(client: Client, wid: str) -> list[WorkflowHistory]:
    """Every run of a workflow, last first (walking back through continue-as-new)."""
    out: list[WorkflowHistory] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(wid, run_id=run_id).fetch_history()
        out.append(history)
        started = history.events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            return out
        run_id = started.continued_execution_run_id


async def until(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition never became true")


async def test_ten_thousand_alerts_resent_three_times_then_resolved(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    cfg = config(write_config)
    ctx = ops(time_env.client, task_queue, cfg)
    service = f"disk-{task_queue}"
    firing = storm(service)
    started = time.monotonic()
    wid = ""
    try:
        async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
            [wid] = await send(ctx, firing)
            await time_env.sleep(timedelta(seconds=31))  # group_wait
            await until(lambda: any(r["key"].startswith(f"{wid}/rung-0") for r in outbox(tmp_path)))
            for _ in range(2):  # Alertmanager re-sends the whole group
                assert await send(ctx, firing) == [wid]
            handle = time_env.client.get_workflow_handle_for(IncidentWorkflow.run, wid)
            acked = await incidents.acknowledge(ops(time_env.client, task_queue), person("alice"), wid, "on it")
            state = await handle.query(IncidentWorkflow.state)
            assert acked.accepted and acked.status == "acknowledged"
            assert state.status == "acknowledged"
            assert (state.counts.firing, state.counts.seen, state.counts.untracked) == (ALERTS, ALERTS, 0)
            state_bytes = size(state)
            assert await send(ctx, storm(service, "resolved")) == [wid]
            final = await asyncio.wait_for(handle.result(), timeout=120)
            await until(lambda: any(r["key"].startswith(f"{wid}/resolved-") for r in outbox(tmp_path)))
            histories = await runs(time_env.client, wid)
    finally:
        if wid:
            try:
                await time_env.client.get_workflow_handle(wid).terminate("test over")
            except RPCError:
                pass
    elapsed = time.monotonic() - started
    inputs = [len(h.events[0].workflow_execution_started_event_attributes.input.payloads[0].data) for h in histories]
    history_bytes = [sum(e.ByteSize() for e in h.events) for h in histories]
    print(
        f"\n{ALERTS} alerts x {LABELS} labels, sent 3x then resolved in {elapsed:.1f}s: state query {state_bytes} B, "
        f"result {size(final)} B, {len(histories)} runs, largest continue-as-new input {max(inputs)} B, "
        f"run histories {history_bytes} B ({[len(h.events) for h in histories]} events), last run first"
    )
    assert final.status == "resolved" and final.resolved_by == "alertmanager"
    assert (final.counts.firing, final.counts.resolved, final.counts.seen) == (0, ALERTS, ALERTS)
    assert final.alerts and all(a.status == "resolved" for a in final.alerts.values())
    resolved = [r for r in outbox(tmp_path) if r["key"].startswith(f"{wid}/resolved-")]
    assert [r["channel"] for r in resolved] == ["oncall"] and resolved[0]["message"]["title"].startswith("[RESOLVED]")
    assert state_bytes < LIMIT and size(final) < LIMIT
    assert len(histories) > 1, "the incident continued as new while the storm went on"
    assert max(inputs) < LIMIT, inputs
    assert max(history_bytes) < 32 * 1024 * 1024, history_bytes
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=workflow_runner())
    for history in histories:  # the bounded branch replays too (continue-as-new in group_wait included)
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None, replayed.replay_failure
