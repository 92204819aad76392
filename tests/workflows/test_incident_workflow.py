"""IncidentWorkflow on the time-skipping server: grouping, the L1–L4 ladder, human actions, suppression."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from operations import NotFound, Refused, incidents
from operations.alerts import dispatch_alerts, fingerprint
from operations.silences import add_silence
from tests.helpers import ops, outbox, person, tocsin_worker
from workflows.incident.models import Alert, IncidentState
from workflows.incident.workflow import IncidentWorkflow

LEVELS = ["oncall", "senior", "cto", "emergency"]


def config_dict(**route_extra: object) -> dict:  # type: ignore[type-arg]
    return {
        "channels": {name: {"type": "console"} for name in ["default", *LEVELS]},
        "receivers": [
            {"name": "default", "channels": ["default"]},
            *({"name": name, "channels": [name]} for name in LEVELS),
        ],
        "route": {
            "receiver": "default",
            "group_by": ["alertname", "service"],
            "group_wait": "30s",
            "group_interval": "1m",
            "routes": [
                {"matchers": ['severity="critical"'], "receiver": "oncall", "escalation": "default", **route_extra}
            ],
        },
        "escalation_policies": {
            "default": {
                "levels": [
                    {"after": "0m", "receiver": "oncall"},
                    {"after": "5m", "receiver": "senior"},
                    {"after": "10m", "receiver": "cto"},
                    {"after": "15m", "receiver": "emergency"},
                ],
                "ack_timeout": "30m",
            }
        },
    }


def alert(
    name: str = "HighErrorRate", service: str = "payments", status: str = "firing", severity: str = "critical"
) -> Alert:
    labels = {"alertname": name, "service": service, "severity": severity}
    return Alert(
        fingerprint=fingerprint(labels),
        status=status,
        labels=labels,  # type: ignore[arg-type]
        annotations={"summary": f"{name} on {service}"},
    )


def levels_sent(home: Path, incident: str) -> list[str]:
    """Channels reached by escalation rungs, in order (rung sends only)."""
    return [r["channel"] for r in outbox(home) if r["key"].startswith(f"{incident}/rung-")]


def rungs_sent(home: Path, incident: str) -> list[tuple[str, str]]:
    """(rung, channel) of every rung send, in rung order."""
    sent = [(r["key"].split("/")[-2], r["channel"]) for r in outbox(home) if r["key"].startswith(f"{incident}/rung-")]
    return sorted(sent, key=lambda s: int(s[0].split("-")[1]))


async def state_of(env: WorkflowEnvironment, wid: str) -> IncidentState:
    return await env.client.get_workflow_handle_for(IncidentWorkflow.run, wid).query(IncidentWorkflow.state)


async def until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


@pytest.fixture
def cfg(write_config):  # type: ignore[no-untyped-def]
    return write_config(config_dict())


@pytest.fixture
def service(task_queue: str) -> str:
    return f"svc-{task_queue}"  # incidents outlive tests: a fresh group per test


STARTED: list[str] = []


@pytest.fixture(autouse=True)
async def _terminate_leftovers(time_env: WorkflowEnvironment):  # type: ignore[no-untyped-def]
    """Time skipping is global: incidents of one test must not keep timers running into the next."""
    yield
    from temporalio.service import RPCError

    for wid in STARTED:
        try:
            await time_env.client.get_workflow_handle(wid).terminate("test over")
        except RPCError:
            pass
    STARTED.clear()


async def start(env: WorkflowEnvironment, cfg: Path, task_queue: str, *alerts: Alert) -> str:
    [wid] = await dispatch_alerts(ops(env.client, task_queue, cfg), list(alerts), source="test")
    STARTED.append(wid)
    return wid


async def test_ladder_climbs_every_five_minutes_until_acknowledged(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, cfg: Path, service: str
) -> None:
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        wid = await start(time_env, cfg, task_queue, alert(service=service))
        await time_env.sleep(timedelta(seconds=31))  # group_wait
        await until(lambda: _count(tmp_path, wid, 1))
        assert levels_sent(tmp_path, wid) == ["oncall"]
        await time_env.sleep(timedelta(minutes=5))
        await until(lambda: _count(tmp_path, wid, 2))
        assert levels_sent(tmp_path, wid) == ["oncall", "senior"]
        result = await incidents.acknowledge(ops(time_env.client, task_queue), person("alice"), wid, "on it")
        assert result.accepted and result.status == "acknowledged"
        await time_env.sleep(timedelta(minutes=20))
        state = await state_of(time_env, wid)
    assert levels_sent(tmp_path, wid) == ["oncall", "senior"], "acknowledge stops the ladder"
    assert state.status == "acknowledged" and state.acknowledged_by == "alice" and state.level == 2
    assert state.mtta_seconds is not None and 5 * 60 < state.mtta_seconds < 7 * 60
    assert any(e.action == "acknowledged" and e.actor == "alice" for e in state.timeline)


async def _count(home: Path, wid: str, n: int) -> bool:
    return len(levels_sent(home, wid)) >= n


async def test_unacknowledged_incident_reaches_l4_once_each(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, cfg: Path, service: str
) -> None:
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        wid = await start(time_env, cfg, task_queue, alert(service=service))
        for _ in range(5):
            await time_env.sleep(timedelta(minutes=5))
            await asyncio.sleep(0.2)
        await until(lambda: _count(tmp_path, wid, 4))
        await time_env.sleep(timedelta(minutes=30))
        state = await state_of(time_env, wid)
    assert levels_sent(tmp_path, wid) == LEVELS
    assert state.level == 4 and state.rungs_done == 4


async def test_resolved_within_group_wait_sends_nothing(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, cfg: Path, service: str
) -> None:
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        wid = await start(time_env, cfg, task_queue, alert(service=service))
        await dispatch_alerts(
            ops(time_env.client, task_queue, cfg), [alert(service=service, status="resolved")], source="test"
        )
        result = await time_env.client.get_workflow_handle_for(IncidentWorkflow.run, wid).result()
    assert result.status == "resolved" and result.resolved_by == "alertmanager"
    assert [r for r in outbox(tmp_path) if r["key"].startswith(wid)] == []
    assert any("nothing was sent" in e.detail for e in result.timeline), [(e.action, e.detail) for e in result.timeline]


async def test_grouping_puts_alerts_of_one_group_in_one_incident(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, cfg: Path, service: str
) -> None:
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        a1, a2 = alert(service=service), alert(service=service)
        a2.labels["instance"] = "b"
        a2.fingerprint = fingerprint(a2.labels)
        ids = await dispatch_alerts(
            ops(time_env.client, task_queue, cfg), [a1, a2, alert("Other", service)], source="test"
        )
        STARTED.extend(ids)
        assert len(ids) == 2  # grouped by alertname+service
        await time_env.sleep(timedelta(seconds=31))
        await until(lambda: _count(tmp_path, ids[0], 1))
        state = await state_of(time_env, ids[0])
    assert len(state.alerts) == 2 and state.group_labels == {"alertname": "HighErrorRate", "service": service}


async def test_actions_carry_identity_and_refuse_after_resolve(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, cfg: Path, service: str
) -> None:
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        wid = await start(time_env, cfg, task_queue, alert(service=service))
        await time_env.sleep(timedelta(seconds=31))
        await until(lambda: _count(tmp_path, wid, 1))
        done = await incidents.resolve(ops(time_env.client, task_queue), person("bob"), wid, "rolled back")
        assert done.status == "resolved"
        final = await time_env.client.get_workflow_handle_for(IncidentWorkflow.run, wid).result()
        with pytest.raises(Refused):
            await incidents.acknowledge(ops(time_env.client, task_queue), person("carol"), wid)
        with pytest.raises(NotFound):
            await incidents.acknowledge(ops(time_env.client, task_queue), person("x"), "incident/doesnotexist")
    assert final.resolved_by == "bob" and final.mttr_seconds is not None
    resolved_notice = [r for r in outbox(tmp_path) if r["key"].startswith(f"{wid}/resolved-")]
    assert [r["channel"] for r in resolved_notice] == ["oncall"], "everyone notified hears it was resolved"
    assert resolved_notice[0]["message"]["title"].startswith("[RESOLVED]")


async def test_escalate_now_and_ack_timeout_reescalate(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, cfg: Path, service: str
) -> None:
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        wid = await start(time_env, cfg, task_queue, alert(service=service))
        await time_env.sleep(timedelta(seconds=31))
        await until(lambda: _count(tmp_path, wid, 1))
        await incidents.escalate(ops(time_env.client, task_queue), person("dave"), wid)
        await until(lambda: _count(tmp_path, wid, 2))
        await incidents.acknowledge(ops(time_env.client, task_queue), person("erin"), wid)
        await time_env.sleep(timedelta(minutes=31))  # ack_timeout 30m
        await until(lambda: _count(tmp_path, wid, 3))
        state = await state_of(time_env, wid)
    # Rungs overdue at once (L3 and L4 after the ack timed out) are delivered side by side, each to its level.
    assert rungs_sent(tmp_path, wid)[:3] == [("rung-0", "oncall"), ("rung-1", "senior"), ("rung-2", "cto")]
    assert any(e.action == "ack timed out" for e in state.timeline)
    assert state.status == "notified"


async def test_silence_holds_notifications_and_expiry_releases_them(
    fresh_time_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    cfg: Path,
    service: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    time_env = fresh_time_env  # the silences store outlives the test: keep it off the shared server
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        record = await add_silence(
            ops(time_env.client, task_queue), person("ops"), [f'service="{service}"'], "1h", "maintenance"
        )
        wid = await start(time_env, cfg, task_queue, alert(service=service))
        await time_env.sleep(timedelta(seconds=31))
        await asyncio.sleep(0.5)
        state = await state_of(time_env, wid)
        assert state.status == "silenced" and record.id in state.suppressed_by[0]
        assert levels_sent(tmp_path, wid) == []
        await time_env.sleep(timedelta(minutes=61))
        await until(lambda: _count(tmp_path, wid, 1))
    expired = [r for r in outbox(tmp_path) if "Silence" in r["message"]["title"]]
    assert expired and "expired" in expired[0]["message"]["title"] and "ops" in expired[0]["message"]["text"]
