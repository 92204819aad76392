"""``DeployLockWorkflow``: one deployment at a time per service and environment.

The entity ``deploy-lock/<service>/<env>`` grants its lock in arrival order.
Deployments signal-with-start it with ``acquire`` and are answered
``lock_granted`` when their turn comes; a ``refuse``-mode request that finds
the lock busy is answered ``lock_refused``. A holder that ends without
releasing (terminated) is noticed by a liveness check while others wait, and
skipped. When the lock is free the run ends; the next deployment starts a new one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow

from workflows.deployment import calls
from workflows.deployment.models import (
    LOCK_QUERY_HOLDER,
    LOCK_SIGNAL_ACQUIRE,
    LOCK_SIGNAL_RELEASE,
    LOCK_WORKFLOW,
    SIGNAL_LOCK_GRANTED,
    SIGNAL_LOCK_REFUSED,
    LockAcquire,
    LockGrant,
    LockInput,
    LockRelease,
)
from workflows.timer import wait_until

__all__ = ["DeployLockWorkflow", "LOCK_CHECK_EVERY", "MAX_HISTORY"]

LOCK_CHECK_EVERY = timedelta(minutes=5)
"""How often a holder's liveness is checked while someone waits for it."""
MAX_HISTORY = 5000
"""Continue as new past this many history events (or when the server suggests it)."""


@workflow.defn(name=LOCK_WORKFLOW)
class DeployLockWorkflow:
    """A FIFO lock for one service in one environment.

    State is not taken from the input in ``__init__`` (``@workflow.init``): an
    ``acquire`` that arrives with the first task of a continued run is handled
    before ``run`` and must keep seeing an empty lock, as recorded histories
    expect; ``run`` puts the continued holder and queue in front of it.
    """

    def __init__(self) -> None:
        self._holder: str | None = None
        self._queue: list[LockAcquire] = []
        self._refuse: list[LockAcquire] = []
        self._released: list[str] = []

    @workflow.signal(name=LOCK_SIGNAL_ACQUIRE)
    def acquire(self, request: LockAcquire) -> None:
        """A deployment asks for the lock."""
        wid = request.workflow_id
        if wid in self._released:
            # Asked again after releasing (a rollback asked for as it finished): the release comes
            # first. No earlier history has an acquire after its own release, so this replays.
            self._take_back_released()
        if wid == self._holder or any(q.workflow_id == wid for q in self._queue):
            return
        busy = self._holder is not None or bool(self._queue)
        if request.mode == "refuse" and busy:
            self._refuse.append(request)
        else:
            self._queue.append(request)

    @workflow.signal(name=LOCK_SIGNAL_RELEASE)
    def release(self, request: LockRelease) -> None:
        """A deployment is done with the lock (or gives up waiting)."""
        self._released.append(request.workflow_id)

    @workflow.query(name=LOCK_QUERY_HOLDER)
    def holder(self) -> dict[str, Any]:
        """The current holder and the queue."""
        return {"holder": self._holder, "queue": [q.workflow_id for q in self._queue]}

    @workflow.run
    async def run(self, input: LockInput) -> None:
        """Grant, refuse and take back the lock until it is free; then end.

        Args:
            input: the service and environment, and for a continued run the holder and queue.
        """
        me = workflow.info().workflow_id
        self._holder = input.holder
        self._queue = [*input.queue, *self._queue]
        while True:
            # A holder's liveness matters only while someone waits for it.
            if not await wait_until(self._has_work, LOCK_CHECK_EVERY if self._holder and self._queue else None):
                await self._check_holder()
            self._take_back_released()
            await self._answer_refused()
            await self._grant_next(me)
            if self._holder is None and not self._queue and not self._refuse and not self._released:
                # Free: end. The next deployment signal-with-starts a fresh run (a signal that
                # arrives while this one completes makes the server retry the task with it).
                return
            info = workflow.info()
            if info.is_continue_as_new_suggested() or info.get_current_history_length() > MAX_HISTORY:
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    LockInput(service=input.service, env=input.env, holder=self._holder, queue=self._queue)
                )

    def _has_work(self) -> bool:
        return bool(self._released or self._refuse or (self._holder is None and self._queue))

    async def _check_holder(self) -> None:
        """The holder is released when it has ended without releasing."""
        if self._holder is not None and not await calls.workflow_running(self._holder):
            workflow.logger.warning("lock holder %s ended without releasing", self._holder)
            self._released.append(self._holder)

    def _take_back_released(self) -> None:
        while self._released:
            wid = self._released.pop(0)
            if wid == self._holder:
                self._holder = None
            else:
                self._queue = [q for q in self._queue if q.workflow_id != wid]

    async def _answer_refused(self) -> None:
        while self._refuse:
            req = self._refuse.pop(0)
            busy_with = self._holder or (self._queue[0].workflow_id if self._queue else "")
            await self._signal(req.workflow_id, SIGNAL_LOCK_REFUSED, LockRelease(workflow_id=busy_with, detail="busy"))

    async def _grant_next(self, me: str) -> None:
        while self._holder is None and self._queue:
            nxt = self._queue.pop(0)
            if await self._signal(nxt.workflow_id, SIGNAL_LOCK_GRANTED, LockGrant(lock_id=me)):
                self._holder = nxt.workflow_id

    async def _signal(self, wid: str, name: str, arg: BaseModel) -> bool:
        try:
            await workflow.get_external_workflow_handle(wid).signal(name, arg)
            return True
        except Exception as exc:
            workflow.logger.info("lock: cannot signal %s to %s: %s", name, wid, exc)
            return False
