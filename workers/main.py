"""``tocsin worker``: registers every workflow and activity and runs until told to stop."""

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
from operations.config import ConfigStore
from workers.registry import WORKFLOWS, workflow_runner
from workers.schedules import ensure_schedules
from workers.settings import Settings

__all__ = ["ActivitySet", "build_worker", "running_worker", "run_worker", "install_stop_signals"]

log = logging.getLogger("tocsin")


class ActivitySet:
    """Every activity Tocsin registers, built once per worker with its long-lived clients."""

    def __init__(self, client: Client, settings: Settings, store: ConfigStore | None = None):
        self.store = store or ConfigStore()
        self.delivery = DeliveryActivities(self.store, home=settings.home)
        self.incidents = IncidentActivities(client, self.store)
        self.deployments = DeploymentActivities(client)

    def functions(self) -> list[Callable[..., Any]]:
        """The activity callables to register."""
        return [
            self.delivery.load_config,
            self.delivery.send,
            self.delivery.dead_letter,
            self.incidents.check_suppression,
            self.incidents.mute_verdict,
            self.incidents.request_rollback,
            self.incidents.record_metrics,
            self.incidents.route_state,
            self.incidents.held_incidents,
            self.incidents.raise_alerts,
            *self.deployments.functions(),
        ]

    async def aclose(self) -> None:
        """Close the long-lived clients."""
        await self.delivery.aclose()
        await self.deployments.aclose()


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
async def running_worker(client: Client, settings: Settings, store: ConfigStore | None = None) -> AsyncIterator[Worker]:
    """Run a worker for the duration of the block; clients are closed after."""
    activities = ActivitySet(client, settings, store)
    worker = build_worker(client, settings, activities.functions())
    try:
        async with worker:
            yield worker
    finally:
        await activities.aclose()


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
    scheduled = await ensure_schedules(client, store.get(), settings.task_queue)
    if scheduled:
        log.info("schedules: %s", ", ".join(scheduled))
    async with running_worker(client, settings, store):
        log.info("worker polling task queue %r on %s", settings.task_queue, settings.address)
        await stop.wait()
        log.info("worker stopping")
