"""One way for a workflow to race a timer against a condition.

Every flow waits the same way: "until this is true, or until that much time
has passed". :func:`wait_until` says so in one call instead of a
``try`` / ``wait_condition(timeout=…)`` / ``except TimeoutError`` block in each
flow. It issues exactly the commands ``workflow.wait_condition`` issues (one
timer when a timeout is given), so it is replay-compatible with the code it
replaces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

__all__ = ["wait_until", "Alarm"]


async def wait_until(condition: Callable[[], bool], timeout: timedelta | float | None = None) -> bool:
    """Wait for ``condition`` or ``timeout``, whichever comes first.

    Args:
        condition: re-evaluated after every workflow activation; must not block.
        timeout: how long to wait (a ``timedelta`` or seconds); ``None`` waits
            for the condition alone.

    Returns:
        True when the condition held, False when the time ran out first.
    """
    if timeout is None:
        await workflow.wait_condition(condition)
        return True
    try:
        await workflow.wait_condition(condition, timeout=timeout)
    except TimeoutError:
        return False
    return True


class Alarm:
    """A timer kept across waits: waiting again for the same moment starts no new timer.

    A loop that wakes on every signal and then waits for the same deadline again would, with
    :func:`wait_until`, cancel its timer and start an identical one each time (two commands and
    two history events per signal). An ``Alarm`` keeps the running timer while the deadline is
    unchanged and replaces it only when the deadline moves.
    """

    def __init__(self) -> None:
        self._at: datetime | None = None
        self._timer: asyncio.Task[None] | None = None

    def _set(self, at: datetime | None) -> None:
        if at == self._at and self._timer is not None and not self._timer.done():
            return
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
        self._at, self._timer = at, None
        if at is not None:
            self._timer = asyncio.create_task(asyncio.sleep((at - workflow.now()).total_seconds()))

    async def wait(self, condition: Callable[[], bool], timeout: timedelta | None) -> bool:
        """Wait for ``condition`` or ``timeout`` (from now), as :func:`wait_until` does.

        Returns:
            True when the condition held, False when the time ran out first.
        """
        self._set(None if timeout is None else workflow.now() + timeout)
        timer = self._timer
        await workflow.wait_condition(lambda: condition() or (timer is not None and timer.done()))
        return condition()
