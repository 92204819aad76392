"""Incidents append their audit journal from the workflow task first (``incident-local-journal``).

An incident started with the patch tries each journal batch once as a local activity, for at most
``LOCAL_APPEND_TIMEOUT``: a marker in the history, no activity task on the server. What that try
does not append goes on as the durable ``journal_append`` activity, with its retries; the records
arrive once and in order either way.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio import activity
from temporalio.api.history.v1 import HistoryEvent
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from operations.alerts import dispatch_alerts
from tests.helpers import ops
from tests.workflows.test_incident_lean import local_activities
from tests.workflows.test_incident_workflow import alert, config_dict
from tests.workflows.test_journal_flows import FakeJournal, check_once_in_order, replay, scheduled, until, worker
from workflows.audit import ACTIVITY_APPEND, JournalBatch
from workflows.journal import LOCAL_APPEND_TIMEOUT


class FirstCallFails(FakeJournal):
    """The journal's double: its first call fails with ``error`` (None: hangs past the local try's timeout)."""

    def __init__(self, error: ApplicationError | None) -> None:
        super().__init__()
        self.error = error
        self.local: list[bool] = []

    @activity.defn(name=ACTIVITY_APPEND)
    async def append(self, batch: JournalBatch) -> int:
        self.local.append(activity.info().is_local)
        if len(self.local) == 1:
            if self.error is None:
                await asyncio.sleep(LOCAL_APPEND_TIMEOUT.total_seconds() * 5)
            else:
                raise self.error
        self.batches.append(batch)
        return len(batch.entries)


async def first_page_journaled(
    env: WorkflowEnvironment, task_queue: str, home: Path, cfg: Path, journal: FakeJournal, timeout: float = 15
) -> tuple[str, list[HistoryEvent]]:
    """A new incident on a worker with ``journal``: its id and history once its page is journaled (replayed)."""
    ctx = ops(env.client, task_queue, cfg)
    async with worker(env, task_queue, home, cfg, journal):
        [wid] = await dispatch_alerts(ctx, [alert(service=f"svc-{task_queue}")], source="test")
        await until(lambda: any(e.action == "notification.delivered" for e in journal.of(wid)), timeout=timeout)
        handle = env.client.get_workflow_handle(wid)
        events = list((await handle.fetch_history()).events)
        await replay(handle)
    return wid, events


async def test_a_new_incident_appends_its_journal_from_the_workflow_task(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    journal = FirstCallFails(None)
    journal.local.append(True)  # no failing first call: every call appends
    wid, events = await first_page_journaled(
        time_env, task_queue, tmp_path, write_config(config_dict(group_wait="0s")), journal
    )
    assert scheduled(events, ACTIVITY_APPEND) == [], "no activity task for the journal"
    assert local_activities(events).count(ACTIVITY_APPEND) == 1
    assert journal.local[1:] == [True]
    check_once_in_order(journal.of(wid), wid)


async def test_a_failed_local_append_goes_on_as_the_durable_activity(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    journal = FirstCallFails(ApplicationError("database is locked", type="OperationalError"))
    wid, events = await first_page_journaled(
        time_env, task_queue, tmp_path, write_config(config_dict(group_wait="0s")), journal
    )
    assert journal.local == [True, False], "a local try, then the durable activity"
    assert len(scheduled(events, ACTIVITY_APPEND)) == 1
    entries = journal.of(wid)
    check_once_in_order(entries, wid)
    assert [e.detail.get("event") for e in entries if e.action == "incident.state"] == ["triggered", "notified"]


async def test_a_local_append_that_hangs_gives_way_to_the_durable_activity(
    time_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, write_config
) -> None:  # type: ignore[no-untyped-def]
    journal, cfg = FirstCallFails(None), write_config(config_dict(group_wait="0s"))
    timeout = LOCAL_APPEND_TIMEOUT.total_seconds() + 10
    wid, events = await first_page_journaled(time_env, task_queue, tmp_path, cfg, journal, timeout)
    assert journal.local == [True, False]
    assert len(scheduled(events, ACTIVITY_APPEND)) == 1
    check_once_in_order(journal.of(wid), wid)
