"""``tocsin worker``: registers every workflow and activity and runs until told to stop.

Besides the worker on Tocsin's task queue, :func:`running_worker` runs one activity-only worker
per paced channel (per API budget: channels sharing a pace key share one), on the task queue
``<task queue>/send/<channel>`` with ``max_task_queue_activities_per_second`` set to the
channel's rate: Temporal's matching service hands out that queue's tasks at that rate whatever
the number of workers polling it, so N workers together still send at the channel's rate, not
N times it. Workflows post on it (``workflows.delivery``) once the config snapshot advertises
it. The queues and their rates are those of the config when the worker starts; a channel added
later is paced by the worker's own bucket until the worker restarts. A channel paced at
``SERVER_PACING_MAX_RATE`` per second or faster keeps its sends on Tocsin's task queue, paced
per worker: a send on another queue cannot start eagerly on the worker that scheduled it, which
costs one more round trip through the server per message (about 40 ms on a busy dev server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.delivery import DeliveryActivities
from activities.deployments import DeploymentActivities
from activities.incidents import IncidentActivities
from activities.journal import JournalActivities
from activities.patterns import PatternActivities
from activities.pipelines import PipelineActivities
from operations.config import ConfigStore
from operations.journal import Journal, dsn_from_env, open_journal
from operations.metrics_collector import journal_metrics
from workers.config_audit import config_journaling
from workers.registry import WORKFLOWS, workflow_runner
from workers.retention import ensure_retention
from workers.schedules import ensure_schedules
from workers.settings import Settings

__all__ = [
    "ActivitySet",
    "SERVER_PACING_MAX_RATE",
    "build_worker",
    "send_queue_name",
    "running_worker",
    "run_worker",
    "install_stop_signals",
]

log = logging.getLogger("tocsin")

SERVER_PACING_MAX_RATE = 50.0
"""Channels paced below this many sends per second are paced by Temporal, across workers."""


def send_queue_name(task_queue: str, channel: str) -> str:
    """The paced task queue of a channel's posts."""
    return f"{task_queue}/send/{channel}"


class ActivitySet:
    """Every activity Tocsin registers, built once per worker with its long-lived clients."""

    def __init__(
        self, client: Client, settings: Settings, store: ConfigStore | None = None, journal: Journal | None = None
    ):
        self.store = store or ConfigStore()
        self.journal = JournalActivities(journal) if journal is not None else None
        self.delivery = DeliveryActivities(self.store, home=settings.home)
        self.incidents = IncidentActivities(client, self.store, snapshot=self.delivery.load_config)
        self.deployments = DeploymentActivities(client)
        self.pipelines = PipelineActivities(client, self.store)
        self.patterns = PatternActivities(client)

    def functions(self) -> list[Callable[..., Any]]:
        """The activity callables to register."""
        return [
            self.delivery.load_config,
            self.delivery.send,
            self.delivery.dead_letter,
            self.incidents.check_suppression,
            self.incidents.mute_verdict,
            self.incidents.first_look,
            self.incidents.request_rollback,
            self.incidents.record_metrics,
            self.incidents.route_state,
            self.incidents.held_incidents,
            self.incidents.raise_alerts,
            *self.deployments.functions(),
            *self.pipelines.functions(),
            self.patterns.report_failure_pattern,
            *([self.journal.append] if self.journal is not None else []),
        ]

    def send_workers(self, client: Client, settings: Settings) -> list[Worker]:
        """One activity worker per paced channel budget, rate-limited by Temporal; advertised from then on."""
        workers = []
        for lead, rate, names in self.delivery.pace_groups(self.store.get(), SERVER_PACING_MAX_RATE):
            queue = send_queue_name(settings.task_queue, lead)
            workers.append(
                Worker(
                    client,
                    task_queue=queue,
                    activities=[self.delivery.send],
                    max_task_queue_activities_per_second=rate,
                    graceful_shutdown_timeout=timedelta(seconds=10),
                )
            )
            self.delivery.send_queues.update(dict.fromkeys(names, queue))
            log.info("channel %s: sends paced by Temporal at %g/s on %r", ", ".join(names), rate, queue)
        return workers

    async def aclose(self) -> None:
        """Close the long-lived clients."""
        await self.delivery.aclose()
        await self.deployments.aclose()
        await self.incidents.aclose()


def build_worker(client: Client, settings: Settings, activities: Sequence[Callable[..., Any]], **kwargs: Any) -> Worker:
    """A worker for Tocsin's task queue with all workflows and the given activities."""
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities,
        workflow_runner=workflow_runner(),
        graceful_shutdown_timeout=timedelta(seconds=10),
        **kwargs,
    )


@contextlib.asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, store: ConfigStore | None = None, journal: Journal | None = None
) -> AsyncIterator[Worker]:
    """Run a worker, and the paced channels' send workers, for the duration of the block; clients are closed after.

    Without ``journal``, the audit journal is opened from ``TOCSIN_AUDIT_DSN`` (else ``<home>/audit.db``)
    for the block and closed after.
    """
    own = journal is None
    journal = journal or await open_journal(dsn_from_env(), settings.home)
    activities = ActivitySet(client, settings, store, journal)
    worker = build_worker(client, settings, activities.functions())
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(config_journaling(journal, activities.store))
            for sender in activities.send_workers(client, settings):
                await stack.enter_async_context(sender)
            await stack.enter_async_context(worker)
            yield worker
    finally:
        await activities.aclose()
        if own:
            await journal.close()


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGINT/SIGTERM set ``stop`` (a second one exits at once)."""
    loop = asyncio.get_running_loop()

    def handler() -> None:
        if stop.is_set():
            raise SystemExit(130)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handler)


async def run_worker(client: Client, settings: Settings, stop: asyncio.Event) -> None:
    """Run a worker until ``stop`` is set (after putting the config's schedules in place)."""
    store = ConfigStore()
    await ensure_retention(client, store.get().audit.history_retention)
    scheduled = await ensure_schedules(client, store.get(), settings.task_queue)
    if scheduled:
        log.info("schedules: %s", ", ".join(scheduled))
    journal = await open_journal(dsn_from_env(), settings.home)
    try:
        async with running_worker(client, settings, store, journal), journal_metrics(journal):
            log.info("worker polling task queue %r on %s", settings.task_queue, settings.address)
            await stop.wait()
            log.info("worker stopping")
    finally:
        await journal.close()
