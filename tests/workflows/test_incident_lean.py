"""A new incident writes little history (the ``incident-lean`` patch, issue 10 item 16).

Every alert that reaches an incident wakes it; what it writes then is work for the Temporal
server, which the gateway's webhooks wait behind. A run started with ``incident-lean``:

* asks one patch instead of eight (each ``workflow.patched`` in a new run is a marker and a
  ``TemporalChangeVersion`` upsert, a visibility write): ``incident-local-journal`` implies the rest;
* takes its config snapshot and, on a route with no group_wait, its muting verdict in one local
  activity (``first_look``) before its first page;
* does not publish again what its start published (``TocsinStatus=triggered``, the severity);
* loads the config when it is about to send an update, not on every alert;
* keeps its timer while the deadline stands: an alert changes nothing but the state.

Replays of histories recorded before the patch are in ``test_replay.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from operations.alerts import dispatch_alerts, fingerprint
from operations.silences import add_silence
from tests.helpers import ops, outbox, person, tocsin_worker, until
from workers.registry import WORKFLOWS, workflow_runner
from workflows.audit import ACTIVITY_APPEND
from workflows.incident.models import Alert
from workflows.incident.workflow import IncidentWorkflow

SIGNALS = 6


def alert(service: str, instance: str) -> Alert:
    labels = {"alertname": "DiskFull", "service": service, "severity": "warning", "instance": instance}
    return Alert(fingerprint=fingerprint(labels), labels=labels, annotations={"summary": f"disk on {instance}"})


def journaling(event: HistoryEvent) -> bool:
    """An audit journal send (``workflows.journal``), durable or local: counted apart from the incident's own commands."""
    if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
        return local_activity_type(event) == ACTIVITY_APPEND
    return event.activity_task_scheduled_event_attributes.activity_type.name == ACTIVITY_APPEND


async def test_alerts_after_the_first_page_write_no_commands_until_the_update_is_due(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(
        {
            "channels": {"console": {"type": "console"}},
            "receivers": [{"name": "oncall", "channels": ["console"]}],
            "route": {
                "receiver": "oncall",
                "group_by": ["service"],
                "group_wait": "0s",
                "group_interval": "5m",
                "repeat_interval": "4h",
            },
        }
    )
    service = f"disk-{task_queue}"
    ctx = ops(time_env.client, task_queue, cfg)
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        [wid] = await dispatch_alerts(ctx, [alert(service, "i0")], source="t")
        await until(lambda: any(r["key"].startswith(wid) for r in outbox(tmp_path)))
        for k in range(1, SIGNALS + 1):
            await dispatch_alerts(ctx, [alert(service, f"i{k}")], source="t")
            await asyncio.sleep(0.3)  # each alert its own workflow task
        handle = time_env.client.get_workflow_handle_for(IncidentWorkflow.run, wid)
        state = await handle.query(IncidentWorkflow.state)
        assert state.counts.firing == SIGNALS + 1
        before_update = [e.event_type for e in (await handle.fetch_history()).events if not journaling(e)]
        await time_env.sleep(timedelta(minutes=6))  # group_interval: the update goes out
        await until(lambda: sum(1 for r in outbox(tmp_path) if r["key"].startswith(wid)) == 2)
        after_update = [e.event_type for e in (await handle.fetch_history()).events if not journaling(e)]

    counts = Counter(before_update)
    markers = counts[EventType.EVENT_TYPE_MARKER_RECORDED]
    # One patch marker (incident-own-attributes, which implies incident-local-journal, incident-local-page,
    # incident-first-page-alone, incident-first-look, incident-lean and the audit journal), one local
    # activity for first_look (the config and, with group_wait 0, the muting verdict) and one for the
    # first page (the console is an unpaced channel); the journal's local appends are counted apart.
    assert markers == 3, [EventType.Name(t) for t in before_update]
    assert counts[EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED] == 0, "the first page went out locally"
    # One upsert for the patch, one for `notified` (`triggered` and the severity came with the start).
    assert counts[EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES] == 2
    assert counts[EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED] == 1  # one memo
    # The first alert after the page moves the deadline (repeat_interval → group_interval) once; the
    # others change nothing: no timer restarted, no config reloaded per alert.
    assert counts[EventType.EVENT_TYPE_TIMER_CANCELED] == 1
    assert counts[EventType.EVENT_TYPE_TIMER_STARTED] == 2
    assert counts[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED] == SIGNALS + 1
    # The update: the config is loaded once then, and it is sent.
    added = Counter(after_update[len(before_update) :])
    assert added[EventType.EVENT_TYPE_MARKER_RECORDED] == 1
    assert added[EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED] == 1


def local_activity_type(event: HistoryEvent) -> str | None:
    """The activity type of a local activity's marker (None for any other event)."""
    marker = event.marker_recorded_event_attributes
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED or marker.marker_name != "core_local_activity":
        return None
    name: str = json.loads(marker.details["data"].payloads[0].data)["activity_type"]
    return name


def local_activities(events: list[HistoryEvent], *, journal: bool = True) -> list[str]:
    """The activity types of the run's local activities, in order (from their markers); ``journal=False``
    leaves out the audit journal's appends (``incident-local-journal``)."""
    names = [local_activity_type(e) for e in events]
    return [n for n in names if n is not None and (journal or n != ACTIVITY_APPEND)]


def console_route(group_wait: str) -> dict:  # type: ignore[type-arg]
    return {
        "channels": {"console": {"type": "console"}},
        "receivers": [{"name": "oncall", "channels": ["console"]}],
        "route": {"receiver": "oncall", "group_by": ["service"], "group_wait": group_wait},
    }


@pytest.mark.parametrize(("group_wait", "expected"), [("0s", ["first_look"]), ("30s", ["first_look", "mute_verdict"])])
async def test_a_first_page_takes_one_local_activity_when_the_route_waits_no_group_wait(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config, group_wait: str, expected: list[str]
) -> None:  # type: ignore[no-untyped-def]
    cfg = write_config(console_route(group_wait))
    ctx = ops(time_env.client, task_queue, cfg)
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        [wid] = await dispatch_alerts(ctx, [alert(f"first-{task_queue}", "i0")], source="t")
        if group_wait != "0s":
            await time_env.sleep(timedelta(seconds=31))
        await until(lambda: any(r["key"].startswith(wid) for r in outbox(tmp_path)))
        history = await time_env.client.get_workflow_handle(wid).fetch_history()
        events = list(history.events)
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=workflow_runner())
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None
    # The config snapshot and the muting verdict in one round trip; after a group_wait the verdict is
    # judged when the wait ends (the alerts may have changed), by its own local activity.
    assert [name for name in local_activities(events, journal=False) if name != "send_notification"] == expected


async def test_a_silence_found_by_the_first_look_holds_the_incident(
    fresh_time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    time_env = fresh_time_env  # the silences store outlives the test: keep it off the shared server
    cfg = write_config(console_route("0s"))
    service = f"held-{task_queue}"
    ctx = ops(time_env.client, task_queue, cfg)
    async with tocsin_worker(time_env.client, task_queue, tmp_path, cfg):
        record = await add_silence(ctx, person("ops"), [f'service="{service}"'], "1h", "maintenance")
        [wid] = await dispatch_alerts(ctx, [alert(service, "i0")], source="t")
        handle = time_env.client.get_workflow_handle_for(IncidentWorkflow.run, wid)
        deadline = asyncio.get_running_loop().time() + 15
        while (state := await handle.query(IncidentWorkflow.state)).status != "silenced":
            assert asyncio.get_running_loop().time() < deadline, state.status
            await asyncio.sleep(0.1)
        events = list((await handle.fetch_history()).events)
    assert record.id in state.suppressed_by[0]
    assert not any(r["key"].startswith(wid) for r in outbox(tmp_path)), "a silenced incident pages nobody"
    assert local_activities(events, journal=False) == ["first_look"]
