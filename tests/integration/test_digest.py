"""Off-hours digest: warnings held (never dropped) and sent as one message by a Temporal Schedule."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio.client import ScheduleSpec
from temporalio.testing import WorkflowEnvironment

from operations.alerts import dispatch_alerts, fingerprint
from operations.config import load_config_file
from tests.helpers import ops, outbox, tocsin_worker
from workers.schedules import digest_schedule_id, ensure_schedules
from workflows.incident.models import Alert
from workflows.incident.workflow import IncidentWorkflow

ALWAYS = [{"times": [{"start_time": "00:00", "end_time": "24:00"}]}]


def config(receiver: str) -> dict:  # type: ignore[type-arg]
    return {
        "channels": {"chat": {"type": "console"}, "digest": {"type": "console"}},
        "receivers": [
            {"name": "chat", "channels": ["chat"]},
            {
                "name": receiver,
                "channels": ["digest"],
                "digest": True,
                "digest_at": "08:00",
                "digest_timezone": "Asia/Seoul",
            },
        ],
        "time_intervals": [{"name": "off-hours", "time_intervals": ALWAYS}],
        "route": {
            "receiver": "chat",
            "group_by": ["alertname", "service"],
            "group_wait": "0s",
            "routes": [
                {
                    "matchers": ['severity="warning"'],
                    "receiver": receiver,
                    "active_time_intervals": ["off-hours"],
                    "continue": True,
                },
                {"matchers": ['severity="warning"'], "receiver": "chat", "mute_time_intervals": ["off-hours"]},
            ],
        },
    }


async def wait_until(predicate, timeout: float = 30):  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.2)):
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError("timed out")


async def test_warnings_are_held_off_hours_and_sent_as_one_digest(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    receiver = f"night-{uuid.uuid4().hex[:6]}"
    path = write_config(config(receiver))
    cfg = load_config_file(path)
    client = dev_env.client
    assert await ensure_schedules(client, cfg, task_queue) == [digest_schedule_id(receiver)]
    desc = await client.get_schedule_handle(digest_schedule_id(receiver)).describe()
    spec: ScheduleSpec = desc.schedule.spec
    assert spec.time_zone_name == "Asia/Seoul"
    assert [(c.hour[0].start, c.minute[0].start) for c in spec.calendars] == [(8, 0)]

    def warn(name: str) -> Alert:
        labels = {"alertname": name, "service": "batch", "severity": "warning"}
        return Alert(fingerprint=fingerprint(labels), labels=labels, annotations={"summary": name})

    async with tocsin_worker(client, task_queue, tmp_path, path):
        ids = await dispatch_alerts(
            ops(client, task_queue, cfg),
            [warn("DiskAlmostFull"), warn("SlowQueries"), warn("CertExpiring")],
            source="test",
        )
        assert len(ids) == 6  # each warning reaches the digest route and the (muted) chat route

        async def statuses() -> dict[str, str] | None:
            found = {}
            for wid in ids:
                st = await client.get_workflow_handle_for(IncidentWorkflow.run, wid).query(IncidentWorkflow.state)
                found[wid] = st.status
            return found if sorted(found.values()) == ["held"] * 3 + ["muted"] * 3 else None

        by_status = await wait_until(statuses)
        held = [wid for wid, status in by_status.items() if status == "held"]
        assert outbox(tmp_path) == [], "nothing is sent off-hours"
        resolved = Alert(**{**warn("CertExpiring").model_dump(), "status": "resolved"})
        await dispatch_alerts(ops(client, task_queue, cfg), [resolved], source="test")
        await asyncio.sleep(1)

        await client.get_schedule_handle(digest_schedule_id(receiver)).trigger()
        box = await wait_until(lambda: _digests(tmp_path))
        assert len(box) == 1, "one digest message"
        text = box[0]["message"]["text"]
        for name in ("DiskAlmostFull", "SlowQueries", "CertExpiring"):
            assert name in text
        assert "resolved" in text and "still firing" in text

        async def released() -> bool:
            states = [
                await client.get_workflow_handle_for(IncidentWorkflow.run, wid).query(IncidentWorkflow.state)
                for wid in held
            ]
            return all(st.digest for st in states)

        assert await wait_until(released)
        await client.get_schedule_handle(digest_schedule_id(receiver)).trigger()
        await asyncio.sleep(2)
        assert len(await _digests(tmp_path) or []) == 1, "a held incident is sent once, not at every digest"
    await client.get_schedule_handle(digest_schedule_id(receiver)).delete()


async def _digests(home: Path) -> list[dict] | None:  # type: ignore[type-arg]
    found = [r for r in outbox(home) if r["channel"] == "digest"]
    return found or None
