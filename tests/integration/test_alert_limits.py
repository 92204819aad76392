"""Groups too big for one Temporal call are still paged, each group on its own (real dev server).

Issue 10, item 2: a webhook with 6,000 alerts in one group, a 100 KB ``service`` label (a search
attribute over 2 KB) or a 10 MB annotation was refused for good by Temporal, never paged, and took
every other group of the webhook down with it.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from operations import BadInput, Context
from operations import alerts as alert_ops
from operations.alerts import dispatch_alerts
from starters.alertmanager import AMWebhook
from tests.helpers import ops, outbox, tocsin_worker
from workflows import search
from workflows.incident.models import IncidentState
from workflows.incident.workflow import IncidentWorkflow
from workflows.policy.alert_limits import SEARCH_ATTRIBUTE_MAX, utf8_len

MARKER = re.compile(r"…\[truncated [0-9.]+ (KiB|MiB)\]$")


@pytest.fixture
def cfg(write_config):  # type: ignore[no-untyped-def]
    return write_config(
        {
            "channels": {"pager": {"type": "console"}},
            "receivers": [{"name": "pager", "channels": ["pager"]}],
            "route": {"receiver": "pager", "group_by": ["alertname", "service"], "group_wait": "0s"},
        }
    )


def am_alert(name: str, service: str, i: int = 0, **extra: str) -> dict[str, Any]:
    labels = {"alertname": name, "service": service, "severity": "critical", "instance": f"host-{i:05}"}
    labels.update({f"label_{j}": f"value-{j}-{i:05}" for j in range(10)})
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"{name} on host-{i:05}", **extra},
        "startsAt": "2026-11-22T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom/graph",
    }


def webhook(alerts: list[dict[str, Any]]) -> AMWebhook:
    """Parsed as the gateway parses Alertmanager's body."""
    return AMWebhook.model_validate({"version": "4", "status": "firing", "receiver": "pager", "alerts": alerts})


def pages(home: Path, wid: str) -> list[dict[str, Any]]:
    return [r for r in outbox(home) if r["key"].startswith(f"{wid}/rung-0")]


async def paged(home: Path, wid: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := pages(home, wid):
            return found[0]["message"]  # type: ignore[no-any-return]
        await asyncio.sleep(0.2)
    raise AssertionError(f"{wid} was never paged")


async def state(env: WorkflowEnvironment, wid: str) -> IncidentState:
    return await env.client.get_workflow_handle_for(IncidentWorkflow.run, wid).query(IncidentWorkflow.state)


def run_id() -> str:
    return uuid.uuid4().hex[:8]


async def test_six_thousand_alerts_in_one_group_are_one_incident(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, cfg: Path
) -> None:
    service = f"big-{run_id()}"
    body = webhook([am_alert("DiskFull", service, i) for i in range(6000)])
    assert len(body.model_dump_json()) > 2 * 1024 * 1024, "more than Temporal takes in one payload"
    async with tocsin_worker(dev_env.client, task_queue, tmp_path, cfg):
        [wid] = await dispatch_alerts(ops(dev_env.client, task_queue, cfg), body.to_alerts(), source="alertmanager:am")
        await paged(tmp_path, wid)
        st = await state(dev_env, wid)
    assert (st.counts.firing, st.counts.seen) == (6000, 6000)
    assert len(st.alerts) == 100 and st.notified_at is not None


async def test_a_huge_service_label_is_paged_truncated(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, cfg: Path
) -> None:
    service = f"huge-{run_id()}-" + "s" * 100_000
    body = webhook([am_alert("HugeLabel", service)])
    async with tocsin_worker(dev_env.client, task_queue, tmp_path, cfg):
        [wid] = await dispatch_alerts(ops(dev_env.client, task_queue, cfg), body.to_alerts(), source="alertmanager:am")
        message = await paged(tmp_path, wid)
        st = await state(dev_env, wid)
        described = await dev_env.client.get_workflow_handle(wid).describe()
    label = st.group_labels["service"]
    assert utf8_len(label) <= 4096 and MARKER.search(label) and label.startswith(service[:4000])
    assert {f["title"]: f["value"] for f in message["fields"]}["service"] == label
    attribute = described.typed_search_attributes.get(search.SERVICE) or ""
    assert utf8_len(attribute) <= SEARCH_ATTRIBUTE_MAX and MARKER.search(attribute)


async def test_a_ten_megabyte_annotation_is_paged_truncated(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, cfg: Path
) -> None:
    service = f"annot-{run_id()}"
    body = webhook([am_alert("HugeAnnotation", service, summary="x" * 10 * 1024 * 1024)])
    async with tocsin_worker(dev_env.client, task_queue, tmp_path, cfg):
        [wid] = await dispatch_alerts(ops(dev_env.client, task_queue, cfg), body.to_alerts(), source="alertmanager:am")
        message = await paged(tmp_path, wid)
        st = await state(dev_env, wid)
    [alert] = st.alerts.values()
    assert alert.annotations["summary"].endswith("…[truncated 10.0 MiB]")
    assert "…[truncated 10.0 MiB]" in message["text"] and len(message["text"]) < 4096


async def test_a_poisoned_group_does_not_stop_the_normal_one(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, cfg: Path
) -> None:
    run = run_id()
    # What used to be refused at once, together: a 100 KB service label, 10 MB annotations, many alerts.
    huge = f"p-{run}-" + "s" * 100_000
    poisoned = [am_alert("Poison", huge, i, description="d" * 10 * 1024 * 1024) for i in range(2)]
    poisoned += [am_alert("Poison", huge, i) for i in range(2, 500)]
    body = webhook([*poisoned, am_alert("Normal", f"n-{run}")])
    async with tocsin_worker(dev_env.client, task_queue, tmp_path, cfg):
        ids = await dispatch_alerts(ops(dev_env.client, task_queue, cfg), body.to_alerts(), source="alertmanager:am")
        assert len(ids) == 2 and ids.rejected == {}
        messages = [await paged(tmp_path, wid) for wid in ids]
    assert [m["title"].split("]")[1].split(" on ")[0].strip() for m in messages] == ["Poison", "Normal"]


async def test_a_group_temporal_refuses_for_good_does_not_stop_the_others(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without batching, a group of 6,000 alerts is one payload over Temporal's limit: a real refusal.
    monkeypatch.setattr(alert_ops, "signal_batches", lambda alerts, budget=0: [alerts])
    run = run_id()
    body = webhook([*(am_alert("Poison", f"p-{run}", i) for i in range(6000)), am_alert("Normal", f"n-{run}")])
    ctx: Context = ops(dev_env.client, task_queue, cfg)
    async with tocsin_worker(dev_env.client, task_queue, tmp_path, cfg):
        ids = await dispatch_alerts(ctx, body.to_alerts(), source="alertmanager:am")
        [normal] = ids
        await paged(tmp_path, normal)
        with pytest.raises(BadInput) as every_group:
            await dispatch_alerts(ctx, webhook(body.model_dump()["alerts"][:6000]).to_alerts(), source="am")
    [(poison, reason)] = ids.rejected.items()
    assert poison != normal and "(after 0 of 6000 alerts)" in reason
    assert every_group.value.field == "alerts"
