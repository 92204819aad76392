"""An incident whose start carried no search attributes publishes them itself (``incident-own-attributes``).

The gateway sends them only with the first signal-with-start of an incident it has not sent them
for lately (``operations.alerts``). An incident that resolved, ended and fired again within that
window starts without them: its first workflow task publishes kind, status, severity, service and
environment in one upsert, and ``tocsin status`` lists it like any other.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import decode_typed_search_attributes
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from operations.alerts import dispatch_alerts, fingerprint
from tests.helpers import ops, outbox, tocsin_worker, until
from workers.registry import WORKFLOWS, workflow_runner
from workflows import search
from workflows.incident.models import Alert

CONFIG = {
    "channels": {"console": {"type": "console"}},
    "receivers": [{"name": "oncall", "channels": ["console"]}],
    "route": {"receiver": "oncall", "group_by": ["service"], "group_wait": "0s"},
}


def alert(service: str, status: str = "firing") -> Alert:
    labels = {"alertname": "DiskFull", "service": service, "env": "prod", "severity": "critical", "instance": "i0"}
    return Alert(fingerprint=fingerprint(labels), labels=labels, status=status)  # type: ignore[arg-type]


async def test_an_incident_started_again_without_attributes_publishes_them(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(CONFIG)
    service = f"own-{task_queue}"
    ctx = ops(time_env.client, task_queue, cfg)
    client = time_env.client

    def pages(wid: str) -> int:
        return sum(1 for r in outbox(tmp_path) if r["key"].startswith(wid))

    async with tocsin_worker(client, task_queue, tmp_path, cfg):
        [wid] = await dispatch_alerts(ctx, [alert(service)], source="t")
        first = await client.get_workflow_handle(wid).describe()
        assert first.typed_search_attributes.get(search.KIND) == "incident", "the first start carries them"

        await until(lambda: pages(wid) >= 1, timeout=20)
        await dispatch_alerts(ctx, [alert(service, "resolved")], source="t")

        async def ended() -> bool:
            return (await client.get_workflow_handle(wid, run_id=first.run_id).describe()).status == (
                WorkflowExecutionStatus.COMPLETED
            )

        await until(ended, timeout=20)
        await dispatch_alerts(ctx, [alert(service)], source="t")  # fires again, within the gateway's window
        handle = client.get_workflow_handle(wid)

        async def listed_as_notified() -> bool:
            described = await handle.describe()
            return described.run_id != first.run_id and described.typed_search_attributes.get(search.STATUS) == (
                "notified"
            )

        await until(listed_as_notified, timeout=20)
        described = await handle.describe()
        history = await handle.fetch_history()

    started = history.events[0].workflow_execution_started_event_attributes
    assert not started.search_attributes.indexed_fields, "the second start carried no search attributes"
    attributes = described.typed_search_attributes
    assert attributes.get(search.KIND) == "incident"
    assert attributes.get(search.SEVERITY) == "critical"
    assert attributes.get(search.SERVICE) == service
    assert attributes.get(search.ENVIRONMENT) == "prod"
    upserts = [
        decode_typed_search_attributes(e.upsert_workflow_search_attributes_event_attributes.search_attributes)
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    owning = [u for u in upserts if u.get(search.KIND) is not None]
    assert len(owning) == 1, "all of them in one upsert"
    assert owning[0].get(search.STATUS) == "triggered" and owning[0].get(search.SEVERITY) == "critical"
    published = Counter(pair.key.name for u in upserts for pair in u)
    assert published[search.SEVERITY.name] == 1, "the severity is not published twice"
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=workflow_runner())
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None
